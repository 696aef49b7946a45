/**
 * UpdatePodSandboxResources end to end (issue 16, item 4): the pod's resources plus overhead on
 * its real cgroup, its running containers lowered to fit, the update recorded on the pod, bad
 * requests refused with the right code, and an update caught by a kill -9 written at restore.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { rejects } from './grpc-assert.js';
import { removeCgroupParent } from './host-state.js';
import { Daemon, eventually, podConfig, tempPaths } from './daemon.js';
import type { RegistryFixture } from './registry-fixture.js';
import { BUSYBOX_IMAGE, startWithBusybox } from './busybox-daemon.js';
import { hostCgroupLayout } from '../runtime/cgroup-stats.js';

const paths = tempPaths('pc-pr-');
const daemon = new Daemon(paths);
const PARENT = `podchart-podres-${process.pid}`;
const MiB = 1024 * 1024;
const layout = hostCgroupLayout();
let registry: RegistryFixture;
let pod = '';
let big = '';
let small = '';
let flat = '';

/** A cgroup file of the pod (its cgroup_parent) or of one of its containers, as the kernel has it. */
function cgroupValue(file: 'memory' | 'quota', containerId?: string): string {
  const rel = containerId ? `${PARENT}/${containerId}` : PARENT;
  if (layout.version === 2) {
    const text = readFileSync(join(layout.root, rel, file === 'memory' ? 'memory.max' : 'cpu.max'), 'utf8').trim();
    return file === 'memory' ? text : text.split(' ')[0] ?? '';
  }
  return readFileSync(join(layout.root, file === 'memory' ? 'memory' : 'cpu', rel, file === 'memory' ? 'memory.limit_in_bytes' : 'cpu.cfs_quota_us'), 'utf8').trim();
}

async function container(podId: string, name: string, resources: Record<string, string>): Promise<string> {
  const config = { metadata: { name, attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: ['sleep', '3600'], linux: { resources } };
  const id = (await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId: podId, config, sandboxConfig: {} })).containerId;
  await daemon.cri.call('StartContainer', { containerId: id });
  return id;
}

type Recorded = { resources: Record<string, unknown> | null; overhead: Record<string, unknown> | null } | null;
const podState = async (id: string): Promise<{ state: string; actorState: string; resources: Recorded }> => {
  const r = await daemon.cri.call<{ status: { state: string }; info: Record<string, string> }>('PodSandboxStatus', { podSandboxId: id, verbose: true });
  const info = JSON.parse(r.info['info'] ?? '{}') as { actorState?: string; resources?: Recorded };
  return { state: r.status.state, actorState: info.actorState ?? '', resources: info.resources ?? null };
};
/** The recorded limits that were set (the request's other fields are its zero defaults). */
const setIn = (r: Record<string, unknown> | null | undefined): Record<string, unknown> =>
  Object.fromEntries(Object.entries(r ?? {}).filter(([, v]) => v !== '0' && v !== '' && !(Array.isArray(v) && v.length === 0) && !(typeof v === 'object' && v !== null && Object.keys(v).length === 0)));

before(async () => {
  registry = await startWithBusybox(daemon);
  pod = (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('podres', { linux: { cgroupParent: `/${PARENT}`, securityContext: { namespaceOptions: { network: 'POD', pid: 'POD', ipc: 'POD' } } } }) })).podSandboxId;
  big = await container(pod, 'big', { memoryLimitInBytes: String(200 * MiB), cpuQuota: '80000', cpuPeriod: '100000' });
  small = await container(pod, 'small', { memoryLimitInBytes: String(64 * MiB), cpuQuota: '20000', cpuPeriod: '100000' });
  flat = (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('podflat') })).podSandboxId;
});

after(async () => {
  await daemon.dispose();
  await registry?.stop();
  removeCgroupParent(PARENT);
});

describe('UpdatePodSandboxResources', () => {
  test('the pod cgroup gets resources plus overhead; a container above them is lowered, one below is kept', async () => {
    await daemon.cri.call('UpdatePodSandboxResources', {
      podSandboxId: pod,
      resources: { memoryLimitInBytes: String(128 * MiB), cpuQuota: '50000', cpuPeriod: '100000' },
      overhead: { memoryLimitInBytes: String(16 * MiB) },
    });
    assert.equal(cgroupValue('memory'), String(144 * MiB), 'the pod: 128 MiB and 16 MiB of overhead');
    assert.equal(cgroupValue('quota'), '50000');
    assert.equal(cgroupValue('memory', big), String(144 * MiB), 'the big container, lowered to its pod');
    assert.equal(cgroupValue('quota', big), '50000');
    assert.equal(cgroupValue('memory', small), String(64 * MiB), 'the small one, kept');
    assert.equal(cgroupValue('quota', small), '20000');
    const s = await podState(pod);
    assert.equal(s.state, 'SANDBOX_READY');
    assert.equal(s.actorState, 'RUNNING');
    assert.deepEqual(setIn(s.resources?.resources), { memoryLimitInBytes: String(128 * MiB), cpuQuota: '50000', cpuPeriod: '100000' }, 'recorded on the pod');
    assert.deepEqual(setIn(s.resources?.overhead), { memoryLimitInBytes: String(16 * MiB) });
    const big2 = await daemon.cri.call<{ status: { resources: { linux: { memoryLimitInBytes: string } | null } | null } }>('ContainerStatus', { containerId: big });
    assert.equal(big2.status.resources?.linux?.memoryLimitInBytes, String(144 * MiB), 'the container\'s own record says so too');
  });

  test('growing again: the pod gets more; the containers keep what they have', async () => {
    await daemon.cri.call('UpdatePodSandboxResources', { podSandboxId: pod, resources: { memoryLimitInBytes: String(512 * MiB), cpuQuota: '200000', cpuPeriod: '100000' } });
    assert.equal(cgroupValue('memory'), String(512 * MiB));
    assert.equal(cgroupValue('quota'), '200000');
    assert.equal(cgroupValue('memory', big), String(144 * MiB));
  });

  test('refused, with nothing changed: unknown pod, no pod cgroup, bad values, a stopped pod', async () => {
    await rejects(daemon.cri.call('UpdatePodSandboxResources', { podSandboxId: 'f'.repeat(64), resources: { cpuShares: '2' } }), grpcStatus.NOT_FOUND, /not found/);
    await rejects(daemon.cri.call('UpdatePodSandboxResources', { podSandboxId: flat, resources: { cpuShares: '512' } }), grpcStatus.FAILED_PRECONDITION, /no cgroup of its own .*cgroup_parent/);
    await rejects(daemon.cri.call('UpdatePodSandboxResources', { podSandboxId: pod, resources: { memoryLimitInBytes: '-5' } }), grpcStatus.INVALID_ARGUMENT, /resources\.memory_limit_in_bytes/);
    await rejects(daemon.cri.call('UpdatePodSandboxResources', { podSandboxId: pod, overhead: { cpusetCpus: 'x-y' } }), grpcStatus.INVALID_ARGUMENT, /overhead/);
    assert.equal(cgroupValue('memory'), String(512 * MiB), 'nothing was written');
    assert.deepEqual(await daemon.cri.call('UpdatePodSandboxResources', { podSandboxId: pod }), {}, 'nothing asked: nothing to do');
    await daemon.cri.call('StopPodSandbox', { podSandboxId: flat });
    await rejects(daemon.cri.call('UpdatePodSandboxResources', { podSandboxId: flat, resources: { cpuShares: '512' } }), grpcStatus.FAILED_PRECONDITION, /not ready/);
  });

  test('the kernel\'s refusal (below what the pod uses) is an error, and the pod stays ready', async () => {
    // 1 MiB is less than the pause and two shells use: the kernel cannot reclaim that much.
    await assert.rejects(daemon.cri.call('UpdatePodSandboxResources', { podSandboxId: pod, resources: { memoryLimitInBytes: String(MiB) } }), (err: Error & { code?: number }) => {
      assert.match(err.message, /memory/);
      return true;
    });
    const s = await podState(pod);
    assert.equal(s.state, 'SANDBOX_READY');
    assert.equal(s.actorState, 'RUNNING');
  });

  test('an update caught by a kill -9 after its intent was persisted is written at restore', async () => {
    await daemon.kill9();
    await daemon.start({ PODCHART_FAULT: 'sandbox.update.persisted' });
    await assert.rejects(daemon.cri.call('UpdatePodSandboxResources', { podSandboxId: pod, resources: { memoryLimitInBytes: String(300 * MiB) } }));
    await daemon.waitExit();
    assert.equal(cgroupValue('memory'), String(512 * MiB), 'the daemon died before the write');
    await daemon.start();
    const s = await eventually('restore to write it, and the pod to be RUNNING again', async () => {
      const now = await podState(pod).catch(() => null);
      return now?.actorState === 'RUNNING' && cgroupValue('memory') === String(300 * MiB) ? now : null;
    });
    assert.deepEqual(setIn(s.resources?.resources), { memoryLimitInBytes: String(300 * MiB) });
    assert.equal(s.resources?.overhead, null);
    const restored = await daemon.cri.call<{ info: Record<string, string> }>('PodSandboxStatus', { podSandboxId: pod, verbose: true });
    assert.match(restored.info['info'] ?? '', /"to":"UPDATING"/, 'its history shows the update taken again');
  });
});
