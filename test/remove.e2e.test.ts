/**
 * Removal end to end (issue 12, items 4 and 15), with real runc under conmon:
 *  - a forced remove that fails reports what failed, never an exit it did not observe, and the
 *    next RemoveContainer retries (also after a daemon restart);
 *  - concurrent RemoveContainer / StopContainer+RemoveContainer / RemovePodSandbox calls all
 *    succeed once the thing is gone: the second caller waits for the first (CRI: Remove is
 *    idempotent; containerd and CRI-O serialise the same way).
 * The failure runc does not produce on demand comes from `runc-fp`, a named wrapper of the real
 * binary (after containerd integration/failpoint/cmd/runc-fp): while its fault file exists, the
 * runc commands it lists fail.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { rejects } from './grpc-assert.js';
import { Daemon, eventually, podConfig, tempPaths } from './daemon.js';
import { BUSYBOX_IMAGE } from './busybox-daemon.js';
import { busyboxLayer, buildImage, pushImage } from './image-builder.js';
import { startRegistry, type RegistryFixture } from './registry-fixture.js';
import { processAlive } from './host-state.js';

interface Status { id: string; state: string; exitCode: number; reason: string; message: string; finishedAt: string }

const paths = tempPaths('pc-rm-');
const daemon = new Daemon(paths);
let registry: RegistryFixture;
const REAL_RUNC = '/usr/sbin/runc';
const FP = join(paths.base, 'runc-fp');
const FP_FAULTS = join(paths.base, 'runc-fp.faults');
const CONFIG = join(paths.base, 'config.json');

/** runc-fp: fails each runc command named in FP_FAULTS while that file exists; else it is runc. */
function writeRuncFp(): void {
  writeFileSync(FP, `#!/bin/sh
if [ -f '${FP_FAULTS}' ]; then
  for verb in $(cat '${FP_FAULTS}'); do
    for arg in "$@"; do
      if [ "$arg" = "$verb" ]; then echo "runc-fp: injected failure of runc $verb" >&2; exit 1; fi
    done
  done
fi
exec ${REAL_RUNC} "$@"
`, { mode: 0o755 });
}
const failRunc = (...verbs: string[]): void => writeFileSync(FP_FAULTS, verbs.join(' '));
const healRunc = (): void => rmSync(FP_FAULTS, { force: true });

async function runPod(name: string, runtimeHandler = ''): Promise<string> {
  const r = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig(name), runtimeHandler });
  return r.podSandboxId;
}
/** A running container whose pid 1 ignores SIGTERM (so a stop waits its full timeout). */
async function runContainer(pod: string, name: string): Promise<{ id: string; pid: number }> {
  const { containerId } = await daemon.cri.call<{ containerId: string }>('CreateContainer', {
    podSandboxId: pod, sandboxConfig: {},
    config: { metadata: { name, attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: ['sleep', '1000'] },
  });
  await daemon.cri.call('StartContainer', { containerId });
  return { id: containerId, pid: (await verbose(containerId)).pid };
}
async function status(id: string): Promise<Status> {
  return (await daemon.cri.call<{ status: Status }>('ContainerStatus', { containerId: id })).status;
}
async function verbose(id: string): Promise<{ pid: number; actorState: string; lastError: string | null }> {
  const r = await daemon.cri.call<{ info: { info: string } }>('ContainerStatus', { containerId: id, verbose: true });
  return JSON.parse(r.info.info) as { pid: number; actorState: string; lastError: string | null };
}
const gone = (id: string): Promise<void> => rejects(status(id), grpcStatus.NOT_FOUND, /not found/);
/** The janitor's jobs as the inspector shows them. */
async function cleanupApi(): Promise<{ job: { id: string }; attempts: number; lastError: string | null }[]> {
  return (await fetch(`http://127.0.0.1:${daemon.inspectorPort}/api/cleanup`)).json() as Promise<{ job: { id: string }; attempts: number; lastError: string | null }[]>;
}

before(async () => {
  writeRuncFp();
  registry = await startRegistry();
  const image = await buildImage({ layers: [{ compression: 'gzip', entries: busyboxLayer() }], config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] }, format: 'docker' });
  await pushImage(registry, 'library/busybox', '1.36', image);
  writeFileSync(CONFIG, JSON.stringify({
    registries: { hosts: { 'docker.io': { mirrors: [registry.url] } } },
    runtimeHandlers: { 'runc-fp': { path: FP } },
  }));
  await daemon.start({ PODCHART_CONFIG: CONFIG });
  await daemon.cri.callImage('PullImage', { image: { image: BUSYBOX_IMAGE } }, 120_000);
});

// A test that fails mid-way must not leave runc failing for the next one.
afterEach(healRunc);

after(async () => {
  healRunc();
  await daemon.dispose();
  await registry?.stop();
});

describe('a failed forced remove (item 4)', () => {
  test('kill and delete fail: the container is not reported exited, says what failed, and the next Remove retries', async () => {
    const pod = await runPod('rm-fail-kill', 'runc-fp');
    const c = await runContainer(pod, 'victim');
    failRunc('kill', 'delete');
    await rejects(daemon.cri.call('RemoveContainer', { containerId: c.id }), grpcStatus.INTERNAL, /runc-fp: injected failure/);
    assert.ok(processAlive(c.pid), 'the process still runs');
    const s = await status(c.id);
    assert.notEqual(s.state, 'CONTAINER_EXITED', 'no exit was observed, so none is reported');
    assert.equal(s.finishedAt, '0');
    assert.equal(s.reason, 'RemoveFailed');
    assert.match(s.message, /removal failed: .*runc-fp: injected failure/);
    assert.equal((await verbose(c.id)).actorState, 'REMOVE_FAILED');
    healRunc();
    await daemon.cri.call('RemoveContainer', { containerId: c.id });
    await gone(c.id);
    await eventually('the container process to be gone', () => !processAlive(c.pid));
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod });
  });

  test('only delete fails: the removal answers once the process is dead; the janitor keeps the runc state job, and the next start finishes it', async () => {
    const pod = await runPod('rm-fail-delete', 'runc-fp');
    const c = await runContainer(pod, 'victim');
    const state = join(paths.run, 'runtime', 'runc-fp', c.id);
    assert.ok(existsSync(state), 'runc keeps state for the running container');
    failRunc('delete');
    await daemon.cri.call('RemoveContainer', { containerId: c.id });
    await gone(c.id);
    assert.ok(!processAlive(c.pid), 'nothing of it runs once RemoveContainer has answered');
    const failed = await eventually('the failed runc delete to be kept as a cleanup job', async () => (await cleanupApi()).find((j) => j.job.id === c.id && j.attempts > 0));
    assert.match(failed.lastError ?? '', /runc-fp: injected failure/);
    assert.ok(existsSync(state), 'its runc state is still there');
    healRunc();
    await daemon.stop();
    await daemon.start({ PODCHART_CONFIG: CONFIG });
    await daemon.swept();
    assert.ok(!existsSync(state), 'the next start deleted its runc state');
    assert.ok(!existsSync(join(paths.root, 'containers', c.id)), 'and its dir');
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod });
  });

  test('restored in REMOVE_FAILED: restore retries, and RemoveContainer retries after that fails too', async () => {
    const pod = await runPod('rm-fail-restore', 'runc-fp');
    const c = await runContainer(pod, 'victim');
    failRunc('kill', 'delete');
    await rejects(daemon.cri.call('RemoveContainer', { containerId: c.id }), grpcStatus.INTERNAL, /injected failure/);
    await daemon.kill9();
    await daemon.start({ PODCHART_CONFIG: CONFIG });
    const v = await eventually('the restored removal to fail again', async () => {
      const x = await verbose(c.id);
      return x.actorState === 'REMOVE_FAILED' ? x : null;
    });
    assert.match(v.lastError ?? '', /injected failure/);
    assert.notEqual((await status(c.id)).state, 'CONTAINER_EXITED');
    assert.ok(processAlive(c.pid), 'the process still runs');
    healRunc();
    await daemon.cri.call('RemoveContainer', { containerId: c.id });
    await gone(c.id);
    await eventually('the container process to be gone', () => !processAlive(c.pid));
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod });
  });
});

describe('concurrent removes succeed once the thing is gone (item 15)', () => {
  test('two RemoveContainer at once: both succeed, it is gone', async () => {
    const pod = await runPod('rm-2ctr');
    const c = await runContainer(pod, 'twice');
    await Promise.all([
      daemon.cri.call('RemoveContainer', { containerId: c.id }),
      daemon.cri.call('RemoveContainer', { containerId: c.id }),
    ]);
    await gone(c.id);
    assert.ok(!processAlive(c.pid));
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod });
  });

  test('StopContainer and RemoveContainer at once: both succeed, it is gone', async () => {
    const pod = await runPod('rm-stop');
    const c = await runContainer(pod, 'stopped');
    // sleep as pid 1 ignores SIGTERM: the stop waits its 3 s, so the remove arrives during it.
    await Promise.all([
      daemon.cri.call('StopContainer', { containerId: c.id, timeout: 3 }),
      daemon.cri.call('RemoveContainer', { containerId: c.id }),
    ]);
    await gone(c.id);
    assert.ok(!processAlive(c.pid));
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod });
  });

  test('two RemovePodSandbox at once, with a running container: both succeed, it is gone', async () => {
    const pod = await runPod('rm-2pod');
    const c = await runContainer(pod, 'inside');
    await Promise.all([
      daemon.cri.call('RemovePodSandbox', { podSandboxId: pod }),
      daemon.cri.call('RemovePodSandbox', { podSandboxId: pod }),
    ]);
    await rejects(daemon.cri.call('PodSandboxStatus', { podSandboxId: pod }), grpcStatus.NOT_FOUND, /not found/);
    await gone(c.id);
    assert.ok(!processAlive(c.pid));
  });

  test('RemovePodSandbox and StopPodSandbox at once: both succeed, it is gone', async () => {
    const pod = await runPod('rm-stop-pod');
    const c = await runContainer(pod, 'inside');
    await Promise.all([
      daemon.cri.call('RemovePodSandbox', { podSandboxId: pod }),
      daemon.cri.call('StopPodSandbox', { podSandboxId: pod }),
    ]);
    await rejects(daemon.cri.call('PodSandboxStatus', { podSandboxId: pod }), grpcStatus.NOT_FOUND, /not found/);
    assert.ok(!processAlive(c.pid));
  });

  test('a failed removal fails both concurrent callers with the same error; the next one succeeds', async () => {
    const pod = await runPod('rm-2fail', 'runc-fp');
    const c = await runContainer(pod, 'victim');
    failRunc('kill', 'delete');
    const results = await Promise.allSettled([
      daemon.cri.call('RemoveContainer', { containerId: c.id }),
      daemon.cri.call('RemoveContainer', { containerId: c.id }),
    ]);
    const details = results.map((r) => (r.status === 'rejected' ? (r.reason as { code: number; details: string }) : null));
    for (const d of details) {
      assert.ok(d, 'both fail');
      assert.equal(d.code, grpcStatus.INTERNAL, d.details);
      assert.match(d.details, /injected failure/);
    }
    assert.equal(details[0]?.details, details[1]?.details, 'one removal, one outcome');
    healRunc();
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod });
    await gone(c.id);
    assert.ok(!processAlive(c.pid));
  });
});

describe('cleanup after the reply (issue 14, item 3: the janitor)', () => {
  const mountsOf = (id: string): string[] => readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(id));
  const leftOf = (id: string): string[] => [
    ...[join(paths.root, 'containers', id), join(paths.root, 'sandboxes', id), join(paths.run, 'sandboxes', id), join(paths.run, 'runtime', 'runc', id)].filter((d) => existsSync(d)),
    ...mountsOf(id),
  ];
  const jobs = (): string[] => daemon.cleanupJobs();

  test('RemoveContainer and RemovePodSandbox answer; then nothing of either is left, and no job', async () => {
    const pod = await runPod('janitor-ok');
    const c = await runContainer(pod, 'swept');
    assert.ok(existsSync(join(paths.root, 'containers', c.id)), 'the container has a dir to clean');
    assert.ok(mountsOf(c.id).length > 0, 'and a rootfs mount');
    await daemon.cri.call('RemoveContainer', { containerId: c.id });
    await gone(c.id);
    assert.ok(!processAlive(c.pid), 'nothing of it runs once RemoveContainer has answered');
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod });
    await eventually('the janitor to leave nothing of the container and the pod', () => leftOf(c.id).length + leftOf(pod).length === 0 && jobs().length === 0);
  });

  test('a crash mid-cleanup, after the unmount: the next start finishes the job', async () => {
    const pod = await runPod('janitor-crash');
    const c = await runContainer(pod, 'half-swept');
    await daemon.stop();
    await daemon.start({ PODCHART_CONFIG: CONFIG, PODCHART_FAULT: 'cleanup.container.unmounted' });
    const died = daemon.waitExit(30_000);
    // The reply may or may not get out before the kill: both are fine, what counts is the end state.
    await daemon.cri.call('RemoveContainer', { containerId: c.id }).catch(() => undefined);
    await died;
    assert.ok(existsSync(join(paths.root, 'containers', c.id)), 'killed before its dir was deleted');
    await daemon.start({ PODCHART_CONFIG: CONFIG });
    await gone(c.id);
    await eventually('the restarted daemon to finish the job', () => leftOf(c.id).length === 0 && jobs().length === 0);
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod });
    await eventually('the pod to be swept too', () => leftOf(pod).length === 0 && jobs().length === 0);
  });
});

test('a cleanup that fails is named in the log and the inspector, kept, and done at the next start', async () => {
  const pod = await runPod('janitor-busy');
  const c = await runContainer(pod, 'pinned-down');
  // A mount inside its dir that the janitor did not make: the dir cannot be deleted (EBUSY).
  const blocker = join(paths.root, 'containers', c.id, 'blocker');
  mkdirSync(blocker);
  execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', blocker]);
  try {
    await daemon.cri.call('RemoveContainer', { containerId: c.id });
    await gone(c.id);
    const failed = await eventually('the failed cleanup to show in the inspector', async () => (await cleanupApi()).find((j) => j.job.id === c.id && j.attempts > 0));
    assert.match(failed.lastError ?? '', /EBUSY|busy/i);
    assert.ok(daemon.logs().split('\n').some((l) => l.includes(`cleanup after the removal of container ${c.id} failed`)), 'the log names it');
  } finally {
    execFileSync('umount', [blocker]);
  }
  await daemon.stop();
  await daemon.start({ PODCHART_CONFIG: CONFIG });
  await daemon.swept();
  assert.ok(!existsSync(join(paths.root, 'containers', c.id)), 'the next start finished it');
  await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod });
});
