/**
 * The streaming server's one-time tokens (seed 002, kubelet's RequestCache): Exec, Attach and
 * PortForward park their validated request here and answer with a URL holding the token; the
 * streaming server takes the request back when the client connects. A token is consumed by its
 * first use and expires after a minute; at most 1000 wait at once, so a client that asks for URLs
 * and never uses them cannot grow the daemon.
 *
 * Every entry lives equally long, so insertion order is expiry order: a Map (which iterates in
 * insertion order) is the whole LRU, and expired entries are swept from its front.
 */
import { randomBytes } from 'node:crypto';
import { ResourceExhausted } from '../errors/catalogue.js';

export const MAX_CACHED_REQUESTS = 1000;
export const TOKEN_TTL_MS = 60_000;
/** 8 random bytes, URL-safe base64, as kubelet's tokens: unguessable within a minute's lifetime. */
const TOKEN_BYTES = 8;

interface Entry<T> {
  request: T;
  expiresAt: number;
}

export class RequestCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly now: () => number = () => Date.now(),
    private readonly limit = MAX_CACHED_REQUESTS,
    private readonly ttlMs = TOKEN_TTL_MS,
  ) {}

  /** Parks `request` and returns its token; RESOURCE_EXHAUSTED when `limit` live tokens wait. */
  insert(request: T): string {
    this.sweep();
    if (this.entries.size >= this.limit) {
      throw new ResourceExhausted(`too many streaming requests waiting to be used (${this.limit}); retry once some are used or expire (${this.ttlMs / 1000} s)`);
    }
    let token: string;
    do token = randomBytes(TOKEN_BYTES).toString('base64url');
    while (this.entries.has(token));
    this.entries.set(token, { request, expiresAt: this.now() + this.ttlMs });
    return token;
  }

  /** The request behind `token`, once: null when unknown, already used, or expired. */
  consume(token: string): T | null {
    const entry = this.entries.get(token);
    if (!entry) return null;
    this.entries.delete(token);
    return entry.expiresAt > this.now() ? entry.request : null;
  }

  get size(): number {
    this.sweep();
    return this.entries.size;
  }

  private sweep(): void {
    const now = this.now();
    for (const [token, entry] of this.entries) {
      if (entry.expiresAt > now) break; // the rest are younger
      this.entries.delete(token);
    }
  }
}
