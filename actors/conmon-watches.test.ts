import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConmonWatches } from './conmon-watches.js';

/** Resolves with the pid `onGone` reports, or rejects after `ms` (the deadline of the test). */
function gone(ms: number): { onGone: (pid: number) => void; reported: Promise<number> } {
  let onGone: (pid: number) => void = () => undefined;
  const reported = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not reported within ${ms} ms`)), ms);
    onGone = (pid) => {
      clearTimeout(timer);
      resolve(pid);
    };
  });
  return { onGone, reported };
}

test('a watched process that exits is reported once, by the one shared timer; a live one is not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-cw-'));
  const dying = spawn('sleep', ['600'], { stdio: 'ignore' });
  const living = spawn('sleep', ['600'], { stdio: 'ignore' });
  const watches = new ConmonWatches(20);
  try {
    writeFileSync(join(dir, 'dying.pid'), String(dying.pid));
    writeFileSync(join(dir, 'living.pid'), String(living.pid));
    const a = gone(5_000);
    let livingReported = 0;
    watches.follow('dying', join(dir, 'dying.pid'), a.onGone);
    watches.follow('living', join(dir, 'living.pid'), () => (livingReported += 1));
    watches.follow('dying', join(dir, 'dying.pid'), () => assert.fail('a second follow of the same key is ignored'));
    dying.kill('SIGKILL');
    assert.equal(await a.reported, dying.pid);
    assert.equal(livingReported, 0);
  } finally {
    watches.stopAll();
    dying.kill('SIGKILL');
    living.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a pid file naming a process already gone is reported at once; no pid file, nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-cw-'));
  const child = spawn('true', { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  const watches = new ConmonWatches(60_000); // no poll within the test: the follow itself tells
  try {
    writeFileSync(join(dir, 'conmon.pid'), String(child.pid));
    const a = gone(5_000);
    watches.follow('c', join(dir, 'conmon.pid'), a.onGone);
    assert.equal(await a.reported, child.pid);
    watches.follow('none', join(dir, 'missing.pid'), () => assert.fail('nothing to watch'));
  } finally {
    watches.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
});
