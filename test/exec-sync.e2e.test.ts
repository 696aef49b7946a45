/**
 * ExecSync's timeout end to end, as critest checks it ("timeout exec process should be gone"): when
 * the timeout passes, the command and everything it started are killed and reaped before the call
 * returns, also when the command backgrounds children or exits leaving one on its stdout.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { CRICTL, needsCrictl } from './stock-clients.js';
import { status as grpcStatus } from '@grpc/grpc-js';
import { rejects } from './grpc-assert.js';
import { Daemon, eventually, podConfig, tempPaths } from './daemon.js';
import type { RegistryFixture } from './registry-fixture.js';
import { BUSYBOX_IMAGE, startWithBusybox } from './busybox-daemon.js';

const paths = tempPaths('pc-ex-');
const daemon = new Daemon(paths);
const IMAGE = BUSYBOX_IMAGE;
let registry: RegistryFixture;
let pod = '';
let seq = 0;

interface Proc { pid: number; comm: string; state: string; args: string }

/**
 * A container whose pid 1 never reaps (like critest's `top`), in a pid namespace of its own: a
 * process the exec leaves behind stays visible, alive or as a zombie.
 */
async function idleContainer(): Promise<{ id: string; pid: number }> {
  const name = `idle${++seq}`;
  const config = { metadata: { name, attempt: 0 }, image: { image: IMAGE }, command: ['busybox', 'tail', '-f', '/dev/null'], logPath: `${name}/0.log` };
  const { containerId } = await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId: pod, config, sandboxConfig: {} });
  await daemon.cri.call('StartContainer', { containerId });
  const { info } = await daemon.cri.call<{ info: Record<string, string> }>('ContainerStatus', { containerId, verbose: true });
  return { id: containerId, pid: (JSON.parse(info['info'] ?? '{}') as { pid: number }).pid };
}

/** The processes of the container's pid namespace, read from the host through the container's own /proc. */
function processesOf(containerPid: number): Proc[] {
  const procDir = `/proc/${containerPid}/root/proc`;
  const out: Proc[] = [];
  for (const entry of readdirSync(procDir)) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(join(procDir, entry, 'stat'), 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const state = stat.slice(stat.lastIndexOf(')') + 2)[0] ?? '?';
      const args = readFileSync(join(procDir, entry, 'cmdline'), 'utf8').replace(/\0/g, ' ').trim();
      out.push({ pid: Number(entry), comm, state, args });
    } catch {
      // exited between readdir and read
    }
  }
  return out;
}

const sleeps = (containerPid: number): Proc[] => processesOf(containerPid).filter((p) => p.comm === 'sleep');
const live = (procs: Proc[]): Proc[] => procs.filter((p) => p.state !== 'Z');

async function execSync(id: string, cmd: string[], timeout: number, deadlineMs = 60_000): Promise<{ stdout: Buffer; stderr: Buffer; exitCode: number }> {
  return daemon.cri.call('ExecSync', { containerId: id, cmd, timeout }, deadlineMs);
}

before(async () => {
  registry = await startWithBusybox(daemon);
  pod = (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('execpod', { logDirectory: join(paths.base, 'pod-logs') }) })).podSandboxId;
});

after(async () => {
  await daemon.dispose();
  await registry?.stop();
});

describe('ExecSync timeout', () => {
  test('the timed-out command is killed and reaped before the call returns (critest\'s pgrep check)', async () => {
    const c = await idleContainer();
    const started = Date.now();
    await rejects(execSync(c.id, ['sleep', '4321'], 1), grpcStatus.DEADLINE_EXCEEDED, /timed out after 1s/);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 900 && elapsed < 5_000, `ended at the timeout (${elapsed} ms)`);
    assert.deepEqual(sleeps(c.pid), [], 'no sleep left, not even a zombie');
    // What critest's `pgrep sleep` sees next, from inside (this busybox has no pgrep): every
    // process's name, zombies included.
    const check = await execSync(c.id, ['sh', '-c', 'cat /proc/[0-9]*/comm 2>/dev/null'], 10);
    assert.ok(!check.stdout.toString().split('\n').includes('sleep'), check.stdout.toString());
  });

  test('children the command put in the background go with it', async () => {
    const c = await idleContainer();
    const started = Date.now();
    await rejects(execSync(c.id, ['sh', '-c', 'sleep 4322 & sleep 4323'], 1), grpcStatus.DEADLINE_EXCEEDED, /timed out after 1s/);
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 5_000, `ended at the timeout (${elapsed} ms)`);
    assert.deepEqual(live(sleeps(c.pid)), [], 'no sleep of the exec alive');
    assert.deepEqual(live(processesOf(c.pid)).map((p) => p.args), ['busybox tail -f /dev/null'], 'only the container\'s own process is left');
  });

  test('a child that escaped into a session of its own goes too', async () => {
    const c = await idleContainer();
    await rejects(execSync(c.id, ['sh', '-c', 'busybox setsid sleep 4324 & sleep 4325'], 1), grpcStatus.DEADLINE_EXCEEDED, /timed out after 1s/);
    assert.deepEqual(live(sleeps(c.pid)), []);
  });

  test('a command that exits but leaves a child holding its stdout ends at the timeout, the child killed', async () => {
    const c = await idleContainer();
    const started = Date.now();
    await rejects(execSync(c.id, ['sh', '-c', 'sleep 4326 &'], 2), grpcStatus.DEADLINE_EXCEEDED, /timed out after 2s/);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1_900 && elapsed < 6_000, `ended at the timeout (${elapsed} ms)`);
    assert.deepEqual(live(sleeps(c.pid)), []);
  });

  test('without a timeout, the call\'s deadline bounds it and the command is killed then', async () => {
    const c = await idleContainer();
    // Ours names the cause; the client's own deadline may fire first.
    await rejects(execSync(c.id, ['sleep', '4327'], 0, 2_000), grpcStatus.DEADLINE_EXCEEDED, /deadline/i);
    await eventually('the command to be killed at the deadline', () => sleeps(c.pid).length === 0, 5_000);
  });

  test('a command that finishes in time is not disturbed, and its output is whole', async () => {
    const c = await idleContainer();
    const r = await execSync(c.id, ['sh', '-c', 'sleep 0.2; echo done; echo err >&2; exit 3'], 5);
    assert.equal(r.stdout.toString(), 'done\n');
    assert.equal(r.stderr.toString(), 'err\n');
    assert.equal(r.exitCode, 3);
  });

  test('a timeout no timer can hold (2 147 484 s and more) is a long wait, not an instant one', { skip: needsCrictl }, async () => {
    const c = await idleContainer();
    // crictl (Go) sets a deadline past 24.8 days too, which grpc-js clients cannot: then neither the
    // timeout nor the deadline fits a plain setTimeout.
    const socket = `unix://${paths.socket}`;
    for (const timeout of ['2147484', '9007199254']) {
      const r = spawnSync(CRICTL ?? 'crictl', ['--runtime-endpoint', socket, '--timeout', '1000h', 'exec', '--sync', '--timeout', timeout, c.id, 'sh', '-c', 'sleep 0.3; echo done'], { encoding: 'utf8', timeout: 60_000 });
      // crictl prints the reply's stdout, then a newline for each stream.
      assert.deepEqual({ done: r.stdout.startsWith('done\n'), status: r.status }, { done: true, status: 0 }, `timeout ${timeout}: ${r.stdout} ${r.stderr}`);
    }
  });
});
