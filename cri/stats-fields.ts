/**
 * The counter fields of the CRI stats messages, built once for both of their encoders: with
 * numbers as decimal strings for the gRPC serializer (cri/stats.ts), or as protobufjs's Long-like
 * halves for its encoder directly (cri/stats-encoding.ts). `n` spells a number in that form.
 */
import { dirname } from 'node:path';
import type { CgroupSample, ContainerSample, PodSample } from '../actors/stats-sampler.js';
import { netnsCounters, type InterfaceCounters } from '../runtime/net-dev.js';
import type { CgroupStats } from '../runtime/cgroup-stats.js';

export type NumberForm<N> = (value: bigint | number) => N;

/** Decimal strings: what the gRPC serializer's fromObject takes for int64 and uint64. */
export const decimal: NumberForm<string> = (value) => String(value);

export function cpuFields<N>(c: CgroupSample, n: NumberForm<N>) {
  return { timestamp: n(c.wallNs), usageCoreNanoSeconds: { value: n(c.stats.cpuUsageNs) }, usageNanoCores: { value: n(c.rateNanoCores) } };
}

export function memoryFields<N>(s: CgroupStats, timestamp: N, n: NumberForm<N>) {
  const limit = s.memoryLimitBytes;
  return {
    timestamp,
    workingSetBytes: { value: n(s.memoryWorkingSetBytes) },
    // Only meaningful under a limit (containerd sends it the same way).
    availableBytes: limit === null ? null : { value: n(limit > s.memoryWorkingSetBytes ? limit - s.memoryWorkingSetBytes : 0n) },
    usageBytes: { value: n(s.memoryUsageBytes) },
    rssBytes: { value: n(s.memoryRssBytes) },
    pageFaults: { value: n(s.pageFaults) },
    majorPageFaults: { value: n(s.majorPageFaults) },
  };
}

/** A ContainerStats' fields but its attributes: what changes with every sample. */
export function containerCounters<N>({ view, cgroup, layer }: ContainerSample, n: NumberForm<N>) {
  return {
    cpu: cpuFields(cgroup, n),
    memory: memoryFields(cgroup.stats, n(cgroup.wallNs), n),
    writableLayer: {
      timestamp: n(layer.wallNs),
      fsId: { mountpoint: dirname(view.context.spec.dir) },
      usedBytes: { value: n(layer.bytes) },
      inodesUsed: { value: n(layer.inodes) },
    },
  };
}

/**
 * A pod's network counters (PodSandboxStats' network and the container_network_* metrics), read
 * through its pause or a running container, the processes in its netns; null for a host-network
 * pod or a netns that is gone.
 */
export function podNetworkCounters({ view, containers }: PodSample): Promise<InterfaceCounters[] | null> {
  const { netnsPath } = view.context.spec;
  if (!netnsPath) return Promise.resolve(null);
  const running = containers.filter((c) => c.view.criState === 'CONTAINER_RUNNING').map((c) => c.view.context.pid);
  return netnsCounters(netnsPath, [view.context.pid, ...running].filter((p): p is number => typeof p === 'number' && p > 0));
}
