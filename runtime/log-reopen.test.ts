import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Code, PodchartError } from '../errors/catalogue.js';
import { reopenLog, sendControl } from './log-reopen.js';

function fifo(): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pc-ctl-'));
  const path = join(dir, 'ctl');
  execFileSync('mkfifo', [path]);
  return { dir, path };
}

test('a control fifo nobody reads (conmon dead) is FAILED_PRECONDITION at once, even four at a time', async () => {
  const { dir, path } = fifo();
  try {
    // A blocking open would never return here; each of these would hold a libuv thread for ever.
    const results = await Promise.allSettled([1, 2, 3, 4, 5].map(() => reopenLog(path, null, 1_000)));
    for (const r of results) {
      assert.ok(r.status === 'rejected');
      assert.ok(r.reason instanceof PodchartError);
      assert.equal(r.reason.code, Code.FAILED_PRECONDITION);
      assert.match(r.reason.message, /conmon is not running/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with a reader, the message is written', async () => {
  const { dir, path } = fifo();
  const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    await sendControl(path, '2 0 0\n');
    assert.equal(readFileSync(reader, 'utf8'), '2 0 0\n');
  } finally {
    closeSync(reader);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing fifo is FAILED_PRECONDITION too', async () => {
  await assert.rejects(sendControl(join(tmpdir(), 'pc-no-such-ctl-fifo'), '2 0 0\n'), (err: unknown) => err instanceof PodchartError && err.code === Code.FAILED_PRECONDITION);
});
