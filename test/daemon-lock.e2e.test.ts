/**
 * The daemon lock through real daemons (issue 12, item 9): a second podchartd on the same state is
 * refused while the first lives, and kill -9 of the first frees the lock at once, although its
 * pod's conmon and pause processes (its children once) live on.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Daemon, PODCHARTD, eventually, pausePodConfig, tempPaths } from './daemon.js';
import { processesOf } from './host-checks.js';

const paths = tempPaths('pc-lock-');
const first = new Daemon(paths);

after(async () => {
  if (first.exitCode !== null || !first.client) await first.start().catch(() => undefined);
  await first.dispose();
});

/** Runs a second podchartd on `paths`' state to its exit; returns its exit and stderr. */
async function second(): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const child = spawn(PODCHARTD, ['--root', paths.root, '--run', paths.run, '--socket', paths.socket, '--inspector', ''], {
    env: { ...process.env, PODCHART_CONFIG: join(paths.base, 'no-such-config.json') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.once('exit', (code, signal) => (exit = { code, signal }));
  try {
    const ended = await eventually('the second podchartd to exit', () => exit, 15_000);
    return { ...ended, stderr };
  } finally {
    if (exit === null) child.kill('SIGKILL');
  }
}

test('a lock file left behind is no lock, even when its pid is a live process that looks like podchartd', { timeout: 60_000 }, async () => {
  // The old pid file was judged by pid and a substring of /proc/<pid>/cmdline: a reused pid whose
  // command line says "podchartd" (an editor, a tail of its log) kept the daemon from starting.
  const lookalike = spawn('bash', ['-c', 'exec -a podchartd-lookalike sleep 600'], { stdio: 'ignore' });
  try {
    await eventually('the lookalike to exec', () => readFileSync(`/proc/${lookalike.pid}/cmdline`, 'utf8').includes('podchartd-lookalike'));
    mkdirSync(paths.run, { recursive: true, mode: 0o700 });
    for (const file of ['podchartd.lock', 'podchartd.pid']) writeFileSync(join(paths.run, file), `${lookalike.pid}\n`, { mode: 0o600 });
    await first.start();
    assert.equal(first.pid(), first.child?.pid, 'the daemon holds the lock and names itself in it');
  } finally {
    lookalike.kill('SIGKILL');
  }
});

test('a second daemon is refused while the first holds the lock; after kill -9 of the first a new one starts', { timeout: 120_000 }, async () => {
  if (!first.client) await first.start();
  const { podSandboxId } = await first.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: pausePodConfig('locked') });
  assert.ok(processesOf(podSandboxId).some((p) => p.cmdline.includes('conmon')), 'the pod should have a conmon');

  const refused = await second();
  assert.equal(refused.signal, null);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, new RegExp(`another podchartd \\(pid ${first.child?.pid}\\) is already running on this state`));
  assert.ok(await first.cri.call('Version', {}), 'the refused daemon disturbed the first');

  await first.kill9();
  // conmon and the pause process outlive the daemon: they must not have kept its lock.
  assert.ok(processesOf(podSandboxId).some((p) => p.cmdline.includes('conmon')), 'conmon died with the daemon');
  await first.start();
  assert.equal(first.pid(), first.child?.pid, 'the new daemon holds the lock');
  const pods = await first.cri.call<{ items: { id: string; state: string }[] }>('ListPodSandbox', {});
  assert.equal(pods.items.find((p) => p.id === podSandboxId)?.state, 'SANDBOX_READY', 'the pod was restored by the new daemon');
});
