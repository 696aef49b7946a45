/**
 * The metrics RPCs end to end (issue 16, item 1): ListMetricDescriptors, ListPodSandboxMetrics and
 * StreamPodSandboxMetrics on a real daemon, with containers that burn CPU, hold memory, fill the
 * page cache, write files and run several processes, and a pod that sends packets: each value is
 * checked against what its name means, and against the stats RPCs or the kernel's own counters.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { removeCgroupParent } from './host-state.js';
import { Daemon, eventually, podConfig, tempPaths } from './daemon.js';
import type { RegistryFixture } from './registry-fixture.js';
import { BUSYBOX_IMAGE, startWithBusybox } from './busybox-daemon.js';

interface Metric { name: string; timestamp: string; metricType: 'COUNTER' | 'GAUGE'; labelValues: string[]; value: { value: string } | null }
interface PodMetrics { podSandboxId: string; metrics: Metric[]; containerMetrics: { containerId: string; metrics: Metric[] }[] }
interface Descriptor { name: string; help: string; labelKeys: string[] }

const paths = tempPaths('pc-mx-');
const daemon = new Daemon(paths);
const MB = 1_000_000n;
const PARENT = `podchart-metrics-${process.pid}`;
const BASE = ['container', 'id', 'image', 'name', 'namespace', 'pod'];
let registry: RegistryFixture;
let descriptors = new Map<string, Descriptor>();
let pod = '';
let parented = '';
let stopped = '';
let burner = '';
let hog = '';
let writer = '';
let forks = '';
let idle = '';

async function runPod(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  return (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig(name, extra) })).podSandboxId;
}
async function create(podId: string, name: string, script: string, extra: Record<string, unknown> = {}): Promise<string> {
  const config = { metadata: { name, attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: ['/bin/sh', '-c', script], ...extra };
  return (await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId: podId, config, sandboxConfig: {} })).containerId;
}
async function run(podId: string, name: string, script: string, extra: Record<string, unknown> = {}): Promise<string> {
  const id = await create(podId, name, script, extra);
  await daemon.cri.call('StartContainer', { containerId: id });
  return id;
}
const list = async (): Promise<PodMetrics[]> => (await daemon.cri.call<{ podMetrics: PodMetrics[] }>('ListPodSandboxMetrics')).podMetrics;

/** The label values of a metric by key, as its descriptor orders them. */
function labels(m: Metric): Record<string, string> {
  const d = descriptors.get(m.name);
  assert.ok(d, `${m.name} has a descriptor`);
  return Object.fromEntries(d.labelKeys.map((k, i) => [k, m.labelValues[i] ?? '']));
}

/** The value of the one metric of `name` whose labels include `where`. */
function value(metrics: readonly Metric[], name: string, where: Record<string, string> = {}): bigint {
  const found = metrics.filter((m) => m.name === name && Object.entries(where).every(([k, v]) => labels(m)[k] === v));
  assert.equal(found.length, 1, `one ${name} ${JSON.stringify(where)} (got ${found.length})`);
  const v = found[0]?.value?.value ?? '';
  assert.match(v, /^\d+$/, `${name} has a value`);
  return BigInt(v);
}

function containerOf(all: readonly PodMetrics[], id: string): Metric[] {
  const found = all.flatMap((p) => p.containerMetrics).find((c) => c.containerId === id);
  assert.ok(found, `metrics of container ${id}`);
  return found.metrics;
}

before(async () => {
  registry = await startWithBusybox(daemon, { writableLayerUsagePeriodMs: 300 });
  descriptors = new Map((await daemon.cri.call<{ descriptors: Descriptor[] }>('ListMetricDescriptors')).descriptors.map((d) => [d.name, d]));
  pod = await runPod('mxpod');
  parented = await runPod('mxparent', { linux: { cgroupParent: `/${PARENT}`, securityContext: { namespaceOptions: { network: 'POD', pid: 'POD', ipc: 'POD' } } } });
  stopped = await runPod('mxstopped');
  await run(stopped, 'gone', 'sleep 1000');
  await daemon.cri.call('StopPodSandbox', { podSandboxId: stopped });
  burner = await run(pod, 'burner', 'while true; do :; done');
  // tail keeps the whole 40 MB line while its input stays open (sleep holds the pipe).
  hog = await run(pod, 'hog', '(busybox head -c 40000000 /dev/zero; exec sleep 1000) | busybox tail');
  writer = await run(pod, 'writer', 'busybox dd if=/dev/zero of=/data bs=1M count=12 2>/dev/null; exec sleep 1000');
  forks = await run(parented, 'forks', 'sleep 1000 & sleep 1000 & exec sleep 1000', { linux: { resources: { cpuShares: '512', cpuQuota: '50000', cpuPeriod: '100000', memoryLimitInBytes: String(300 * 1024 * 1024) } } });
  idle = await create(pod, 'idle', 'sleep 1000');
});

after(async () => {
  await daemon.dispose();
  await registry?.stop();
  removeCgroupParent(PARENT);
});

describe('ListMetricDescriptors', () => {
  test('cAdvisor names, one descriptor each, with kubelet\'s base labels first', () => {
    assert.ok(descriptors.size >= 30);
    for (const name of ['container_cpu_usage_seconds_total', 'container_memory_working_set_bytes', 'container_memory_rss', 'container_memory_cache',
      'container_network_receive_bytes_total', 'container_network_transmit_bytes_total', 'container_fs_usage_bytes', 'container_processes']) {
      assert.ok(descriptors.has(name), name);
    }
    for (const d of descriptors.values()) {
      assert.match(d.name, /^container_[a-z_]+$/);
      assert.deepEqual(d.labelKeys.slice(0, BASE.length), BASE, d.name);
      assert.ok(d.help.length > 10, `${d.name} has help`);
    }
    assert.deepEqual(descriptors.get('container_network_receive_bytes_total')?.labelKeys.slice(BASE.length), ['interface']);
    assert.deepEqual(descriptors.get('container_fs_usage_bytes')?.labelKeys.slice(BASE.length), ['device']);
  });
});

describe('ListPodSandboxMetrics', () => {
  test('every metric has its descriptor\'s labels, a type that fits its name, and a timestamp of now', async () => {
    const all = await list();
    const now = BigInt(Date.now()) * 1_000_000n;
    for (const m of all.flatMap((p) => [...p.metrics, ...p.containerMetrics.flatMap((c) => c.metrics)])) {
      const d = descriptors.get(m.name);
      assert.ok(d, `${m.name} is described`);
      assert.equal(m.labelValues.length, d.labelKeys.length, `${m.name}: a value per label key`);
      // cAdvisor's one _total that is no counter: the filesystem's inode count.
      if (m.name.endsWith('_total') && m.name !== 'container_fs_inodes_total') assert.equal(m.metricType, 'COUNTER', m.name);
      if (/_bytes$|_processes$|_threads$|_seconds$/.test(m.name) && !m.name.endsWith('_total')) assert.equal(m.metricType, 'GAUGE', m.name);
      const ts = BigInt(m.timestamp);
      assert.ok(ts > now - 120_000_000_000n && ts <= now + 1_000_000_000n, `${m.name} timestamp ${ts} is now, in ns`);
    }
  });

  test('ready pods and their running containers only', async () => {
    const all = await list();
    assert.deepEqual(all.map((p) => p.podSandboxId).sort(), [pod, parented].sort(), 'the stopped pod is not listed');
    const ids = all.find((p) => p.podSandboxId === pod)?.containerMetrics.map((c) => c.containerId).sort();
    assert.deepEqual(ids, [burner, hog, writer].sort(), 'the created container has no cgroup yet: not listed');
    assert.ok(!ids?.includes(idle));
  });

  test('labels name the container, its pod, image and cgroup', async () => {
    const m = containerOf(await list(), burner).find((x) => x.name === 'container_memory_rss');
    assert.ok(m);
    const l = labels(m);
    assert.equal(l['container'], 'burner');
    assert.equal(l['pod'], 'mxpod');
    assert.equal(l['namespace'], 'e2e');
    assert.equal(l['image'], BUSYBOX_IMAGE);
    assert.match(l['name'] ?? '', /^k8s_burner_mxpod_e2e_/);
    assert.ok(l['id']?.endsWith(`/${burner}`), `id ${l['id']} is the container's cgroup`);
  });

  test('CPU seconds: a busy loop accrues about a second a second, as ContainerStats counts it', async () => {
    await eventually('the burner to have used 2 s of CPU', async () => value(containerOf(await list(), burner), 'container_cpu_usage_seconds_total', { cpu: 'total' }) >= 2n, 30_000);
    const metrics = containerOf(await list(), burner);
    const stats = (await daemon.cri.call<{ stats: { cpu: { usageCoreNanoSeconds: { value: string } } } }>('ContainerStats', { containerId: burner })).stats;
    const seconds = value(metrics, 'container_cpu_usage_seconds_total', { cpu: 'total' });
    const ns = BigInt(stats.cpu.usageCoreNanoSeconds.value);
    assert.ok(seconds <= ns / 1_000_000_000n && seconds >= ns / 1_000_000_000n - 2n, `${seconds} s against ${ns} ns`);
    const user = value(metrics, 'container_cpu_user_seconds_total');
    const system = value(metrics, 'container_cpu_system_seconds_total');
    assert.ok(user >= 1n, `a shell loop runs in user mode: ${user} s`);
    assert.ok(user + system <= seconds + 1n, 'user + system is the usage (each truncated)');
  });

  test('memory: the 40 MB the hog holds are rss and working set; the writer\'s file is page cache', async () => {
    await eventually('the hog to hold 40 MB', async () => value(containerOf(await list(), hog), 'container_memory_rss') > 35n * MB);
    const hogs = containerOf(await list(), hog);
    const ws = value(hogs, 'container_memory_working_set_bytes');
    assert.ok(ws > 35n * MB && ws <= value(hogs, 'container_memory_usage_bytes'), `working set ${ws}`);
    const cache = await eventually('the writer\'s 12 MB in the page cache', async () => {
      const c = value(containerOf(await list(), writer), 'container_memory_cache');
      return c > 10n * MB ? c : null;
    });
    assert.ok(cache < 200n * MB, `cache ${cache}`);
    assert.ok(value(containerOf(await list(), burner), 'container_memory_cache') < 10n * MB, 'the burner wrote nothing');
  });

  test('processes, threads, and the limits kubelet set', async () => {
    const metrics = await eventually('three processes in forks', async () => {
      const m = containerOf(await list(), forks);
      return value(m, 'container_processes') === 3n ? m : null;
    });
    assert.ok(value(metrics, 'container_threads') >= 3n);
    assert.equal(value(metrics, 'container_spec_cpu_shares'), 512n);
    assert.equal(value(metrics, 'container_spec_cpu_quota'), 50000n);
    assert.equal(value(metrics, 'container_spec_cpu_period'), 100000n);
    assert.equal(value(metrics, 'container_spec_memory_limit_bytes'), 300n * 1024n * 1024n);
    assert.equal(value(containerOf(await list(), burner), 'container_processes'), 1n);
    assert.equal(containerOf(await list(), burner).some((m) => m.name === 'container_spec_cpu_quota'), false, 'no quota: no series');
  });

  test('the writable layer: the writer\'s 12 MB file, on the device that holds it', async () => {
    const used = await eventually('the layer walk to see the file', async () => {
      const u = value(containerOf(await list(), writer), 'container_fs_usage_bytes');
      return u >= 12n * 1024n * 1024n ? u : null;
    });
    const metrics = containerOf(await list(), writer);
    const fs = metrics.find((m) => m.name === 'container_fs_usage_bytes');
    assert.ok(fs);
    assert.ok((labels(fs)['device'] ?? '') !== '', 'a device');
    assert.ok(value(metrics, 'container_fs_limit_bytes') > used, 'the filesystem is bigger than the layer');
    assert.ok(value(metrics, 'container_fs_inodes_total') >= value(metrics, 'container_fs_inodes_free'));
    assert.ok(value(containerOf(await list(), burner), 'container_fs_usage_bytes') < 1n * MB);
  });

  test('network: the pod\'s eth0 counts the packets it sends, as the kernel does', async () => {
    const gateway = (daemon.network?.subnet ?? '').replace(/0\/24$/, '1');
    const sent = (all: PodMetrics[]): bigint => value(all.find((p) => p.podSandboxId === pod)?.metrics ?? [], 'container_network_transmit_packets_total', { interface: 'eth0' });
    const before = sent(await list());
    const r = await daemon.cri.call<{ exitCode: number; stdout: Buffer }>('ExecSync', { containerId: burner, cmd: ['busybox', 'ping', '-c', '5', '-i', '0.2', gateway], timeout: 20 });
    assert.equal(r.exitCode, 0, `ping ${gateway}: ${r.stdout.toString()}`);
    const after = await eventually('the five pings counted', async () => {
      const n = sent(await list());
      return n >= before + 5n ? n : null;
    });
    const podMetrics = (await list()).find((p) => p.podSandboxId === pod)?.metrics ?? [];
    assert.ok(value(podMetrics, 'container_network_receive_packets_total', { interface: 'eth0' }) >= 5n, 'and their replies');
    assert.ok(value(podMetrics, 'container_network_transmit_bytes_total', { interface: 'eth0' }) >= (after - before) * 84n, 'at least a ping\'s 84 bytes each');
    assert.equal(podMetrics.some((m) => labels(m)['interface'] === 'lo'), false, 'loopback is not the pod\'s traffic');
    // The kernel's count, read the same way a person would: through the pod's pid.
    const pid = (await daemon.cri.call<{ info: Record<string, string> }>('ContainerStatus', { containerId: burner, verbose: true })).info['info'] ?? '';
    const hostPid = (JSON.parse(pid || '{}') as { pid?: number }).pid;
    assert.ok(hostPid, 'the burner\'s pid');
    const line = readFileSync(`/proc/${hostPid}/net/dev`, 'utf8').split('\n').find((l) => l.trim().startsWith('eth0:')) ?? '';
    const kernelTx = BigInt(line.split(':')[1]?.trim().split(/\s+/)[9] ?? '0');
    assert.ok(kernelTx >= after, `kernel ${kernelTx} ≥ reported ${after}`);
  });

  test('a pod\'s own metrics: its cgroup (limits only under a cgroup_parent) and its network', async () => {
    const all = await list();
    const own = all.find((p) => p.podSandboxId === parented)?.metrics ?? [];
    const l = labels(own.find((m) => m.name === 'container_memory_usage_bytes') ?? own[0] ?? ({ name: 'container_memory_usage_bytes', labelValues: [] } as unknown as Metric));
    assert.equal(l['container'], '', 'a pod\'s own series has no container');
    assert.equal(l['pod'], 'mxparent');
    assert.equal(l['id'], `/${PARENT}`);
    assert.ok(own.some((m) => m.name === 'container_threads_max'), 'a pod with a cgroup of its own has its limits');
    const summed = all.find((p) => p.podSandboxId === pod)?.metrics ?? [];
    assert.equal(summed.some((m) => m.name.startsWith('container_spec_') || m.name === 'container_threads_max'), false, 'a sum of cgroups has no limits');
    const burnerCpu = value(containerOf(all, burner), 'container_cpu_usage_seconds_total', { cpu: 'total' });
    assert.ok(value(summed, 'container_cpu_usage_seconds_total', { cpu: 'total' }) >= burnerCpu, 'the pod counts its containers\' CPU');
  });
});

describe('StreamPodSandboxMetrics', () => {
  test('the same pods and containers as the List call', async () => {
    const pages = await daemon.cri.stream<{ podSandboxMetrics: PodMetrics[] }>('runtime', 'StreamPodSandboxMetrics', {});
    const streamed = pages.flatMap((p) => p.podSandboxMetrics);
    const listed = await list();
    const shape = (all: PodMetrics[]) => all.map((p) => [p.podSandboxId, p.containerMetrics.map((c) => c.containerId).sort(), [...new Set(p.metrics.map((m) => m.name))].sort()]).sort();
    assert.deepEqual(shape(streamed), shape(listed));
  });
});
