/**
 * ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats: counters read from each
 * container's cgroup and writable layer, as containerd's cri plugin reports them
 * (`internal/cri/server/container_stats_list.go`, `sandbox_stats_linux.go`).
 *
 * - usage_nano_cores is the CPU rate since the previous sample of the same container or pod
 *   (0 on the first), as containerd computes it; samples closer than MIN_RATE_WINDOW_NS reuse the
 *   last rate, so kubelet's back-to-back List calls do not turn noise into a rate.
 * - A container without a cgroup (created, exited, removed meanwhile) reports zeros, not an error.
 * - A pod's cpu/memory/process counts are those of its cgroup_parent when kubelet gave one and it
 *   exists (containerd reads the same); otherwise the sum of the pause's and its containers' cgroups.
 */
import { dirname, join } from 'node:path';
import type { ContainerView, SandboxView } from '../actors/supervisor.js';
import { NotFound } from '../errors/catalogue.js';
import {
  cgroupsPathFor,
  hostCgroupLayout,
  parentRelativePath,
  readCgroupStats,
  readCgroupStatsAt,
  sumCgroupStats,
  ZERO_STATS,
  type CgroupLayout,
  type CgroupStats,
} from '../runtime/cgroup-stats.js';
import type { CriContext } from './context.js';
import { requireId } from './validate.js';

/** The shortest window a CPU rate is computed over. */
const MIN_RATE_WINDOW_NS = 100_000_000n;

/**
 * The previous CPU sample per container or pod, for usage_nano_cores: one per CRI server (the
 * state that outlives one call), in every call's CriContext.
 */
export class CpuRates {
  private readonly samples = new Map<string, { usageNs: bigint; atNs: bigint; rate: bigint }>();

  rate(key: string, usageNs: bigint, atNs: bigint): bigint {
    const prev = this.samples.get(key);
    // First sight, or a counter that went back (a recreated cgroup): start over.
    if (!prev || usageNs < prev.usageNs) {
      this.samples.set(key, { usageNs, atNs, rate: 0n });
      return 0n;
    }
    const window = atNs - prev.atNs;
    if (window < MIN_RATE_WINDOW_NS) return prev.rate;
    const rate = ((usageNs - prev.usageNs) * 1_000_000_000n) / window;
    this.samples.set(key, { usageNs, atNs, rate });
    return rate;
  }

  /** Forgets every sample whose key is not live, so the map follows the actors that exist. */
  retain(live: ReadonlySet<string>): void {
    for (const key of this.samples.keys()) if (!live.has(key)) this.samples.delete(key);
  }
}

const containerKey = (id: string): string => `container:${id}`;
const podKey = (id: string): string => `pod:${id}`;

function pruneRates(ctx: CriContext): CpuRates {
  const rates = ctx.cpuRates;
  const live = new Set([...ctx.supervisor.containerViews().map((v) => containerKey(v.id)), ...ctx.supervisor.views().map((v) => podKey(v.id))]);
  rates.retain(live);
  return rates;
}

const u64 = (value: bigint | number): { value: string } => ({ value: String(value) });
const wallNs = (): string => (BigInt(Date.now()) * 1_000_000n).toString();

/** What one call reads the host with: the CPU samples and the cgroup hierarchy. */
interface Reading {
  ctx: CriContext;
  rates: CpuRates;
  layout: CgroupLayout;
}

function reading(ctx: CriContext): Reading {
  return { ctx, rates: pruneRates(ctx), layout: hostCgroupLayout() };
}

/**
 * One cgroup's counters, zero when it is gone. A read that fails otherwise (a permission, a bad
 * slice name) is logged and reported as zeros: a polled List must not lose every container's
 * stats to one of them (containerd skips such a container with a log line too).
 */
async function cgroupOrZero(r: Reading, what: Record<string, string>, read: () => Promise<CgroupStats | null>): Promise<{ stats: CgroupStats; found: boolean }> {
  try {
    const stats = await read();
    return { stats: stats ?? { ...ZERO_STATS }, found: stats !== null };
  } catch (err) {
    r.ctx.logger.warn({ ...what, err }, 'reading cgroup stats failed; reporting zeros');
    return { stats: { ...ZERO_STATS }, found: false };
  }
}

function cpuMessage(r: Reading, key: string, s: CgroupStats, timestamp: string) {
  const rate = r.rates.rate(key, s.cpuUsageNs, process.hrtime.bigint());
  return { timestamp, usageCoreNanoSeconds: u64(s.cpuUsageNs), usageNanoCores: u64(rate) };
}

function memoryMessage(s: CgroupStats, timestamp: string) {
  const limit = s.memoryLimitBytes;
  return {
    timestamp,
    workingSetBytes: u64(s.memoryWorkingSetBytes),
    // Only meaningful under a limit (containerd sends it the same way).
    availableBytes: limit === null ? null : u64(limit > s.memoryWorkingSetBytes ? limit - s.memoryWorkingSetBytes : 0n),
    usageBytes: u64(s.memoryUsageBytes),
    rssBytes: u64(s.memoryRssBytes),
    pageFaults: u64(s.pageFaults),
    majorPageFaults: u64(s.majorPageFaults),
  };
}

function cgroupParentOf(r: Reading, sandboxId: string): string {
  return r.ctx.supervisor.view(sandboxId)?.context.spec.cgroupParent ?? '';
}

/** A container's ContainerStats, with the raw counters for its pod's sum. */
async function statsOfContainer(r: Reading, view: ContainerView) {
  const { spec } = view.context;
  const driver = r.ctx.config.cgroupDriver;
  const path = cgroupsPathFor(cgroupParentOf(r, spec.sandboxId), view.id, driver);
  const [cg, layer] = await Promise.all([
    cgroupOrZero(r, { containerId: view.id }, () => readCgroupStats(path, driver, r.layout)),
    // The writable layer is the overlay's upper dir under <dir>/rootfs (container-effects.ts).
    r.ctx.images.writableLayerUsage(join(spec.dir, 'rootfs')),
  ]);
  const timestamp = wallNs();
  return {
    raw: cg.stats,
    message: {
      attributes: { id: view.id, metadata: spec.metadata, labels: spec.labels, annotations: spec.annotations },
      cpu: cpuMessage(r, containerKey(view.id), cg.stats, timestamp),
      memory: memoryMessage(cg.stats, timestamp),
      writableLayer: {
        timestamp,
        fsId: { mountpoint: dirname(spec.dir) },
        usedBytes: u64(layer.bytes),
        inodesUsed: u64(layer.inodes),
      },
    },
  };
}

async function statsOfPod(r: Reading, view: SandboxView, containers: readonly ContainerView[]) {
  const { spec } = view.context;
  const driver = r.ctx.config.cgroupDriver;
  const ctrs = await Promise.all(containers.map((c) => statsOfContainer(r, c)));
  // Read after the containers: counters only grow, so the pod is never less than its parts.
  const parent = spec.cgroupParent
    ? await cgroupOrZero(r, { sandboxId: view.id }, () => readCgroupStatsAt(parentRelativePath(spec.cgroupParent, driver), r.layout))
    : null;
  let pod: CgroupStats;
  if (parent?.found) {
    pod = parent.stats;
  } else {
    const pause = await cgroupOrZero(r, { sandboxId: view.id }, () => readCgroupStats(cgroupsPathFor(spec.cgroupParent, view.id, driver), driver, r.layout));
    pod = sumCgroupStats([pause.stats, ...ctrs.map((c) => c.raw)]);
  }
  const timestamp = wallNs();
  return {
    attributes: { id: view.id, metadata: spec.metadata, labels: spec.labels, annotations: spec.annotations },
    linux: {
      cpu: cpuMessage(r, podKey(view.id), pod, timestamp),
      memory: memoryMessage(pod, timestamp),
      network: null,
      process: { timestamp, processCount: u64(pod.pids) },
      containers: ctrs.map((c) => c.message),
    },
    windows: null,
  };
}

const labelsMatch = (labels: Record<string, string>, selector: Record<string, string> | undefined): boolean =>
  Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);

export async function containerStats(req: { containerId: string }, ctx: CriContext) {
  const ref = requireId(req.containerId, 'container_id');
  const id = ctx.supervisor.findContainer(ref);
  const view = id ? ctx.supervisor.containerView(id) : null;
  if (!view) throw new NotFound(`container "${ref}" not found`);
  return { stats: (await statsOfContainer(reading(ctx), view)).message };
}

interface ContainerStatsFilter {
  id: string;
  podSandboxId: string;
  labelSelector: Record<string, string>;
}

/** Filters as ListContainers does: id and pod id by prefix, every selector label equal. */
export async function listContainerStats(req: { filter: ContainerStatsFilter | null }, ctx: CriContext) {
  const f = req.filter;
  const views = ctx.supervisor.containerViews().filter((v) => {
    if (!f) return true;
    if (f.id && !v.id.startsWith(f.id)) return false;
    if (f.podSandboxId && !v.context.spec.sandboxId.startsWith(f.podSandboxId)) return false;
    return labelsMatch(v.context.spec.labels, f.labelSelector);
  });
  const r = reading(ctx);
  return { stats: (await Promise.all(views.map((v) => statsOfContainer(r, v)))).map((s) => s.message) };
}

function containersOf(ctx: CriContext, sandboxId: string): ContainerView[] {
  return ctx.supervisor.containerViews().filter((c) => c.context.spec.sandboxId === sandboxId);
}

export async function podSandboxStats(req: { podSandboxId: string }, ctx: CriContext) {
  const ref = requireId(req.podSandboxId, 'pod_sandbox_id');
  const id = ctx.supervisor.findSandbox(ref);
  const view = id ? ctx.supervisor.view(id) : null;
  if (!view) throw new NotFound(`pod sandbox "${ref}" not found`);
  return { stats: await statsOfPod(reading(ctx), view, containersOf(ctx, view.id)) };
}

interface PodSandboxStatsFilter {
  id: string;
  labelSelector: Record<string, string>;
}

export async function listPodSandboxStats(req: { filter: PodSandboxStatsFilter | null }, ctx: CriContext) {
  const f = req.filter;
  const pods = ctx.supervisor.views().filter((v) => {
    if (!f) return true;
    if (f.id && !v.id.startsWith(f.id)) return false;
    return labelsMatch(v.context.spec.labels, f.labelSelector);
  });
  const byPod = new Map<string, ContainerView[]>();
  for (const c of ctx.supervisor.containerViews()) byPod.set(c.context.spec.sandboxId, [...(byPod.get(c.context.spec.sandboxId) ?? []), c]);
  const r = reading(ctx);
  return { stats: await Promise.all(pods.map((p) => statsOfPod(r, p, byPod.get(p.id) ?? []))) };
}
