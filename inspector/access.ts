/**
 * Who may read the inspector. On loopback without a token: any local client, but only under a
 * loopback Host, so that a page on another site cannot reach it by rebinding its DNS name to
 * 127.0.0.1 (the browser would send that site's name as Host). Anywhere else a bearer token is
 * required, read from `inspectorTokenFile` (a header, or `?token=` for the page and its event
 * stream, which a browser cannot give headers).
 */
import { timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { InvalidArgument } from '../errors/catalogue.js';
import { isLoopbackHost } from '../config/address.js';

/** The token in `path`: refused when missing, empty, or readable by group or others. */
export function readTokenFile(path: string): string {
  let mode: number;
  let token: string;
  try {
    mode = statSync(path).mode;
    token = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new InvalidArgument(`inspectorTokenFile ${path} cannot be read: ${(err as Error).message}`);
  }
  if ((mode & 0o077) !== 0) throw new InvalidArgument(`inspectorTokenFile ${path} is readable by others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`);
  if (token.length < 16) throw new InvalidArgument(`inspectorTokenFile ${path} must hold a token of at least 16 characters`);
  return token;
}

export type Refusal = { status: 401 | 403; error: string } | null;

/** Why `req` may not be answered, or null. `port` is the bound one. */
export function refusal(req: IncomingMessage, url: URL, port: number, token: string | null): Refusal {
  if (token !== null) {
    const given = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? url.searchParams.get('token') ?? '';
    return sameSecret(given, token) ? null : { status: 401, error: 'a bearer token is required (inspectorTokenFile)' };
  }
  const host = req.headers.host ?? '';
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(host);
  const name = m?.[1] ?? m?.[2] ?? '';
  if (!isLoopbackHost(name) || Number(m?.[3] ?? 80) !== port) {
    return { status: 403, error: `Host ${JSON.stringify(host)} is not this inspector's loopback address: refused (DNS rebinding guard)` };
  }
  return null;
}

function sameSecret(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
