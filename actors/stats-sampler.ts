/**
 * The samples the CRI stats calls answer from (issue 12 item 17, issue 14): kubelet polls them,
 * often several calls in a row, and reading every cgroup and walking every writable layer per call
 * took about 200 ms with 200 containers, and far more under load, as each of those ~2000 file
 * operations queued behind the rest of the daemon's on libuv's 4 threads.
 *
 * - Cgroup counters: read on demand, synchronously (cgroupfs is in memory: about 10 µs a read),
 *   yielding to the event loop every YIELD_EVERY actors. Calls within one collection period
 *   (`statsCollectionPeriodMs`, 1 s) share a sample, as CRI-O's stats_collection_period does.
 * - Writable-layer usage: a directory walk that may meet many files, so it is asynchronous and
 *   refreshed in the background: a call answers with the last walk, and starts a new one when that
 *   is older than `writableLayerUsagePeriodMs` (10 s; cAdvisor refreshes disk usage about once a
 *   minute). A container's first walk starts at its create (`primeLayer`); only a call that comes
 *   before it ends waits for it. At most LAYER_WALKS_AT_ONCE walks run at once.
 * No timer: a node nobody asks for stats pays only one near-empty walk per container, at its create.
 *
 * usage_nano_cores is the CPU rate between two samples of the same container or pod (0 on the first),
 * as containerd computes it.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Logger } from 'pino';
import {
  cgroupsPathFor,
  hostCgroupLayout,
  parentRelativePath,
  readCgroupStats,
  readCgroupStatsAt,
  sumCgroupStats,
  ZERO_STATS,
  type CgroupDriver,
  type CgroupLayout,
  type CgroupStats,
} from '../runtime/cgroup-stats.js';
import type { ContainerView, SandboxView } from './views.js';
import { join } from 'node:path';

/** Actors read between two yields to the event loop (about 1 ms of cgroup reads); cached ones do not count. */
const YIELD_EVERY = 64;
/** Writable-layer walks in flight at once. */
const LAYER_WALKS_AT_ONCE = 2;
/** The shortest window a CPU rate is computed over. */
const MIN_RATE_WINDOW_NS = 100_000_000n;

/**
 * The previous CPU sample per container or pod. Samples closer than MIN_RATE_WINDOW_NS reuse the
 * last rate, so back-to-back samples do not turn noise into a rate.
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

export interface CgroupSample {
  stats: CgroupStats;
  /** Read with every counter the metrics RPCs use; otherwise the stats RPCs' few (the rest zero). */
  full: boolean;
  /** usage_nano_cores at this sample. */
  rateNanoCores: bigint;
  /** Wall-clock time of the sample, in ns since the epoch (the CRI timestamp). */
  wallNs: bigint;
  /** performance.now() of the sample: its age. */
  atMs: number;
}

export interface LayerSample {
  bytes: number;
  inodes: number;
  wallNs: bigint;
  atMs: number;
}

export interface ContainerSample {
  view: ContainerView;
  cgroup: CgroupSample;
  layer: LayerSample;
}

export interface PodSample {
  view: SandboxView;
  cgroup: CgroupSample;
  containers: ContainerSample[];
}

export interface StatsSamplerOptions {
  supervisor: {
    views(): SandboxView[];
    containerViews(): ContainerView[];
    view(id: string): SandboxView | null;
    /** The ids of a kind's live actors; a new list after every change (the registry's). */
    liveIds(kind: 'sandbox' | 'container'): readonly string[];
  };
  images: { writableLayerUsage(containerDir: string): Promise<{ bytes: number; inodes: number }> };
  driver: CgroupDriver;
  periodMs: number;
  layerPeriodMs: number;
  logger: Logger;
  layout?: CgroupLayout;
  /** Told of every container's samples taken by a refresh before a poll (the reply encodings are made then too). */
  onRefreshed?: (samples: readonly ContainerSample[]) => void;
}

/** When calls of one kind (containers, pods) came: the last one, and the gap before it (null: none yet). */
interface Poll {
  kind: 'containers' | 'pods';
  atMs: number | null;
  gapMs: number | null;
  /** The refresh before the next call of this kind. */
  refresh: NodeJS.Timeout | null;
}

const newPoll = (kind: Poll['kind']): Poll => ({ kind, atMs: null, gapMs: null, refresh: null });

/**
 * What a sample must be to be reused: taken at or after `notBefore` (a refresh reads again what is
 * older than its start), and `full` when the caller needs every counter (the metrics RPCs read
 * about three times the files the stats RPCs do: those pay for them alone).
 */
interface Want {
  notBefore: number;
  full: boolean;
}
const STATS: Want = { notBefore: -Infinity, full: false };
const containerKey = (id: string): string => `container:${id}`;
const podKey = (id: string): string => `pod:${id}`;
const wallNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

export class StatsSampler {
  private readonly rates = new CpuRates();
  private readonly containerCgroups = new Map<string, CgroupSample>();
  private readonly podCgroups = new Map<string, CgroupSample>();
  private readonly layers = new Map<string, LayerSample>();
  private readonly walks = new Map<string, Promise<LayerSample>>();
  private readonly walkQueue: (() => void)[] = [];
  private walking = 0;
  /** Keys whose read failed and was logged: once per actor, not once per poll. */
  private readonly warned = new Set<string>();
  private readonly layout: CgroupLayout;
  /** The id lists the last prune ran against (the registry makes new ones on every change). */
  private prunedFor: { containers: readonly string[]; pods: readonly string[] } | null = null;
  /** Each kind of call's timing, for the refresh before its next poll. */
  private readonly polls = { containers: newPoll('containers'), pods: newPoll('pods') };

  constructor(private readonly options: StatsSamplerOptions) {
    this.layout = options.layout ?? hostCgroupLayout();
  }

  /** A sample per container, in the order given. */
  async containers(views: readonly ContainerView[]): Promise<ContainerSample[]> {
    const poll = this.noteCall(this.polls.containers);
    const samples = await this.sampleContainers(views, STATS);
    this.scheduleRefresh(poll, samples.map((s) => s.cgroup));
    return samples;
  }

  /** A sample per pod, with its containers' (taken first: counters only grow, so a pod is never less than its parts). */
  async pods(views: readonly SandboxView[]): Promise<PodSample[]> {
    const poll = this.noteCall(this.polls.pods);
    const samples = await this.samplePods(views, STATS);
    this.scheduleRefresh(poll, samples.map((s) => s.cgroup));
    return samples;
  }

  /** Pods' samples with every counter, for the metrics RPCs (not polled: no refresh ahead). */
  metrics(views: readonly SandboxView[]): Promise<PodSample[]> {
    return this.samplePods(views, { notBefore: -Infinity, full: true });
  }

  private async sampleContainers(views: readonly ContainerView[], want: Want): Promise<ContainerSample[]> {
    this.prune();
    const cgroups: CgroupSample[] = [];
    let reads = 0;
    for (const view of views) {
      const cached = this.fresh(this.containerCgroups, view.id, want);
      if (!cached && ++reads % YIELD_EVERY === 0) await yieldToLoop();
      cgroups.push(cached ?? this.containerCgroup(view, want));
    }
    const layers = views.map((view) => this.layer(view));
    // Most calls find every layer sample cached: no promise to wait for, not even one microtask each.
    const settled = layers.some((l) => l instanceof Promise) ? await Promise.all(layers.map(async (l) => l)) : (layers as LayerSample[]);
    return views.map((view, i) => ({ view, cgroup: cgroups[i] ?? this.containerCgroup(view, want), layer: settled[i] ?? this.emptyLayer() }));
  }

  private async samplePods(views: readonly SandboxView[], want: Want): Promise<PodSample[]> {
    const byPod = new Map<string, ContainerView[]>();
    for (const c of this.options.supervisor.containerViews()) {
      const list = byPod.get(c.context.spec.sandboxId);
      if (list) list.push(c);
      else byPod.set(c.context.spec.sandboxId, [c]);
    }
    const wanted = views.flatMap((p) => byPod.get(p.id) ?? []);
    const samples = new Map((await this.sampleContainers(wanted, want)).map((s) => [s.view.id, s]));
    const out: PodSample[] = [];
    let reads = 0;
    for (const view of views) {
      if (!this.fresh(this.podCgroups, view.id, want) && ++reads % YIELD_EVERY === 0) await yieldToLoop();
      const containers = (byPod.get(view.id) ?? []).flatMap((c) => samples.get(c.id) ?? []);
      out.push({ view, cgroup: this.podCgroup(view, containers, want), containers });
    }
    return out;
  }

  /** Records a call of one kind: when it came, and how long after the one before. */
  private noteCall(poll: Poll): Poll {
    const now = performance.now();
    poll.gapMs = poll.atMs === null ? null : now - poll.atMs;
    poll.atMs = now;
    return poll;
  }

  /**
   * kubelet polls stats at a steady period (10 s by default), longer than the collection period,
   * so each poll would find its samples stale and read every cgroup while it waits: with 200
   * containers, 30-50 ms of a ~1 ms call. Instead, when the next poll (expected this call's gap
   * after it) would find these samples stale, they are all taken again shortly before it is due
   * (half the gap, at most half a period, before). A poll that comes early or late reads what is
   * stale itself, as without this. No polls, no refreshes; one at most per call and per period, so
   * the cgroups are read no more often than the calls would read them.
   */
  private scheduleRefresh(poll: Poll, served: readonly CgroupSample[]): void {
    if (poll.gapMs === null || poll.atMs === null || served.length === 0) return;
    const { periodMs } = this.options;
    let oldest = Infinity;
    for (const sample of served) if (sample.atMs < oldest) oldest = sample.atMs;
    const expected = poll.atMs + poll.gapMs;
    if (expected < oldest + periodMs) return; // still fresh then: the next call shares them
    const margin = Math.min(periodMs / 2, poll.gapMs / 2);
    if (poll.refresh) clearTimeout(poll.refresh);
    poll.refresh = setTimeout(() => {
      poll.refresh = null;
      void this.refreshPolled(poll.kind);
    }, Math.max(0, expected - margin - performance.now()));
    poll.refresh.unref();
  }

  /** Samples every live actor of the kind, as an unfiltered call would. */
  private async refreshPolled(kind: Poll['kind']): Promise<void> {
    const { supervisor } = this.options;
    try {
      const now = performance.now();
      const want: Want = { notBefore: now, full: false };
      if (kind === 'pods') await this.samplePods(supervisor.views(), want);
      else {
        // Not `onRefreshed?.(await …)`: an optional call does not evaluate its arguments when absent.
        const samples = await this.sampleContainers(supervisor.containerViews(), want);
        this.options.onRefreshed?.(samples);
      }
    } catch (err) {
      this.options.logger.warn({ err }, 'refreshing stats samples before the next poll failed; the poll reads them itself');
    }
  }

  /** Keyed by the actor's own id string: a key built per lookup would be hashed afresh each time (issue 14). */
  private fresh(samples: ReadonlyMap<string, CgroupSample>, id: string, want: Want): CgroupSample | null {
    const s = samples.get(id);
    return s && s.atMs >= want.notBefore && (s.full || !want.full) && performance.now() - s.atMs < this.options.periodMs ? s : null;
  }

  private containerCgroup(view: ContainerView, want: Want): CgroupSample {
    const cached = this.fresh(this.containerCgroups, view.id, want);
    if (cached) return cached;
    const { driver } = this.options;
    const parent = this.options.supervisor.view(view.context.spec.sandboxId)?.context.spec.cgroupParent ?? '';
    return this.sample(this.containerCgroups, view.id, containerKey(view.id), { containerId: view.id }, want.full, () => readCgroupStats(cgroupsPathFor(parent, view.id, driver), driver, this.layout, want.full));
  }

  /** The pod's cgroup_parent when kubelet gave one and it exists (containerd reads the same); else pause + containers. */
  private podCgroup(view: SandboxView, containers: readonly ContainerSample[], want: Want): CgroupSample {
    const cached = this.fresh(this.podCgroups, view.id, want);
    if (cached) return cached;
    const { driver } = this.options;
    const { cgroupParent } = view.context.spec;
    return this.sample(this.podCgroups, view.id, podKey(view.id), { sandboxId: view.id }, want.full, () => {
      const parent = cgroupParent ? readCgroupStatsAt(parentRelativePath(cgroupParent, driver), this.layout, want.full) : null;
      if (parent) return parent;
      const pause = readCgroupStats(cgroupsPathFor(cgroupParent, view.id, driver), driver, this.layout, want.full);
      return sumCgroupStats([pause ?? ZERO_STATS, ...containers.map((c) => c.cgroup.stats)]);
    });
  }

  /**
   * One cgroup's counters, zero when it is gone. A read that fails otherwise (a permission, a bad
   * slice name) is logged once and reported as zeros: a polled List must not lose every container's
   * stats to one of them (containerd skips such a container with a log line too).
   */
  private sample(samples: Map<string, CgroupSample>, id: string, key: string, what: Record<string, string>, full: boolean, read: () => CgroupStats | null): CgroupSample {
    let stats: CgroupStats;
    try {
      stats = read() ?? { ...ZERO_STATS };
    } catch (err) {
      if (!this.warned.has(key)) this.options.logger.warn({ ...what, err }, 'reading cgroup stats failed; reporting zeros');
      this.warned.add(key);
      stats = { ...ZERO_STATS };
    }
    const atNs = process.hrtime.bigint();
    const sample: CgroupSample = { stats, full, rateNanoCores: this.rates.rate(key, stats.cpuUsageNs, atNs), wallNs: wallNs(), atMs: performance.now() };
    samples.set(id, sample);
    return sample;
  }

  /**
   * Starts the first walk of a new container's writable layer (at its create, issue 14), so that no
   * stats call waits for it: without it, the first call after many containers started waited for
   * all their walks. The layer is all but empty then, so the walk is a readdir or two.
   */
  primeLayer(view: ContainerView): void {
    if (!this.layers.has(view.id)) void this.walk(view);
  }

  /** The last walk of the container's writable layer (a walk when there is none); a new one starts when it is old. */
  private layer(view: ContainerView): LayerSample | Promise<LayerSample> {
    const last = this.layers.get(view.id);
    if (!last) return this.walk(view);
    if (performance.now() - last.atMs >= this.options.layerPeriodMs) void this.walk(view);
    return last;
  }

  private walk(view: ContainerView): Promise<LayerSample> {
    const inFlight = this.walks.get(view.id);
    if (inFlight) return inFlight;
    const walk = this.whenWalkSlotFree()
      // The writable layer is the overlay's upper dir under <dir>/rootfs (container-effects.ts).
      .then(() => this.options.images.writableLayerUsage(join(view.context.spec.dir, 'rootfs')))
      .then(
        (usage): LayerSample => ({ ...usage, wallNs: wallNs(), atMs: performance.now() }),
        (err: unknown): LayerSample => {
          if (!this.warned.has(`layer:${view.id}`)) this.options.logger.warn({ containerId: view.id, err }, 'measuring the writable layer failed; reporting zeros');
          this.warned.add(`layer:${view.id}`);
          return this.emptyLayer();
        },
      )
      .then((sample) => {
        // A container removed during the walk is not brought back into the cache.
        if (this.walks.get(view.id) === walk) this.layers.set(view.id, sample);
        return sample;
      })
      .finally(() => {
        if (this.walks.get(view.id) === walk) this.walks.delete(view.id);
        this.walking--;
        this.walkQueue.shift()?.();
      });
    this.walks.set(view.id, walk);
    return walk;
  }

  private whenWalkSlotFree(): Promise<void> {
    if (this.walking < LAYER_WALKS_AT_ONCE) {
      this.walking++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.walkQueue.push(() => {
      this.walking++;
      resolve();
    }));
  }

  private emptyLayer(): LayerSample {
    return { bytes: 0, inodes: 0, wallNs: wallNs(), atMs: performance.now() };
  }

  /** Drops what belongs to actors that no longer exist; nothing to do while the id lists are the ones pruned against. */
  private prune(): void {
    const { supervisor } = this.options;
    const containers = supervisor.liveIds('container');
    const pods = supervisor.liveIds('sandbox');
    if (this.prunedFor?.containers === containers && this.prunedFor.pods === pods) return;
    this.prunedFor = { containers, pods };
    const containerIds = new Set(containers);
    const live = new Set([...containers.map(containerKey), ...pods.map(podKey)]);
    this.rates.retain(live);
    for (const id of this.containerCgroups.keys()) if (!containerIds.has(id)) this.containerCgroups.delete(id);
    const podIds = new Set(pods);
    for (const id of this.podCgroups.keys()) if (!podIds.has(id)) this.podCgroups.delete(id);
    for (const id of this.layers.keys()) if (!containerIds.has(id)) this.layers.delete(id);
    for (const id of this.walks.keys()) if (!containerIds.has(id)) this.walks.delete(id);
    for (const key of this.warned) if (!live.has(key) && !containerIds.has(key.replace(/^layer:/, ''))) this.warned.delete(key);
  }
}
