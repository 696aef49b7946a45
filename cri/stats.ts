/**
 * ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats: counters of each
 * container's cgroup and writable layer, as containerd's cri plugin reports them
 * (`internal/cri/server/container_stats_list.go`, `sandbox_stats_linux.go`), taken from the
 * daemon's StatsSampler (actors/stats-sampler.ts: how fresh each counter is, and why).
 *
 * - usage_nano_cores is the CPU rate between the last two samples of the same container or pod
 *   (0 on the first), as containerd computes it.
 * - A container without a cgroup (created, exited, removed meanwhile) reports zeros, not an error.
 * - A pod's cpu/memory/process counts are those of its cgroup_parent when kubelet gave one and it
 *   exists (containerd reads the same); otherwise the sum of the pause's and its containers' cgroups.
 * - A pod's network is its netns's interfaces but lo (runtime/net-dev.ts), eth0 as the default one
 *   (CNI's name for the pod's interface), as containerd reports it; none for a host-network pod.
 */
import type { ContainerSample, PodSample } from '../actors/stats-sampler.js';
import { NotFound } from '../errors/catalogue.js';
import type { CriContext } from './context.js';
import { ItemEncodings } from './list-encoding.js';
import { encodeContainerStatsItem } from './stats-encoding.js';
import { containerCounters, cpuFields, decimal, memoryFields, podNetworkCounters } from './stats-fields.js';
import { requireId } from './validate.js';
import type { InterfaceCounters } from '../runtime/net-dev.js';

const u64 = (value: bigint | number): { value: string } => ({ value: String(value) });

/** One container's ContainerStats as a message object (exported for stats-encoding.test.ts). */
export function containerMessage(sample: ContainerSample) {
  const { view } = sample;
  const { spec } = view.context;
  return { attributes: { id: view.id, metadata: spec.metadata, labels: spec.labels, annotations: spec.annotations }, ...containerCounters(sample, decimal) };
}

const interfaceUsage = (c: InterfaceCounters) => ({ name: c.name, rxBytes: u64(c.rxBytes), rxErrors: u64(c.rxErrors), txBytes: u64(c.txBytes), txErrors: u64(c.txErrors) });

/** The pod's NetworkUsage, read through its pause or a running container (the processes in its netns). */
async function podNetwork(sample: PodSample) {
  const counters = await podNetworkCounters(sample);
  if (!counters) return null;
  const main = counters.find((c) => c.name === 'eth0') ?? counters[0];
  return { timestamp: String(BigInt(Date.now()) * 1_000_000n), defaultInterface: main ? interfaceUsage(main) : null, interfaces: counters.map(interfaceUsage) };
}

async function podMessage(sample: PodSample) {
  const { view, cgroup, containers } = sample;
  const { spec } = view.context;
  const timestamp = String(cgroup.wallNs);
  return {
    attributes: { id: view.id, metadata: spec.metadata, labels: spec.labels, annotations: spec.annotations },
    linux: {
      cpu: cpuFields(cgroup, decimal),
      memory: memoryFields(cgroup.stats, timestamp, decimal),
      network: await podNetwork(sample),
      process: { timestamp, processCount: u64(cgroup.stats.pids) },
      containers: containers.map(containerMessage),
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
  const [sample] = await ctx.stats.containers([view]);
  if (!sample) throw new NotFound(`container "${ref}" not found`);
  return { stats: containerMessage(sample) };
}

interface ContainerStatsFilter {
  id: string;
  podSandboxId: string;
  labelSelector: Record<string, string>;
}

/** Filters as ListContainers does: id and pod id by prefix, every selector label equal. */
// A container's entry changes with its samples only: kept on its cgroup sample (one per container
// and collection period) while its layer sample is the same (cri/list-encoding.ts), and encoded
// by stats-encoding.ts when new.
const listEncodings = new ItemEncodings<ContainerSample>(encodeContainerStatsItem, (sample) => sample.cgroup, (sample) => String(sample.layer.atMs));

/** Encodes new samples' ListContainerStats items ahead of the poll (StatsSampler's onRefreshed). */
export function warmContainerStatsEncodings(samples: readonly ContainerSample[]): void {
  listEncodings.warm(samples);
}

export async function listContainerStats(req: { filter: ContainerStatsFilter | null }, ctx: CriContext) {
  const f = req.filter;
  const views = ctx.supervisor.containerViews().filter((v) => {
    if (!f) return true;
    if (f.id && !v.id.startsWith(f.id)) return false;
    if (f.podSandboxId && !v.context.spec.sandboxId.startsWith(f.podSandboxId)) return false;
    return labelsMatch(v.context.spec.labels, f.labelSelector);
  });
  return listEncodings.reply(await ctx.stats.containers(views));
}

export async function podSandboxStats(req: { podSandboxId: string }, ctx: CriContext) {
  const ref = requireId(req.podSandboxId, 'pod_sandbox_id');
  const id = ctx.supervisor.findSandbox(ref);
  const view = id ? ctx.supervisor.view(id) : null;
  if (!view) throw new NotFound(`pod sandbox "${ref}" not found`);
  const [sample] = await ctx.stats.pods([view]);
  if (!sample) throw new NotFound(`pod sandbox "${ref}" not found`);
  return { stats: await podMessage(sample) };
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
  return { stats: await Promise.all((await ctx.stats.pods(pods)).map(podMessage)) };
}
