/**
 * A full disk under the daemon's rootDir (issue 12, item 1), for real: rootDir is a small tmpfs of
 * its own, filled to the last block while pods run. The daemon must refuse new work with
 * UNAVAILABLE, say so in Status, never act on a state it could not commit, and once space is freed
 * carry on without a restart, with every transition of the full period written.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { status as grpcStatus } from '@grpc/grpc-js';
import { rejects } from './grpc-assert.js';
import { Daemon, eventually, pausePodConfig, podConfig, tempPaths } from './daemon.js';
import { BUSYBOX_IMAGE, startWithBusybox } from './busybox-daemon.js';
import type { RegistryFixture } from './registry-fixture.js';
import { processAlive } from './host-state.js';
import { fillDisk } from './fill-disk.js';

const paths = tempPaths('pc-full-');
const daemon = new Daemon(paths);
const filler = join(paths.root, 'filler');
let registry: RegistryFixture;

interface Condition { type: string; status: boolean; reason: string; message: string }

async function runtimeReady(): Promise<Condition> {
  const r = await daemon.cri.call<{ status: { conditions: Condition[] } }>('Status', {});
  const c = r.status.conditions.find((x) => x.type === 'RuntimeReady');
  assert.ok(c, 'Status has a RuntimeReady condition');
  return c;
}

async function runningContainer(pod: string, name: string): Promise<{ id: string; pid: number }> {
  const { containerId } = await daemon.cri.call<{ containerId: string }>('CreateContainer', {
    podSandboxId: pod, sandboxConfig: {},
    config: { metadata: { name, attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: ['sleep', '3600'], logPath: `${name}.log` },
  });
  await daemon.cri.call('StartContainer', { containerId });
  const r = await daemon.cri.call<{ info: { info: string } }>('ContainerStatus', { containerId, verbose: true });
  const pid = (JSON.parse(r.info.info) as { pid: number }).pid;
  assert.ok(pid > 0);
  return { id: containerId, pid };
}

async function podPid(pod: string): Promise<number> {
  const r = await daemon.cri.call<{ info: { info: string } }>('PodSandboxStatus', { podSandboxId: pod, verbose: true });
  return (JSON.parse(r.info.info) as { pid: number }).pid;
}

async function podState(pod: string): Promise<string> {
  return (await daemon.cri.call<{ status: { state: string } }>('PodSandboxStatus', { podSandboxId: pod })).status.state;
}

/** The persisted row of a container, read from the daemon's database as an operator would. */
function dbState(id: string): string | undefined {
  const db = new BetterSqlite3(join(paths.root, 'podchart.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT state FROM containers WHERE id = ?').pluck().get(id) as string | undefined;
  } finally {
    db.close();
  }
}

before(async () => {
  mkdirSync(paths.root, { recursive: true, mode: 0o700 });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256m,mode=0700', 'tmpfs', paths.root]);
  // A small filesystem of its own: the default 1 GiB reserve for images would not fit in it.
  registry = await startWithBusybox(daemon, { imageFsReserveBytes: 16 << 20 });
});

after(async () => {
  rmSync(filler, { force: true });
  await daemon.dispose().catch(() => undefined);
  await registry?.stop();
  execFileSync('umount', ['-l', paths.root]);
  rmSync(paths.base, { recursive: true, force: true });
});

test('a full rootDir: new work refused, nothing acted on uncommitted, all written once space is back', async () => {
  const { podSandboxId: stopping } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: pausePodConfig('full-stop') });
  const kept = await runningContainer(stopping, 'kept');
  const { podSandboxId: other } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('full-exit') });
  const dying = await runningContainer(other, 'dying');
  const pause = await podPid(stopping);
  assert.equal((await runtimeReady()).status, true);

  fillDisk(filler);
  // The first write after the disk filled up is this stop's: the transition is taken in memory,
  // but its effect must not run on a state the database refused.
  await rejects(daemon.cri.call('StopPodSandbox', { podSandboxId: stopping }), grpcStatus.UNAVAILABLE,
    /cannot write its state database \(SQLITE_(FULL|IOERR)[^)]*\): the request was taken, but nothing is done until writes succeed again/);
  const notReady = await runtimeReady();
  assert.equal(notReady.status, false, 'RuntimeReady while the database refuses writes');
  assert.equal(notReady.reason, 'StateDatabaseUnwritable');
  assert.match(notReady.message, /SQLITE_(FULL|IOERR)/);

  // New work is refused at the door, and leaves nothing behind.
  await rejects(daemon.cri.call('RunPodSandbox', { config: podConfig('full-new') }), grpcStatus.UNAVAILABLE, /nothing was changed: free space/);
  await rejects(daemon.cri.call('StopContainer', { containerId: kept.id, timeout: 0 }), grpcStatus.UNAVAILABLE, /state database/);
  const listed = await daemon.cri.call<{ items: { metadata: { name: string } }[] }>('ListPodSandbox', {});
  assert.deepEqual(listed.items.map((p) => p.metadata.name).sort(), ['full-exit', 'full-stop'], 'reads still work, and the refused pod is not there');

  // A process that dies meanwhile: the daemon sees it, and holds the row it cannot write.
  process.kill(dying.pid, 'SIGKILL');
  const seen = await eventually('the killed container to be reported exited', async () => {
    const s = await daemon.cri.call<{ status: { state: string; exitCode: number; reason: string; message: string } }>('ContainerStatus', { containerId: dying.id });
    return s.status.state === 'CONTAINER_EXITED' ? s.status : null;
  }).catch((err: Error) => {
    throw new Error(`${err.message}\n${daemon.logs().slice(-6000)}`);
  });
  assert.deepEqual([seen.exitCode, seen.reason], [137, 'Error'], 'the exit code is kept: conmon writes it under runDir, not on the full disk');
  assert.equal(dbState(dying.id), 'RUNNING', 'the exit is held, not on disk, while the disk is full');
  assert.ok(processAlive(pause) && processAlive(kept.pid), 'the refused stop did nothing to the pod');

  rmSync(filler);
  await eventually('RuntimeReady once space is back, without a restart', async () => (await runtimeReady()).status, 10_000);
  assert.equal(dbState(dying.id), 'EXITED', 'the exit seen while the disk was full is written');
  // The held stop goes on by itself now that its state is committed.
  await eventually('the held pod stop to finish', async () => (await podState(stopping)) === 'SANDBOX_NOTREADY' && !processAlive(pause), 30_000);
  assert.equal(processAlive(kept.pid), false, 'the pod\'s container was stopped with it');

  const { podSandboxId: fresh } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('full-after') });
  await daemon.cri.call('RemovePodSandbox', { podSandboxId: fresh });

  // Nothing lost: what a restart reads is what was seen.
  await daemon.kill9();
  await daemon.start();
  assert.equal(await podState(stopping), 'SANDBOX_NOTREADY');
  const after = await daemon.cri.call<{ status: { state: string; exitCode: number } }>('ContainerStatus', { containerId: dying.id });
  assert.deepEqual([after.status.state, after.status.exitCode], ['CONTAINER_EXITED', 137]);
});
