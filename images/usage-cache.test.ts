import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageCache, type Usage } from './usage-cache.js';

/** A store whose walk is counted and whose size the test sets. */
function store() {
  const s = { bytes: 1, walks: 0 };
  const walk = async (): Promise<Usage> => {
    s.walks++;
    return { bytes: s.bytes, inodes: 1 };
  };
  return { s, walk };
}

test('polls are answered from memory; a change is seen by the next read', async () => {
  let now = 0;
  const { s, walk } = store();
  const cache = new UsageCache(walk, 30_000, () => now);
  assert.equal((await cache.get()).bytes, 1);
  for (let i = 0; i < 100; i++) await cache.get();
  assert.equal(s.walks, 1, 'one walk for a hundred polls');
  s.bytes = 2;
  cache.changed();
  assert.equal((await cache.get()).bytes, 2);
  assert.equal(s.walks, 2);
  now += 31_000;
  s.bytes = 3;
  assert.equal((await cache.get()).bytes, 2, 'a stale value is served while one walk refreshes it');
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal((await cache.get()).bytes, 3);
  assert.equal(s.walks, 3);
});

test('concurrent reads share one walk; a failed walk is retried by the next read', async () => {
  let fail = true;
  let walks = 0;
  const cache = new UsageCache(async () => {
    walks++;
    if (fail) throw new Error('disk gone');
    return { bytes: 5, inodes: 5 };
  });
  await assert.rejects(Promise.all([cache.get(), cache.get(), cache.get()]), /disk gone/);
  assert.equal(walks, 1);
  fail = false;
  assert.equal((await cache.get()).bytes, 5);
});
