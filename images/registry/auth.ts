/**
 * HTTP to registries: bounded requests, the registry's own error words, and the auth handshake of the
 * distribution spec — answer a 401's WWW-Authenticate with Basic credentials or with a bearer token
 * from the realm it names (docs/spec/auth/token.md, oauth.md), cached per endpoint and scope.
 * Shared by the pull client and by the test image builder, which pushes with the same flow.
 * Which credentials an endpoint gets is decided before (credentials.ts); here, a token realm gets
 * them only where realmRefusal allows (issue 11, item 3), else it is asked anonymously.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { EffectFailed, NotFound, PermissionDenied, ResourceExhausted, Unavailable } from '../../errors/catalogue.js';
import type { Credentials } from '../types.js';
import { accountName, basicAuthorization, hasCredentials, realmRefusal } from './credentials.js';

export interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** Parses WWW-Authenticate; several challenges may share one header (fetch joins repeats with ", "). */
export function parseChallenges(header: string | null): Challenge[] {
  const out: Challenge[] = [];
  if (header === null) return out;
  // A scheme is a bare token; params are key=value or key="quoted, with \"escapes\"".
  const re = /\s*([A-Za-z][\w-]*)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*)))?\s*,?/gy;
  let current: Challenge | null = null;
  let m: RegExpExecArray | null;
  while (re.lastIndex < header.length && (m = re.exec(header)) !== null) {
    const [, key = '', quoted, bare] = m;
    if (quoted === undefined && bare === undefined) {
      const scheme = key.toLowerCase();
      current = scheme === 'basic' || scheme === 'bearer' ? { scheme, params: {} } : null;
      if (current) out.push(current);
    } else if (current) {
      current.params[key.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : (bare ?? '');
    }
    if (m[0] === '') break;
  }
  return out;
}

/** A response plus the means to abort it, so a body can run under its own idle timeout. */
export interface Sent {
  res: Response;
  controller: AbortController;
  /** Why credentials given were not used for this request: added to a refusal's message. */
  withheld?: string;
}

/**
 * One bounded request: `timeoutMs` covers connect and headers. Network failures and timeouts become
 * Unavailable naming the registry; the body is the caller's to read (see readBody / streamBody).
 */
export async function send(base: string, url: string, init: RequestInit, timeoutMs: number): Promise<Sent> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new TimeoutMarker(timeoutMs)), timeoutMs);
  try {
    const res = await fetch(url, { ...init, signal: controller.signal });
    return { res, controller };
  } catch (err) {
    throw unreachable(base, err, controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

class TimeoutMarker extends Error {
  constructor(readonly ms: number) {
    super(`no response within ${ms} ms`);
  }
}

function unreachable(base: string, err: unknown, signal: AbortSignal): Unavailable {
  const reason: unknown = signal.reason;
  if (signal.aborted && reason instanceof TimeoutMarker) return new Unavailable(`registry ${base} is unreachable: ${reason.message}`);
  const cause = (err as { cause?: unknown }).cause;
  const detail = cause instanceof Error ? cause.message : err instanceof Error ? err.message : String(err);
  return new Unavailable(`registry ${base} is unreachable: ${detail}`);
}

/** Reads a whole (small) body under the idle bound and a size cap: manifests, tokens, error documents. */
export async function readBody(base: string, sent: Sent, limit: number, timeoutMs: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of streamBody(base, sent, timeoutMs)) {
    size += chunk.byteLength;
    if (size > limit) {
      sent.controller.abort();
      throw new ResourceExhausted(`registry ${base} sent more than ${limit} bytes for ${sent.res.url}, the most accepted there: it is not what was asked for`);
    }
    parts.push(Buffer.from(chunk));
  }
  return Buffer.concat(parts);
}

/**
 * The body as a stream that fails with Unavailable when no data arrives for `idleMs`. Not a generator:
 * `return()` must cancel the download even before the first read (the content store ends a body
 * unread when it already has the blob), and a generator that never started would skip its cleanup.
 */
export function streamBody(base: string, sent: Sent, idleMs: number): AsyncIterableIterator<Uint8Array> {
  const reader = sent.res.body?.getReader() ?? null;
  const finished = (): IteratorReturnResult<undefined> => ({ done: true, value: undefined });
  const release = async (): Promise<void> => {
    await reader?.cancel().catch(() => undefined);
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next(): Promise<IteratorResult<Uint8Array, undefined>> {
      if (reader === null) return finished();
      const timer = setTimeout(() => sent.controller.abort(new TimeoutMarker(idleMs)), idleMs);
      try {
        const chunk = await reader.read();
        return chunk.done ? finished() : { done: false, value: chunk.value as Uint8Array };
      } catch (err) {
        await release();
        const reason: unknown = sent.controller.signal.reason;
        if (reason instanceof TimeoutMarker) throw new Unavailable(`registry ${base} stalled: no data for ${idleMs} ms`);
        throw unreachable(base, err, sent.controller.signal);
      } finally {
        clearTimeout(timer);
      }
    },
    async return(): Promise<IteratorResult<Uint8Array, undefined>> {
      await release();
      return finished();
    },
  };
}

/** The registry's own words from an error document ({"errors":[{code,message,detail}]}), else the text. */
export async function errorText(base: string, sent: Sent, timeoutMs: number): Promise<{ text: string; codes: string[] }> {
  let raw = '';
  try {
    raw = (await readBody(base, sent, 64 * 1024, timeoutMs)).toString('utf8').trim();
  } catch {
    // The status already says what went wrong; a body we cannot read adds nothing.
  }
  try {
    const doc = JSON.parse(raw) as { errors?: { code?: string; message?: string; detail?: unknown }[]; details?: string; error?: string };
    if (Array.isArray(doc.errors) && doc.errors.length > 0) {
      const codes = doc.errors.map((e) => e.code ?? '').filter((c) => c !== '');
      const text = doc.errors.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
      return { text, codes };
    }
    if (typeof doc.details === 'string') return { text: doc.details, codes: [] };
    if (typeof doc.error === 'string') return { text: doc.error, codes: [] };
  } catch {
    // Not JSON: fall through to the raw text.
  }
  return { text: raw.slice(0, 300) || `HTTP ${sent.res.status} ${sent.res.statusText}`, codes: [] };
}

/** Maps a failed response to the catalogue: 404 NotFound, 401/403 PermissionDenied, 429/5xx Unavailable. */
export async function failure(base: string, sent: Sent, what: string, timeoutMs: number): Promise<Error> {
  const { status } = sent.res;
  const { text, codes } = await errorText(base, sent, timeoutMs);
  if (status === 404 || codes.some((c) => c === 'MANIFEST_UNKNOWN' || c === 'NAME_UNKNOWN' || c === 'BLOB_UNKNOWN')) {
    return new NotFound(`${what} not found at ${base}: ${text}`);
  }
  if (status === 401 || status === 403) return new PermissionDenied(`registry ${base} denied access to ${what}: ${text}${sent.withheld ? ` (${sent.withheld})` : ''}`);
  if (status === 429 || status >= 500) return new Unavailable(`registry ${base} answered ${status} for ${what}: ${text}`);
  return new EffectFailed(`registry ${base} answered ${status} for ${what}: ${text}`);
}

export interface AuthContext {
  /** The endpoint base ("http://127.0.0.1:5000"): tokens are cached per endpoint, scope and account. */
  base: string;
  /** e.g. "repository:library/busybox:pull". */
  scope: string;
  creds: Credentials | null;
  /** Why the caller's credentials are not in `creds` for this endpoint, for a refusal's message. */
  withheld?: string;
}

interface CachedToken {
  authorization: string;
  expiresAt: number;
  /** Set when the token was asked for anonymously because the realm may not get the credentials. */
  withheld?: string;
}

/** Tokens live at least this long when the server does not say (distribution token spec: 60 s). */
const DEFAULT_TOKEN_SECONDS = 60;
const TOKEN_BODY_LIMIT = 1024 * 1024;

export class RegistryAuth {
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();

  constructor(
    private readonly timeoutMs: number,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Sends a request, answering a 401 challenge once. The returned response may still be 401/403 (no
   * usable credentials, or refused ones): the caller reads the registry's words from it.
   * A request body must be a Buffer or string, since it may be sent twice.
   */
  async fetch(url: string, init: RequestInit, ctx: AuthContext): Promise<Sent> {
    const key = cacheKey(ctx);
    const headers = new Headers(init.headers);
    const noted = (sent: Sent, withheld = ctx.withheld): Sent => (withheld ? { ...sent, withheld } : sent);
    let cached: CachedToken | null = null;
    if (ctx.creds?.registryToken) {
      headers.set('Authorization', `Bearer ${ctx.creds.registryToken}`);
    } else {
      const token = this.tokens.get(key);
      if (token !== undefined && token.expiresAt > this.now()) {
        headers.set('Authorization', token.authorization);
        cached = token;
      }
    }
    const first = await send(ctx.base, url, { ...init, headers }, this.timeoutMs);
    if (first.res.status !== 401 || ctx.creds?.registryToken) return noted(first, cached?.withheld ?? ctx.withheld);
    if (cached) this.tokens.delete(key); // revoked or expired early: get a fresh one

    const challenges = parseChallenges(first.res.headers.get('www-authenticate'));
    const challenge = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
    let authorization: string | null = null;
    let withheld = ctx.withheld;
    if (challenge?.scheme === 'basic') authorization = basicAuthorization(ctx.creds);
    if (challenge?.scheme === 'bearer') {
      const token = await this.bearer(challenge, ctx, key);
      authorization = token.authorization;
      withheld = token.withheld ?? withheld;
    }
    if (authorization === null) return noted(first);
    await first.res.body?.cancel();
    headers.set('Authorization', authorization);
    return noted(await send(ctx.base, url, { ...init, headers }, this.timeoutMs), withheld);
  }

  /** A bearer token for the challenge, shared by concurrent requests for the same key. */
  private async bearer(challenge: Challenge, ctx: AuthContext, key: string): Promise<CachedToken> {
    const running = this.pending.get(key);
    if (running !== undefined) return running;
    const job = this.requestToken(challenge, ctx, key).finally(() => this.pending.delete(key));
    this.pending.set(key, job);
    return job;
  }

  private async requestToken(challenge: Challenge, ctx: AuthContext, key: string): Promise<CachedToken> {
    const realm = challenge.params.realm;
    if (!realm) throw new EffectFailed(`registry ${ctx.base} asked for a bearer token without naming a realm`);
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch {
      throw new EffectFailed(`registry ${ctx.base} named a token realm that is not a URL: ${JSON.stringify(realm)}`);
    }
    const service = challenge.params.service;
    // Our scope, plus the challenge's if it asks for something else (the spec allows several).
    const scopes = [...new Set([ctx.scope, challenge.params.scope].filter((s): s is string => Boolean(s)))];
    // A realm that may not get the credentials is asked anonymously: a public image still pulls,
    // and a private one is refused with the reason in its message.
    const refusal = hasCredentials(ctx.creds) ? realmRefusal(realmUrl, ctx.base) : null;
    if (refusal !== null) this.logger.warn({ realm: `${realmUrl.origin}${realmUrl.pathname}`, registry: ctx.base }, refusal);
    const creds = refusal === null ? ctx.creds : null;
    let sent: Sent;
    if (creds?.identityToken) {
      // OAuth2 refresh-token grant (distribution docs/spec/auth/oauth.md).
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'podchart' });
      if (service) form.set('service', service);
      form.set('scope', scopes.join(' '));
      // No redirects: a 307 would carry the refresh token in the body to wherever it points.
      sent = await send(ctx.base, realm, { method: 'POST', body: form.toString(), headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, redirect: 'error' }, this.timeoutMs);
    } else {
      const url = new URL(realmUrl);
      if (service) url.searchParams.set('service', service);
      for (const scope of scopes) url.searchParams.append('scope', scope);
      const account = accountName(creds);
      if (account) url.searchParams.set('account', account);
      const basic = basicAuthorization(creds);
      sent = await send(ctx.base, url.toString(), { headers: basic ? { Authorization: basic } : {} }, this.timeoutMs);
    }
    if (!sent.res.ok) {
      const { text } = await errorText(ctx.base, sent, this.timeoutMs);
      const account = accountName(creds);
      const what = account ? `credentials for "${account}"` : creds?.identityToken ? 'the identity token' : 'anonymous access';
      const message = `token server ${realm} refused ${what} (HTTP ${sent.res.status}): ${text}${refusal !== null ? ` (${refusal})` : ''}`;
      throw sent.res.status === 401 || sent.res.status === 403 ? new PermissionDenied(message) : new Unavailable(message);
    }
    const body = await readBody(ctx.base, sent, TOKEN_BODY_LIMIT, this.timeoutMs);
    let doc: { token?: string; access_token?: string; expires_in?: number };
    try {
      doc = JSON.parse(body.toString('utf8')) as typeof doc;
    } catch {
      throw new EffectFailed(`token server ${realm} answered with something other than JSON`);
    }
    const token = doc.token || doc.access_token;
    if (!token) throw new EffectFailed(`token server ${realm} answered without a token`);
    const seconds = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : DEFAULT_TOKEN_SECONDS;
    // Renew a little early so a token does not expire between our check and the registry's.
    const cachedToken: CachedToken = { authorization: `Bearer ${token}`, expiresAt: this.now() + seconds * 900, ...(refusal !== null ? { withheld: refusal } : {}) };
    this.tokens.set(key, cachedToken);
    this.logger.debug({ realm, service, scopes, expiresIn: seconds }, 'registry token obtained');
    return cachedToken;
  }
}

/** Tokens are per account too: one user's token must never serve another's request. */
function cacheKey(ctx: AuthContext): string {
  const account = createHash('sha256').update(JSON.stringify(ctx.creds ?? {})).digest('hex').slice(0, 16);
  return `${ctx.base}|${ctx.scope}|${account}`;
}
