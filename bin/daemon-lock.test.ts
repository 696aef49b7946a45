import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireDaemonLock, DaemonLocked } from './daemon-lock.js';
import { untilEvent } from '../test/until-event.js';
import { eventually } from '../test/daemon.js';

const LOCK_MODULE = new URL('./daemon-lock.js', import.meta.url).href;

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'podchart-lock-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** Another "daemon": a process that takes the lock, starts a long-lived child (as conmon is), and waits. */
async function holder(lock: string): Promise<{ proc: ChildProcess; grandchild: number }> {
  const script = `
    import { acquireDaemonLock } from ${JSON.stringify(LOCK_MODULE)};
    import { spawn } from 'node:child_process';
    acquireDaemonLock(${JSON.stringify(lock)});
    const sleeper = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
    sleeper.unref();
    process.stdout.write('locked ' + sleeper.pid + '\\n');
    setInterval(() => undefined, 1000);
  `;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const grandchild = await untilEvent<number>('the holder to take the lock', 15_000, (done, fail) => {
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /locked (\d+)/.exec(out);
      if (m?.[1]) done(Number(m[1]));
    };
    const onExit = (code: number | null): void => fail(new Error(`holder exited with ${code}: ${out}`));
    proc.stdout?.on('data', onData);
    proc.once('exit', onExit);
    return () => {
      proc.stdout?.off('data', onData);
      proc.off('exit', onExit);
    };
  });
  return { proc, grandchild };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('a held lock refuses a second taker, naming the holder; kill -9 of the holder frees it although its child lives on', () =>
  withDir(async (dir) => {
    const lock = join(dir, 'podchartd.lock');
    const { proc, grandchild } = await holder(lock);
    try {
      assert.throws(() => acquireDaemonLock(lock), (err: Error) => err instanceof DaemonLocked && err.message.includes(`pid ${proc.pid}`) && /already running/.test(err.message));
      const exited = untilEvent<void>('the holder to die', 15_000, (done) => {
        proc.once('exit', () => done());
        return () => undefined;
      });
      proc.kill('SIGKILL');
      await exited;
      assert.ok(alive(grandchild), 'the holder\'s child (a conmon stand-in) should outlive it');
      // The kernel drops the lock with the last descriptor; no stale file is judged.
      const release = await eventually('the lock to be free after kill -9', () => {
        try {
          return acquireDaemonLock(lock);
        } catch (err) {
          if (err instanceof DaemonLocked) return null;
          throw err;
        }
      });
      assert.equal(readFileSync(lock, 'utf8'), `${process.pid}\n`);
      release();
    } finally {
      proc.kill('SIGKILL');
      try {
        process.kill(grandchild, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }));

test('a graceful release frees the lock at once and leaves no pid behind; the file stays', () =>
  withDir(async (dir) => {
    const lock = join(dir, 'podchartd.lock');
    const release = acquireDaemonLock(lock);
    assert.equal(spawnSync('flock', ['--nonblock', '--exclusive', lock, 'true']).status, 1, 'flock(1) should see the lock held');
    release();
    release(); // idempotent
    assert.equal(readFileSync(lock, 'utf8'), '');
    assert.equal(spawnSync('flock', ['--nonblock', '--exclusive', lock, 'true']).status, 0, 'the lock should be free');
    acquireDaemonLock(lock)();
  }));

test('a missing flock binary is an error that says what is missing, not a refusal', () =>
  withDir(async (dir) => {
    assert.throws(() => acquireDaemonLock(join(dir, 'l'), join(dir, 'no-flock')), (err: Error) => !(err instanceof DaemonLocked) && /cannot take the daemon lock .*\(util-linux\): .*ENOENT/.test(err.message));
  }));
