import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eachLimited } from './pool.js';

/** A task the test finishes by hand, so concurrency is observed without timers. */
function gate(): { promise: Promise<void>; open: () => void; fail: (err: Error) => void } {
  let open = (): void => undefined;
  let fail = (_err: Error): void => undefined;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('at most `limit` run at once, every item runs once, in order of start', async () => {
  const gates = Array.from({ length: 7 }, gate);
  const started: number[] = [];
  let running = 0;
  let peak = 0;
  const done = eachLimited(gates, 3, async (g, i) => {
    started.push(i);
    peak = Math.max(peak, ++running);
    await g.promise;
    running--;
  });
  await settle();
  assert.deepEqual(started, [0, 1, 2]);
  for (const g of gates) {
    g.open();
    await settle();
  }
  await done;
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6]);
  assert.equal(peak, 3);
});

test('the first failure stops new starts, waits for those running, and is what is thrown', async () => {
  const gates = Array.from({ length: 6 }, gate);
  const started: number[] = [];
  const finished: number[] = [];
  const done = eachLimited(gates, 2, async (g, i) => {
    started.push(i);
    await g.promise;
    finished.push(i);
  });
  const outcome = done.then(
    () => null,
    (err: unknown) => err,
  );
  await settle();
  gates[0]?.fail(new Error('first'));
  await settle();
  gates[1]?.fail(new Error('second'));
  await settle();
  const err = await outcome;
  assert.ok(err instanceof Error && err.message === 'first');
  assert.deepEqual(started, [0, 1], 'nothing started after the failure');
  assert.deepEqual(finished, []);
});

test('a running item is waited for before the failure is reported', async () => {
  const slow = gate();
  let settled = false;
  const done = eachLimited([0, 1], 2, async (i) => {
    if (i === 0) throw new Error('boom');
    await slow.promise;
  }).finally(() => (settled = true));
  await settle();
  assert.equal(settled, false, 'still waiting for item 1');
  slow.open();
  await assert.rejects(done, /boom/);
});

test('no items: resolves at once', async () => {
  await eachLimited([], 3, () => Promise.reject(new Error('never')));
});
