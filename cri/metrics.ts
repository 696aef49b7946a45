/**
 * ListMetricDescriptors, ListPodSandboxMetrics (and StreamPodSandboxMetrics, cri/list-stream.ts):
 * the cAdvisor-named container_* metrics kubelet's CRI metrics collector serves on
 * /metrics/cadvisor (the PodAndContainerStatsFromCRI feature), from the same samples as the stats
 * RPCs (actors/stats-sampler.ts: cgroups v1 or v2, writable layers) plus each pod's network
 * namespace (runtime/net-dev.ts).
 *
 * - Labels are cAdvisor's for kubelet (container, id, image, name, namespace, pod), plus the
 *   metric's own (cpu, interface, device, failure_type and scope), in each descriptor's order:
 *   container is the CRI container name ("" for a pod's own metrics), id its cgroup path, name the
 *   runtime's container name (k8s_<container>_<pod>_<namespace>_<uid>_<attempt>).
 * - CRI values are unsigned integers: seconds are whole seconds, truncated (as containerd and CRI-O
 *   send them). Unknown values (a pod that is the sum of its cgroups has no limits) are left out.
 * - Metrics of ready pods and their running containers: what has a cgroup to read. A pod's own
 *   metrics are its cgroup's (the sum of its pause's and containers' when kubelet gave it no
 *   cgroup_parent: then without limits) and its network's.
 */
import { statfsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ContainerSample, PodSample } from '../actors/stats-sampler.js';
import type { CgroupStats } from '../runtime/cgroup-stats.js';
import { cgroupRelativePath, cgroupsPathFor, parentRelativePath, type CgroupDriver } from '../runtime/cgroup-stats.js';
import type { InterfaceCounters } from '../runtime/net-dev.js';
import { podNetworkCounters } from './stats-fields.js';
import { deviceOf } from '../host/mounts.js';
import type { CriContext } from './context.js';

type MetricType = 'COUNTER' | 'GAUGE';

/** cAdvisor's labels, as kubelet names them for every container_* metric. */
const BASE_LABELS = ['container', 'id', 'image', 'name', 'namespace', 'pod'] as const;

/** One metric family: its name, help and type, its own labels, and its series from a source. */
interface Family<S> {
  name: string;
  help: string;
  type: MetricType;
  extraLabels?: readonly string[];
  /** Each series: its own label values (in extraLabels' order) and value; null: not known. */
  series: (source: S) => readonly (readonly [readonly string[], bigint | null])[];
}

const one = (value: bigint | null): readonly (readonly [readonly string[], bigint | null])[] => [[[], value]];
const seconds = (ns: bigint): bigint => ns / 1_000_000_000n;

const CGROUP_FAMILIES: readonly Family<CgroupStats>[] = [
  { name: 'container_cpu_usage_seconds_total', help: 'Cumulative cpu time consumed in seconds.', type: 'COUNTER', extraLabels: ['cpu'], series: (s) => [[['total'], seconds(s.cpuUsageNs)]] },
  { name: 'container_cpu_user_seconds_total', help: 'Cumulative user cpu time consumed in seconds.', type: 'COUNTER', series: (s) => one(seconds(s.cpuUserNs)) },
  { name: 'container_cpu_system_seconds_total', help: 'Cumulative system cpu time consumed in seconds.', type: 'COUNTER', series: (s) => one(seconds(s.cpuSystemNs)) },
  { name: 'container_cpu_cfs_periods_total', help: 'Number of elapsed enforcement period intervals.', type: 'COUNTER', series: (s) => one(s.cfsPeriods) },
  { name: 'container_cpu_cfs_throttled_periods_total', help: 'Number of throttled period intervals.', type: 'COUNTER', series: (s) => one(s.cfsThrottledPeriods) },
  { name: 'container_cpu_cfs_throttled_seconds_total', help: 'Total time duration the container has been throttled.', type: 'COUNTER', series: (s) => one(seconds(s.cfsThrottledNs)) },
  { name: 'container_memory_usage_bytes', help: 'Current memory usage in bytes, including all memory regardless of when it was accessed', type: 'GAUGE', series: (s) => one(s.memoryUsageBytes) },
  { name: 'container_memory_working_set_bytes', help: 'Current working set in bytes.', type: 'GAUGE', series: (s) => one(s.memoryWorkingSetBytes) },
  { name: 'container_memory_rss', help: 'Size of RSS in bytes.', type: 'GAUGE', series: (s) => one(s.memoryRssBytes) },
  { name: 'container_memory_cache', help: 'Number of bytes of page cache memory.', type: 'GAUGE', series: (s) => one(s.memoryCacheBytes) },
  { name: 'container_memory_mapped_file', help: 'Size of memory mapped files in bytes.', type: 'GAUGE', series: (s) => one(s.memoryMappedFileBytes) },
  { name: 'container_memory_swap', help: 'Container swap usage in bytes.', type: 'GAUGE', series: (s) => one(s.memorySwapBytes) },
  { name: 'container_memory_failcnt', help: 'Number of memory usage hits limits', type: 'COUNTER', series: (s) => one(s.memoryFailcnt) },
  {
    name: 'container_memory_failures_total', help: 'Cumulative count of memory allocation failures.', type: 'COUNTER', extraLabels: ['failure_type', 'scope'],
    // The counters read are the hierarchy's (v1 total_pgfault, v2 pgfault counts descendants too).
    series: (s) => [[['pgfault', 'hierarchy'], s.pageFaults], [['pgmajfault', 'hierarchy'], s.majorPageFaults]],
  },
  { name: 'container_oom_events_total', help: 'Count of out of memory events observed for the container', type: 'COUNTER', series: (s) => one(s.oomKills) },
  { name: 'container_processes', help: 'Number of processes running inside the container.', type: 'GAUGE', series: (s) => one(BigInt(s.processes)) },
  { name: 'container_threads', help: 'Number of threads running inside the container', type: 'GAUGE', series: (s) => one(BigInt(s.pids)) },
];

/** The cgroup's limits: not known for a pod without a cgroup of its own (its counters are a sum). */
const CGROUP_SPEC_FAMILIES: readonly Family<CgroupStats>[] = [
  { name: 'container_threads_max', help: 'Maximum number of threads allowed inside the container, infinity if value is zero', type: 'GAUGE', series: (s) => one(s.pidsLimit ?? 0n) },
  { name: 'container_spec_memory_limit_bytes', help: 'Memory limit for the container.', type: 'GAUGE', series: (s) => one(s.memoryLimitBytes ?? 0n) },
  { name: 'container_spec_cpu_shares', help: 'CPU share of the container.', type: 'GAUGE', series: (s) => one(s.cpuShares) },
  { name: 'container_spec_cpu_quota', help: 'CPU quota of the container.', type: 'GAUGE', series: (s) => one(s.cpuQuotaUs) },
  { name: 'container_spec_cpu_period', help: 'CPU period of the container.', type: 'GAUGE', series: (s) => one(s.cpuPeriodUs) },
];

/** A per-interface counter of the pod's network namespace. */
const network = (name: string, help: string, pick: (c: InterfaceCounters) => bigint): Family<readonly InterfaceCounters[]> => ({
  name, help, type: 'COUNTER', extraLabels: ['interface'], series: (counters) => counters.map((c) => [[c.name], pick(c)] as const),
});

const NETWORK_FAMILIES: readonly Family<readonly InterfaceCounters[]>[] = [
  network('container_network_receive_bytes_total', 'Cumulative count of bytes received', (c) => c.rxBytes),
  network('container_network_receive_packets_total', 'Cumulative count of packets received', (c) => c.rxPackets),
  network('container_network_receive_packets_dropped_total', 'Cumulative count of packets dropped while receiving', (c) => c.rxDropped),
  network('container_network_receive_errors_total', 'Cumulative count of errors encountered while receiving', (c) => c.rxErrors),
  network('container_network_transmit_bytes_total', 'Cumulative count of bytes transmitted', (c) => c.txBytes),
  network('container_network_transmit_packets_total', 'Cumulative count of packets transmitted', (c) => c.txPackets),
  network('container_network_transmit_packets_dropped_total', 'Cumulative count of packets dropped while transmitting', (c) => c.txDropped),
  network('container_network_transmit_errors_total', 'Cumulative count of errors encountered while transmitting', (c) => c.txErrors),
];

/** The writable layer's use, and the filesystem that holds it (its size and inodes). */
interface FsSource {
  device: string;
  usedBytes: bigint;
  capacityBytes: bigint;
  inodes: bigint;
  inodesFree: bigint;
}

const filesystem = (name: string, help: string, pick: (f: FsSource) => bigint): Family<FsSource> => ({
  name, help, type: 'GAUGE', extraLabels: ['device'], series: (f) => [[[f.device], pick(f)]],
});

const FS_FAMILIES: readonly Family<FsSource>[] = [
  filesystem('container_fs_usage_bytes', 'Number of bytes that are consumed by the container on this filesystem.', (f) => f.usedBytes),
  filesystem('container_fs_limit_bytes', 'Number of bytes that can be consumed by the container on this filesystem.', (f) => f.capacityBytes),
  filesystem('container_fs_inodes_total', 'Number of Inodes', (f) => f.inodes),
  filesystem('container_fs_inodes_free', 'Number of available Inodes', (f) => f.inodesFree),
];

/** When a container started and when it was last seen, in seconds since the epoch. */
interface Times {
  startNs: bigint;
  seenNs: bigint;
}

const TIME_FAMILIES: readonly Family<Times>[] = [
  { name: 'container_start_time_seconds', help: 'Start time of the container since unix epoch in seconds.', type: 'GAUGE', series: (t) => one(seconds(t.startNs)) },
  { name: 'container_last_seen', help: 'Last time a container was seen by the exporter', type: 'GAUGE', series: (t) => one(seconds(t.seenNs)) },
];

const ALL_FAMILIES: readonly Family<never>[] = [...CGROUP_FAMILIES, ...CGROUP_SPEC_FAMILIES, ...NETWORK_FAMILIES, ...FS_FAMILIES, ...TIME_FAMILIES];

/** Every family's descriptor: its label keys are the base labels, then its own. */
export function metricDescriptors(): { name: string; help: string; labelKeys: string[] }[] {
  return ALL_FAMILIES.map((f) => ({ name: f.name, help: f.help, labelKeys: [...BASE_LABELS, ...(f.extraLabels ?? [])] }));
}

export interface Metric {
  name: string;
  timestamp: string;
  metricType: MetricType;
  labelValues: string[];
  value: { value: string };
}

/** The families' series for one source, under `base` (BASE_LABELS' values) at `timestampNs`. */
export function metricsOf<S>(families: readonly Family<S>[], source: S, base: readonly string[], timestampNs: bigint): Metric[] {
  const out: Metric[] = [];
  for (const f of families) {
    for (const [extra, value] of f.series(source)) {
      if (value === null) continue;
      out.push({ name: f.name, timestamp: String(timestampNs), metricType: f.type, labelValues: [...base, ...extra], value: { value: String(value) } });
    }
  }
  return out;
}

/** The device (as /proc/self/mountinfo names its source) and size of the filesystem holding `path`. */
function fsSource(path: string, usedBytes: number): FsSource | null {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return null;
  const fs = statfsSync(path, { bigint: true });
  return { device: deviceOf(st.dev) ?? String(st.dev), usedBytes: BigInt(usedBytes), capacityBytes: fs.blocks * fs.bsize, inodes: fs.files, inodesFree: fs.ffree };
}

function containerMetrics(sample: ContainerSample, pod: PodSample, driver: CgroupDriver): { containerId: string; metrics: Metric[] } {
  const { view, cgroup, layer } = sample;
  const { spec } = view.context;
  const podMeta = pod.view.context.spec.metadata;
  const id = cgroupRelativePath(cgroupsPathFor(pod.view.context.spec.cgroupParent, view.id, driver), driver);
  const base = [spec.metadata.name, id, spec.image, spec.name, podMeta.namespace, podMeta.name];
  const fs = fsSource(dirname(spec.dir), layer.bytes);
  return {
    containerId: view.id,
    metrics: [
      ...metricsOf([...CGROUP_FAMILIES, ...CGROUP_SPEC_FAMILIES], cgroup.stats, base, cgroup.wallNs),
      ...(fs ? metricsOf(FS_FAMILIES, fs, base, layer.wallNs) : []),
      ...metricsOf(TIME_FAMILIES, { startNs: BigInt(view.context.startedAt ?? '0'), seenNs: cgroup.wallNs }, base, cgroup.wallNs),
    ],
  };
}

async function podMetrics(pod: PodSample, driver: CgroupDriver) {
  const { spec } = pod.view.context;
  const running = pod.containers.filter((c) => c.view.criState === 'CONTAINER_RUNNING');
  const base = ['', spec.cgroupParent ? parentRelativePath(spec.cgroupParent, driver) : '', '', '', spec.metadata.namespace, spec.metadata.name];
  const network = await podNetworkCounters(pod);
  return {
    podSandboxId: pod.view.id,
    metrics: [
      ...metricsOf(spec.cgroupParent ? [...CGROUP_FAMILIES, ...CGROUP_SPEC_FAMILIES] : CGROUP_FAMILIES, pod.cgroup.stats, base, pod.cgroup.wallNs),
      ...(network ? metricsOf(NETWORK_FAMILIES, network, base, BigInt(Date.now()) * 1_000_000n) : []),
    ],
    containerMetrics: running.map((c) => containerMetrics(c, pod, driver)),
  };
}

export async function listMetricDescriptors() {
  return { descriptors: metricDescriptors() };
}

export async function listPodSandboxMetrics(_req: unknown, ctx: CriContext) {
  const ready = ctx.supervisor.views().filter((v) => v.ready);
  const samples = await ctx.stats.metrics(ready);
  return { podMetrics: await Promise.all(samples.map((pod) => podMetrics(pod, ctx.config.cgroupDriver))) };
}
