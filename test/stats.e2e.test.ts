/**
 * Stats end to end: ContainerStats, ListContainerStats, PodSandboxStats and ListPodSandboxStats on
 * a real daemon, read from the real cgroups and writable layers of containers that burn CPU,
 * hold memory and write files, as kubelet's CRI stats provider polls them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { rejects } from './grpc-assert.js';
import { removeCgroupParent } from './host-state.js';
import { Daemon, eventually, podConfig, tempPaths } from './daemon.js';
import type { RegistryFixture } from './registry-fixture.js';
import { BUSYBOX_IMAGE, startWithBusybox } from './busybox-daemon.js';

interface U64 { value: string }
interface CpuUsage { timestamp: string; usageCoreNanoSeconds: U64 | null; usageNanoCores: U64 | null }
interface MemoryUsage { timestamp: string; workingSetBytes: U64 | null; availableBytes: U64 | null; usageBytes: U64 | null; rssBytes: U64 | null;
  pageFaults: U64 | null; majorPageFaults: U64 | null }
interface ContainerStats {
  attributes: { id: string; metadata: { name: string; attempt: number }; labels: Record<string, string>; annotations: Record<string, string> };
  cpu: CpuUsage | null;
  memory: MemoryUsage | null;
  writableLayer: { timestamp: string; fsId: { mountpoint: string } | null; usedBytes: U64 | null; inodesUsed: U64 | null } | null;
}
interface NetInterface { name: string; rxBytes: U64 | null; rxErrors: U64 | null; txBytes: U64 | null; txErrors: U64 | null }
interface PodStats {
  attributes: { id: string; metadata: { name: string }; labels: Record<string, string>; annotations: Record<string, string> };
  linux: { cpu: CpuUsage | null; memory: MemoryUsage | null; process: { timestamp: string; processCount: U64 | null } | null; containers: ContainerStats[];
    network: { timestamp: string; defaultInterface: NetInterface | null; interfaces: NetInterface[] } | null } | null;
}

const paths = tempPaths('pc-st-');
const daemon = new Daemon(paths);
const logDir = join(paths.base, 'pod-logs');
const IMAGE = BUSYBOX_IMAGE;
const MB = 1_000_000n;
/** A cgroup parent of this run's own, so the pod-parent path is exercised and cleaned up after. */
const PARENT = `podchart-stats-${process.pid}`;
let registry: RegistryFixture;
let pod = '';
let otherPod = '';
let burner = '';
let hog = '';
const inPod: string[] = [];

/** A UInt64Value as a bigint; an unset one fails the test where it is read. */
function u64(v: U64 | null | undefined, what: string): bigint {
  assert.ok(v && /^\d+$/.test(v.value), `${what} is set (got ${JSON.stringify(v)})`);
  return BigInt(v.value);
}

async function runPod(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  return (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig(name, { logDirectory: logDir, ...extra }) })).podSandboxId;
}
async function create(podId: string, name: string, script: string, extra: Record<string, unknown> = {}): Promise<string> {
  const config = { metadata: { name, attempt: 0 }, image: { image: IMAGE }, command: ['/bin/sh', '-c', script], logPath: `${name}/0.log`, labels: { app: name }, ...extra };
  return (await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId: podId, config, sandboxConfig: {} })).containerId;
}
async function run(podId: string, name: string, script: string, extra: Record<string, unknown> = {}): Promise<string> {
  const id = await create(podId, name, script, extra);
  await daemon.cri.call('StartContainer', { containerId: id });
  return id;
}
async function stats(id: string): Promise<ContainerStats> {
  return (await daemon.cri.call<{ stats: ContainerStats }>('ContainerStats', { containerId: id })).stats;
}
async function listStats(filter: object | null): Promise<ContainerStats[]> {
  return (await daemon.cri.call<{ stats: ContainerStats[] }>('ListContainerStats', { filter })).stats;
}
async function podStats(id: string): Promise<PodStats> {
  return (await daemon.cri.call<{ stats: PodStats }>('PodSandboxStats', { podSandboxId: id })).stats;
}
const idsOf = (list: { attributes: { id: string } }[]): string[] => list.map((s) => s.attributes.id).sort();

before(async () => {
  // A writable layer is walked again once its last walk is this old (10 s by default): short here,
  // so the test of a growing layer does not wait out the default.
  registry = await startWithBusybox(daemon, { writableLayerUsagePeriodMs: 500 });
  pod = await runPod('statspod');
  otherPod = await runPod('otherpod');
  burner = await run(pod, 'burner', 'while true; do :; done');
  // tail keeps the whole 50 MB line while its input stays open (sleep holds the pipe).
  hog = await run(pod, 'hog', '(busybox head -c 50000000 /dev/zero; exec sleep 1000) | busybox tail', {
    linux: { resources: { memoryLimitInBytes: String(200 * 1024 * 1024) } },
  });
  inPod.push(burner, hog);
});

after(async () => {
  await daemon.dispose();
  await registry?.stop();
  removeCgroupParent(PARENT);
});

describe('ContainerStats', () => {
  test('a CPU burner: usage grows between calls, and the second call has a rate', async () => {
    const first = await stats(burner);
    assert.equal(first.attributes.id, burner);
    assert.equal(first.attributes.metadata.name, 'burner');
    assert.equal(first.attributes.labels['app'], 'burner');
    const cpu1 = u64(first.cpu?.usageCoreNanoSeconds, 'usage_core_nano_seconds');
    assert.equal(u64(first.cpu?.usageNanoCores, 'usage_nano_cores'), 0n, 'no rate without a previous sample');
    const ts = BigInt(first.cpu?.timestamp ?? '0');
    assert.ok(ts > BigInt(Date.now() - 60_000) * 1_000_000n && ts <= BigInt(Date.now()) * 1_000_000n, `timestamp ${ts} is now, in ns`);
    const second = await eventually('a second sample with more CPU and a rate', async () => {
      const s = await stats(burner);
      return u64(s.cpu?.usageCoreNanoSeconds, 'cpu') > cpu1 && u64(s.cpu?.usageNanoCores, 'rate') > 0n ? s : null;
    });
    const rate = u64(second.cpu?.usageNanoCores, 'usage_nano_cores');
    // A busy loop is up to one core: nano-cores, not per-mille or per-second of a millisecond.
    assert.ok(rate > 50_000_000n && rate < BigInt(availableParallelism()) * 1_200_000_000n, `rate ${rate} nano-cores`);
  });

  test('memory: the working set of a container holding 50 MB, and what its limit leaves', async () => {
    const s = await eventually('hog to hold its 50 MB', async () => {
      const x = await stats(hog);
      // Both settle as tail reads the pipe; sample until they have.
      return u64(x.memory?.workingSetBytes, 'working set') > 40n * MB && u64(x.memory?.rssBytes, 'rss') > 40n * MB ? x : null;
    });
    const ws = u64(s.memory?.workingSetBytes, 'working_set_bytes');
    assert.ok(u64(s.memory?.usageBytes, 'usage_bytes') >= ws, 'usage includes the working set');
    assert.ok(u64(s.memory?.rssBytes, 'rss_bytes') > 40n * MB, 'the 50 MB are anonymous memory');
    assert.ok(u64(s.memory?.pageFaults, 'page_faults') > 0n);
    u64(s.memory?.majorPageFaults, 'major_page_faults');
    assert.equal(u64(s.memory?.availableBytes, 'available_bytes'), 200n * 1024n * 1024n - ws, 'limit less working set');
    const burnerMem = (await stats(burner)).memory;
    assert.equal(burnerMem?.availableBytes ?? null, null, 'no limit, no available_bytes');
  });

  test('a created container reports zeros; its writable layer grows once it writes 1 MB', async () => {
    const writer = await create(pod, 'writer', 'busybox head -c 1000000 /dev/zero > /big; exec sleep 1000');
    inPod.push(writer);
    const before = await stats(writer);
    assert.equal(u64(before.cpu?.usageCoreNanoSeconds, 'cpu'), 0n, 'no cgroup before start');
    assert.equal(u64(before.memory?.workingSetBytes, 'working set'), 0n);
    assert.ok((before.writableLayer?.fsId?.mountpoint ?? '').startsWith(paths.root), `fs id ${before.writableLayer?.fsId?.mountpoint} is under the daemon root`);
    const bytes0 = u64(before.writableLayer?.usedBytes, 'used_bytes');
    const inodes0 = u64(before.writableLayer?.inodesUsed, 'inodes_used');
    await daemon.cri.call('StartContainer', { containerId: writer });
    const grown = await eventually('the 1 MB file in the writable layer', async () => {
      const s = await stats(writer);
      return u64(s.writableLayer?.usedBytes, 'used') >= bytes0 + MB ? s : null;
    });
    assert.ok(u64(grown.writableLayer?.inodesUsed, 'inodes_used') > inodes0, 'a new inode');
  });

  test('unknown and empty ids', async () => {
    await rejects(stats('f'.repeat(64)), grpcStatus.NOT_FOUND, /container "f+" not found/);
    await rejects(stats(''), grpcStatus.INVALID_ARGUMENT, /container_id is required/);
  });
});

describe('ListContainerStats', () => {
  test('filters by pod, label and id prefix', async () => {
    const other = await run(otherPod, 'other', 'exec sleep 1000');
    assert.deepEqual(idsOf(await listStats({ podSandboxId: pod })), [...inPod].sort());
    assert.deepEqual(idsOf(await listStats({ podSandboxId: otherPod })), [other]);
    assert.deepEqual(idsOf(await listStats({ labelSelector: { app: 'burner' } })), [burner]);
    assert.deepEqual(idsOf(await listStats({ podSandboxId: otherPod, labelSelector: { app: 'burner' } })), []);
    assert.deepEqual(idsOf(await listStats({ id: hog.slice(0, 12) })), [hog]);
    assert.deepEqual(idsOf(await listStats(null)), [...inPod, other].sort());
    const all = await listStats({});
    const burnerStats = all.find((s) => s.attributes.id === burner);
    assert.ok(u64(burnerStats?.cpu?.usageCoreNanoSeconds, 'cpu') > 0n, 'the list carries the counters');
  });
});

describe('PodSandboxStats', () => {
  test('the pod: its containers, and pod-level cpu, memory and processes no less than theirs', async () => {
    const first = await podStats(pod);
    assert.equal(first.attributes.id, pod);
    assert.equal(first.attributes.metadata.name, 'statspod');
    assert.equal(first.attributes.labels['io.kubernetes.pod.name'], 'statspod');
    const linux = first.linux;
    assert.ok(linux, 'linux stats');
    assert.deepEqual(idsOf(linux.containers), [...inPod].sort());
    const containerCpu = linux.containers.reduce((sum, c) => sum + u64(c.cpu?.usageCoreNanoSeconds, 'cpu'), 0n);
    assert.ok(containerCpu > 0n);
    assert.ok(u64(linux.cpu?.usageCoreNanoSeconds, 'pod cpu') >= containerCpu, 'the pod is at least the sum of its containers');
    assert.ok(u64(linux.memory?.workingSetBytes, 'pod working set') > 40n * MB, "the hog's memory counts for the pod");
    // pause + the burner's shell + hog's tail, sleep and shell + the writer's sleep.
    assert.ok(u64(linux.process?.processCount, 'process_count') >= 4n, `process count ${linux.process?.processCount?.value}`);
    await eventually('a pod-level CPU rate', async () => u64((await podStats(pod)).linux?.cpu?.usageNanoCores, 'pod rate') > 0n);
    await rejects(podStats('f'.repeat(64)), grpcStatus.NOT_FOUND, /pod sandbox "f+" not found/);
    await rejects(podStats(''), grpcStatus.INVALID_ARGUMENT, /pod_sandbox_id is required/);
  });

  test('the pod\'s network: eth0 of its netns by default, counting the packets a container sends', async () => {
    const before = (await podStats(pod)).linux?.network;
    assert.ok(before?.defaultInterface, 'a default interface');
    assert.equal(before.defaultInterface.name, 'eth0');
    assert.deepEqual(before.interfaces.map((i) => i.name), ['eth0'], 'the pod\'s interfaces, loopback left out');
    const ts = BigInt(before.timestamp);
    assert.ok(ts > BigInt(Date.now() - 60_000) * 1_000_000n, `timestamp ${ts} is now, in ns`);
    const sent = u64(before.defaultInterface.txBytes, 'tx_bytes');
    const gateway = (daemon.network?.subnet ?? '').replace(/0\/24$/, '1');
    const ping = await daemon.cri.call<{ exitCode: number }>('ExecSync', { containerId: burner, cmd: ['busybox', 'ping', '-c', '3', '-i', '0.2', gateway], timeout: 20 });
    assert.equal(ping.exitCode, 0, `ping ${gateway}`);
    const after = (await podStats(pod)).linux?.network?.defaultInterface;
    assert.ok(u64(after?.txBytes, 'tx_bytes') >= sent + 3n * 84n, 'three pings of 84 bytes each, at least');
    assert.ok(u64(after?.rxBytes, 'rx_bytes') > 0n, 'and their replies');
    u64(after?.rxErrors, 'rx_errors');
    u64(after?.txErrors, 'tx_errors');
  });

  test('a pod under a cgroup parent of its own is read from that cgroup, with a pause or without', async () => {
    for (const pid of ['POD', 'CONTAINER']) {
      const parented = await runPod(`parented-${pid.toLowerCase()}`, { linux: { cgroupParent: `/${PARENT}`, securityContext: { namespaceOptions: { network: 'POD', pid, ipc: 'POD' } } } });
      try {
        await parentedPodStats(parented, pid === 'POD');
      } finally {
        await daemon.cri.call('RemovePodSandbox', { podSandboxId: parented });
      }
    }
  });

  async function parentedPodStats(parented: string, withPause: boolean): Promise<void> {
    const spin = await run(parented, 'spin', 'while true; do :; done');
    const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
    assert.ok(existsSync(v2 ? `/sys/fs/cgroup/${PARENT}` : `/sys/fs/cgroup/cpuacct/${PARENT}`), 'runc made the parent cgroup');
    const s = await eventually('the parented pod to show CPU and a rate', async () => {
      const x = await podStats(parented);
      return u64(x.linux?.cpu?.usageNanoCores, 'rate') > 0n ? x : null;
    });
    assert.deepEqual(idsOf(s.linux?.containers ?? []), [spin]);
    const spinCpu = u64(s.linux?.containers[0]?.cpu?.usageCoreNanoSeconds, 'spin cpu');
    assert.ok(u64(s.linux?.cpu?.usageCoreNanoSeconds, 'pod cpu') >= spinCpu, 'the parent holds the container');
    // A pod that shares its pid namespace has a pause beside the shell; kubelet's default has none.
    assert.ok(u64(s.linux?.process?.processCount, 'process_count') >= (withPause ? 2n : 1n), withPause ? 'pause and the spinning shell' : 'the spinning shell');
  }

  test('ListPodSandboxStats lists the pods, filtered by id and labels', async () => {
    const list = async (filter: object | null): Promise<PodStats[]> => (await daemon.cri.call<{ stats: PodStats[] }>('ListPodSandboxStats', { filter })).stats;
    assert.deepEqual(idsOf(await list(null)), [pod, otherPod].sort());
    assert.deepEqual(idsOf(await list({ id: pod.slice(0, 12) })), [pod]);
    const byLabel = await list({ labelSelector: { 'io.kubernetes.pod.name': 'otherpod' } });
    assert.deepEqual(idsOf(byLabel), [otherPod]);
    assert.equal(byLabel[0]?.linux?.containers.length, 1);
    assert.deepEqual(idsOf(await list({ labelSelector: { 'io.kubernetes.pod.name': 'nobody' } })), []);
  });
});

describe('containers that stop', () => {
  test('a stopped container still answers, with what its cgroup had or zeros; a removed one is gone', async () => {
    const running = u64((await stats(burner)).cpu?.usageCoreNanoSeconds, 'cpu');
    await daemon.cri.call('StopContainer', { containerId: burner, timeout: 0 });
    const stopped = await stats(burner);
    const cpu = u64(stopped.cpu?.usageCoreNanoSeconds, 'cpu');
    assert.ok(cpu === 0n || cpu >= running, `cpu ${cpu} is the cgroup's last count (${running}+) or zero`);
    u64(stopped.writableLayer?.usedBytes, 'the writable layer is still reported');
    await daemon.cri.call('RemoveContainer', { containerId: burner });
    await rejects(stats(burner), grpcStatus.NOT_FOUND, /not found/);
    assert.ok(!idsOf(await listStats({ podSandboxId: pod })).includes(burner));
  });
});
