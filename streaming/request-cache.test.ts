import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ResourceExhausted } from '../errors/catalogue.js';
import { MAX_CACHED_REQUESTS, RequestCache, TOKEN_TTL_MS } from './request-cache.js';

function clocked<T>(limit?: number): { cache: RequestCache<T>; advance: (ms: number) => void } {
  let now = 1_000_000;
  return { cache: new RequestCache<T>(() => now, limit), advance: (ms) => (now += ms) };
}

test('a token gives its request back once; an unknown token gives nothing', () => {
  const { cache } = clocked<{ cmd: string[] }>();
  const token = cache.insert({ cmd: ['sh'] });
  assert.match(token, /^[A-Za-z0-9_-]{11}$/);
  assert.equal(cache.consume('nope'), null);
  assert.deepEqual(cache.consume(token), { cmd: ['sh'] });
  assert.equal(cache.consume(token), null, 'a used token is refused');
});

test('a token expires after a minute', () => {
  const { cache, advance } = clocked<string>();
  const early = cache.insert('early');
  const late = cache.insert('late');
  advance(TOKEN_TTL_MS - 1);
  assert.equal(cache.consume(early), 'early');
  advance(1);
  assert.equal(cache.consume(late), null);
  assert.equal(cache.size, 0);
});

test('at most 1000 wait at once; expired ones make room', () => {
  const { cache, advance } = clocked<number>();
  for (let i = 0; i < MAX_CACHED_REQUESTS; i++) cache.insert(i);
  assert.throws(() => cache.insert(-1), (err: unknown) => err instanceof ResourceExhausted && /too many streaming requests/.test(err.message));
  advance(TOKEN_TTL_MS);
  const token = cache.insert(7);
  assert.equal(cache.size, 1);
  assert.equal(cache.consume(token), 7);
});

test('against a model: any sequence of inserts, uses and time passing (property)', () => {
  type Op = { kind: 'insert' } | { kind: 'consume'; pick: number } | { kind: 'wait'; ms: number };
  const op = fc.oneof(
    fc.constant<Op>({ kind: 'insert' }),
    fc.nat(50).map((pick): Op => ({ kind: 'consume', pick })),
    fc.integer({ min: 0, max: TOKEN_TTL_MS }).map((ms): Op => ({ kind: 'wait', ms })),
  );
  fc.assert(fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
    const { cache, advance } = clocked<number>(5);
    let now = 0;
    const issued: { token: string; value: number; at: number; used: boolean }[] = [];
    for (const o of ops) {
      if (o.kind === 'wait') {
        advance(o.ms);
        now += o.ms;
      } else if (o.kind === 'insert') {
        const live = issued.filter((t) => !t.used && now - t.at < TOKEN_TTL_MS).length;
        if (live >= 5) assert.throws(() => cache.insert(issued.length), ResourceExhausted);
        else issued.push({ token: cache.insert(issued.length), value: issued.length, at: now, used: false });
      } else if (issued.length > 0) {
        const t = issued[o.pick % issued.length];
        if (!t) continue;
        const expected = !t.used && now - t.at < TOKEN_TTL_MS ? t.value : null;
        assert.equal(cache.consume(t.token), expected);
        t.used = true;
      }
    }
  }), { numRuns: 300 });
});
