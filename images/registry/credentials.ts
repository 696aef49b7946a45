/**
 * Which credentials go where (issue 11, item 3). CRI credentials go only to the host they are for,
 * as containerd's ParseAuth decides: the host their server_address names, else the image's own
 * registry — never a mirror on another host, which gets the credentials configured for it or none.
 * A token realm gets credentials over https, or over plain http only on the registry's own host
 * where the registry itself is plain http. Also: where configured credentials are looked up.
 */
import { readFile } from 'node:fs/promises';
import { EffectFailed } from '../../errors/catalogue.js';
import type { Credentials, RegistriesConfig } from '../types.js';

export function hasCredentials(creds: Credentials | null | undefined): creds is Credentials {
  if (!creds) return false;
  return Boolean(creds.username || creds.password || creds.auth || creds.identityToken || creds.registryToken);
}

/** `Basic base64(user:password)` from username/password or the pre-encoded `auth`. */
export function basicAuthorization(creds: Credentials | null): string | null {
  if (!creds) return null;
  if (creds.username) return `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
  if (creds.auth) return `Basic ${creds.auth}`;
  return null;
}

const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/**
 * A registry host as credentials are keyed by it: no scheme, no path, lower case, and Docker Hub's
 * names (index.docker.io, registry-1.docker.io) as docker.io. "https://index.docker.io/v1/" and
 * "docker.io" are one host; "registry.example.com/team" is registry.example.com.
 */
export function normalizeRegistryHost(address: string): string {
  const host = (address.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').split('/')[0] ?? '').toLowerCase();
  return DOCKER_HUB_ALIASES.has(host) ? 'docker.io' : host;
}

/** The host credentials are for: their server_address, else the image's own registry. */
export function credentialsHost(creds: Credentials, registry: string): string {
  return normalizeRegistryHost(creds.serverAddress || registry);
}

/**
 * Whether CRI credentials may be sent to `host` (an endpoint's host, normalized): only when it is
 * the host they are for — never to a mirror on another host, as containerd's ParseAuth compares
 * server_address with the host. A `*` in a label matches within that label, as kubelet's keyring
 * does for the keys it takes server_address from; the port must match.
 */
export function credentialsApply(creds: Credentials, registry: string, host: string): boolean {
  const pattern = credentialsHost(creds, registry);
  const target = normalizeRegistryHost(host);
  if (!pattern.includes('*')) return pattern === target;
  const [patternName = '', patternPort] = splitPort(pattern);
  const [targetName = '', targetPort] = splitPort(target);
  const labels = patternName.split('.');
  const targetLabels = targetName.split('.');
  if (patternPort !== targetPort || labels.length !== targetLabels.length) return false;
  return labels.every((label, i) => new RegExp(`^${label.split('*').map(escapeRegExp).join('[^.]*')}$`).test(targetLabels[i] ?? ''));
}

function splitPort(host: string): [string, string | undefined] {
  const m = /^(.*?)(?::(\d+))?$/.exec(host);
  return [m?.[1] ?? host, m?.[2]];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Why credentials must not go to a token realm, or null when they may: over https always; over
 * plain http only on the registry's own host and only where the registry itself is plain http
 * (insecure or loopback, as the client chose its scheme). Anything else would hand a password to
 * whoever can see, or answer for, another host's traffic.
 */
export function realmRefusal(realm: URL, registryBase: string): string | null {
  if (realm.protocol === 'https:') return null;
  const registry = new URL(registryBase);
  const sameHost = realm.hostname === registry.hostname;
  if (realm.protocol === 'http:' && sameHost && registry.protocol === 'http:') return null;
  const scheme = realm.protocol.slice(0, -1);
  const where = sameHost ? `the registry's host, while the registry itself is reached over ${registry.protocol.slice(0, -1)}` : `another host than the registry (${registry.host})`;
  return `credentials were not sent to the token realm ${realm.origin}${realm.pathname}: it is ${scheme === 'http' ? 'plain http' : scheme} on ${where}; a realm gets credentials over https only`;
}

/** Who the credentials name, for error messages (never the secret). */
export function accountName(creds: Credentials | null): string | null {
  if (!creds) return null;
  if (creds.username) return creds.username;
  if (creds.auth) return Buffer.from(creds.auth, 'base64').toString('utf8').split(':')[0] ?? null;
  return null;
}

/**
 * Credentials for one registry host: the CRI request's (passed only when they are for this host,
 * see credentialsApply), else the configured host's, else the credentials file's entry for that
 * host (read at each call, so edits apply to the next pull).
 */
export async function lookupCredentials(config: RegistriesConfig, host: string, cri: Credentials | null): Promise<Credentials | null> {
  if (hasCredentials(cri)) return cri;
  const configured = config.hosts[host]?.auth;
  if (hasCredentials(configured)) return configured;
  if (config.credentialsFile === null) return null;
  let text: string;
  try {
    text = await readFile(config.credentialsFile, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new EffectFailed(`cannot read credentials file ${config.credentialsFile}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new EffectFailed(`credentials file ${config.credentialsFile} is not valid JSON: ${(err as Error).message}`);
  }
  // Also accept Docker's config.json shape ({"auths": {...}}) and its keys ("https://index.docker.io/v1/").
  const table = (isObject(parsed) && isObject(parsed.auths) ? parsed.auths : parsed) as Record<string, unknown>;
  if (!isObject(table)) return null;
  for (const [key, value] of Object.entries(table)) {
    if (normalizeRegistryHost(key) === host && isObject(value) && hasCredentials(value)) return value;
  }
  return null;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
