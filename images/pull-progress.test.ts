/** A pull's progress: its log lines, and its cancellation when nothing moves for the timeout. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import pino from 'pino';
import { DeadlineExceeded } from '../errors/catalogue.js';
import { PROGRESS_EVERY_MS, PullProgress, untilAborted } from './pull-progress.js';

function logger() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const line = JSON.parse(chunk.toString()) as Record<string, unknown>;
      lines.push(line);
      sink.emit('line', line);
      done();
    },
  });
  /** The first line whose message starts with `prefix`: one logged already, or the next. */
  const lineStarting = (prefix: string, timeoutMs: number): Promise<Record<string, unknown>> => {
    const seen = lines.find((l) => String(l['msg']).startsWith(prefix));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${prefix}" line within ${timeoutMs} ms`)), timeoutMs);
      const onLine = (l: Record<string, unknown>): void => {
        if (!String(l['msg']).startsWith(prefix)) return;
        clearTimeout(timer);
        sink.off('line', onLine);
        resolve(l);
      };
      sink.on('line', onLine);
    });
  };
  return { log: pino({ level: 'debug' }, sink), lines, lineStarting };
}

// The pull's timer does not hold the process open (unref: a daemon has its server for that); a test has this.
const alive = setInterval(() => undefined, 1000);
after(() => clearInterval(alive));

const LAYERS = [{ digest: `sha256:${'a'.repeat(64)}`, size: 4_000_000 }, { digest: `sha256:${'b'.repeat(64)}`, size: 1_000_000 }];

test('a pull that moves nothing for the timeout is cancelled: its signal aborts with a clear DEADLINE_EXCEEDED', async () => {
  const { log, lines } = logger();
  const p = new PullProgress(log, 'reg/x:1', LAYERS, 300);
  p.downloaded(LAYERS[0]!.digest, 1_500_000);
  await once(p.signal, 'abort', { signal: AbortSignal.timeout(5000) });
  const err = p.failure(new Error('the aborted download\'s own error'));
  assert.ok(err instanceof DeadlineExceeded);
  assert.match(err.message, /^pulling image reg\/x:1 made no progress for 0\.[3-9]\d* s \(imagePullProgressTimeoutMs is 300 ms\), at 1\.5 of 5\.0 MB: cancelled/);
  p.stop();
  assert.ok(lines.some((l) => l['msg'] === 'pull cancelled: no progress'));
});

test('progress keeps it alive; without a timeout it never cancels; otherwise the error is the pull\'s own', async () => {
  const { log } = logger();
  const p = new PullProgress(log, 'reg/x:1', LAYERS, 400);
  // Bytes every 100 ms for ten ticks (a second): past the timeout twice over, and never cancelled.
  await new Promise<void>((resolve) => {
    let ticks = 0;
    const feed = setInterval(() => {
      p.downloaded(LAYERS[0]!.digest, ++ticks * 1000);
      if (ticks < 10) return;
      clearInterval(feed);
      resolve();
    }, 100);
  });
  assert.equal(p.signal.aborted, false);
  const own = new Error('own');
  assert.equal(p.failure(own), own);
  p.stop();
  const never = new PullProgress(log, 'reg/x:1', LAYERS, 0);
  assert.equal(never.signal.aborted, false);
  never.stop();
});

test('the log line: bytes done and total in all and per layer, the rate, the layers done', async () => {
  const { log, lineStarting } = logger();
  const p = new PullProgress(log, 'reg/x:1', LAYERS, 0);
  p.downloaded(LAYERS[0]!.digest, 2_000_000);
  p.downloaded(LAYERS[1]!.digest, 1_000_000);
  p.layerDone(LAYERS[1]!.digest);
  const line = await lineStarting('pulling:', PROGRESS_EVERY_MS * 3).finally(() => p.stop());
  assert.match(String(line['msg']), /^pulling: 3\.0 of 5\.0 MB \(60%\) at [\d.]+ MB\/s, 1 of 2 layers done; aaaaaaaaaaaa 2\.0\/4\.0$/);
  assert.equal(line['bytes'], 3_000_000);
  assert.equal(line['total'], 5_000_000);
  assert.ok(typeof line['bytesPerSecond'] === 'number' && line['bytesPerSecond'] > 0);
  assert.deepEqual(line['layers'], [{ layer: 'aaaaaaaaaaaa', bytes: 2_000_000, total: 4_000_000, done: false }, { layer: 'bbbbbbbbbbbb', bytes: 1_000_000, total: 1_000_000, done: true }]);
});

test('untilAborted ends a read that would never end, and closes its source', async () => {
  let closed = false;
  const never: AsyncIterable<number> = {
    [Symbol.asyncIterator]: () => ({
      next: () => new Promise<IteratorResult<number>>(() => undefined),
      return: async () => { closed = true; return { done: true, value: undefined }; },
    }),
  };
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error('stalled')), 50);
  await assert.rejects(async () => { for await (const _ of untilAborted(never, controller.signal)) void _; }, /stalled/);
  assert.equal(closed, true);
  const items: number[] = [];
  async function* three(): AsyncGenerator<number> {
    yield* [1, 2, 3];
  }
  for await (const n of untilAborted(three(), new AbortController().signal)) items.push(n);
  assert.deepEqual(items, [1, 2, 3], 'not aborted: everything passes');
});
