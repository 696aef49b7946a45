/**
 * A pod's resources on its cgroup (UpdatePodSandboxResources, issue 16 item 4): the pod cgroup is
 * the cgroup_parent kubelet gave the pod, under which runc puts the pause and every container.
 *
 * The pod's limits are its resources plus its overhead (kubelet sizes a pod cgroup so: the sum of
 * its containers' limits and the runtime class's overhead). A field left 0 or empty is left as it
 * is, as `runc update` leaves it. Written straight to cgroupfs, v1 or v2, as runc writes a
 * container's: memory limit, CPU shares (v2: weight, runc's conversion), CFS quota and period, cpuset.
 * Containers whose own limits would exceed the pod's are lowered first (cri/sandbox-update.ts).
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EffectFailed } from '../errors/catalogue.js';
import { parentRelativePath, weightFromShares, type CgroupDriver, type CgroupLayout } from './cgroup-stats.js';

/** The CRI LinuxContainerResources fields a pod cgroup takes (int64s as proto-loader's strings). */
export interface PodLimits {
  memoryLimitInBytes: bigint;
  cpuShares: bigint;
  cpuQuota: bigint;
  cpuPeriod: bigint;
  cpusetCpus: string;
  cpusetMems: string;
}

/** An int64 field of a LinuxContainerResources map (proto-loader's decimal string); 0 when unset. */
export const resourceInt = (r: Record<string, unknown> | null, key: string): bigint => {
  const v = r?.[key];
  return typeof v === 'string' || typeof v === 'number' ? BigInt(v) : 0n;
};
const str = (r: Record<string, unknown> | null, key: string): string => (typeof r?.[key] === 'string' ? r[key] : '');

/** The pod's limits: its resources, with the overhead added to each limit that is set. */
export function podLimits(resources: Record<string, unknown> | null, overhead: Record<string, unknown> | null): PodLimits {
  const plus = (key: string): bigint => {
    const own = resourceInt(resources, key);
    return own > 0n ? own + (resourceInt(overhead, key) > 0n ? resourceInt(overhead, key) : 0n) : 0n;
  };
  return {
    memoryLimitInBytes: plus('memoryLimitInBytes'),
    cpuShares: plus('cpuShares'),
    cpuQuota: plus('cpuQuota'),
    cpuPeriod: resourceInt(resources, 'cpuPeriod'),
    cpusetCpus: str(resources, 'cpusetCpus'),
    cpusetMems: str(resources, 'cpusetMems'),
  };
}


/** The files to write, in order, each as [path below the hierarchy root, value]. */
export function podCgroupWrites(limits: PodLimits, version: 1 | 2, rel: string): [string, string][] {
  const out: [string, string][] = [];
  if (version === 1) {
    if (limits.memoryLimitInBytes > 0n) out.push([join('memory', rel, 'memory.limit_in_bytes'), String(limits.memoryLimitInBytes)]);
    if (limits.cpuShares > 0n) out.push([join('cpu', rel, 'cpu.shares'), String(limits.cpuShares)]);
    if (limits.cpuQuota > 0n || limits.cpuPeriod > 0n) {
      // No quota while the period changes: a quota valid for one period may not be for another.
      out.push([join('cpu', rel, 'cpu.cfs_quota_us'), '-1']);
      if (limits.cpuPeriod > 0n) out.push([join('cpu', rel, 'cpu.cfs_period_us'), String(limits.cpuPeriod)]);
      if (limits.cpuQuota > 0n) out.push([join('cpu', rel, 'cpu.cfs_quota_us'), String(limits.cpuQuota)]);
    }
    if (limits.cpusetCpus) out.push([join('cpuset', rel, 'cpuset.cpus'), limits.cpusetCpus]);
    if (limits.cpusetMems) out.push([join('cpuset', rel, 'cpuset.mems'), limits.cpusetMems]);
    return out;
  }
  if (limits.memoryLimitInBytes > 0n) out.push([join(rel, 'memory.max'), String(limits.memoryLimitInBytes)]);
  if (limits.cpuShares > 0n) out.push([join(rel, 'cpu.weight'), String(weightFromShares(limits.cpuShares))]);
  if (limits.cpuQuota > 0n) out.push([join(rel, 'cpu.max'), `${limits.cpuQuota} ${limits.cpuPeriod > 0n ? limits.cpuPeriod : 100000n}`]);
  if (limits.cpusetCpus) out.push([join(rel, 'cpuset.cpus'), limits.cpusetCpus]);
  if (limits.cpusetMems) out.push([join(rel, 'cpuset.mems'), limits.cpusetMems]);
  return out;
}

/** Writes the pod's limits to its cgroup; a refusal names the file and the kernel's reason. */
export async function applyPodLimits(cgroupParent: string, driver: CgroupDriver, layout: CgroupLayout, limits: PodLimits): Promise<void> {
  const rel = parentRelativePath(cgroupParent, driver);
  const dir = layout.version === 2 ? join(layout.root, rel) : join(layout.root, 'memory', rel);
  if (!existsSync(dir)) throw new EffectFailed(`the pod's cgroup ${rel} does not exist (looked for ${dir})`);
  for (const [file, value] of podCgroupWrites(limits, layout.version, rel)) {
    const path = join(layout.root, file);
    try {
      await writeFile(path, value);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      const why = code === 'EBUSY' ? ': the pod uses more than that and the kernel could not reclaim it' : code === 'EINVAL' ? ': the kernel refused the value' : '';
      throw new EffectFailed(`writing ${value} to ${path} failed (${code})${why}`);
    }
  }
}
