import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { boundedSender } from './event-stream.js';

/** A peer that stopped reading, at Node's level: a Writable whose writes never complete. */
function stuckPeer(): Writable {
  return new Writable({ write: () => undefined });
}

test('a reader more than the limit behind is dropped once, and nothing more is buffered for it', () => {
  const out = stuckPeer();
  const drops: number[] = [];
  const send = boundedSender(out, 1000, (bytes) => drops.push(bytes));
  for (let i = 0; i < 9; i++) send('x'.repeat(100));
  assert.equal(out.destroyed, false, 'within the limit');
  assert.deepEqual(drops, []);
  send('x'.repeat(200));
  assert.equal(out.destroyed, true, 'past it');
  assert.deepEqual(drops, [1100]);
  send('x'.repeat(100));
  assert.deepEqual(drops, [1100], 'told once');
});

test('a reader that keeps up is never dropped', async () => {
  let got = 0;
  const out = new Writable({ write: (chunk: Buffer, _enc, done) => { got += chunk.length; setImmediate(done); } });
  const drops: number[] = [];
  const send = boundedSender(out, 1000, (bytes) => drops.push(bytes));
  for (let i = 0; i < 100; i++) {
    send('x'.repeat(100));
    await new Promise((resolve) => setImmediate(resolve));
  }
  await new Promise((resolve) => out.end(resolve));
  assert.equal(got, 10_000);
  assert.deepEqual(drops, []);
});
