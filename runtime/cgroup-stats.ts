/**
 * CPU, memory and pid counters of one cgroup, read straight from cgroupfs, for the CRI stats RPCs.
 * The same counters containerd's cri plugin reads through its cgroups library
 * (`internal/cri/server/container_stats_list_linux.go`):
 * - v1: cpuacct.usage; memory.usage_in_bytes, memory.stat total_{inactive_file,rss,pgfault,pgmajfault},
 *   memory.limit_in_bytes; pids.current.
 * - v2: cpu.stat usage_usec; memory.current, memory.stat {inactive_file,anon,pgfault,pgmajfault},
 *   memory.max; pids.current.
 * Working set = usage − inactive file, clamped at 0 (cAdvisor's and containerd's definition).
 * And for the metrics RPCs (cri/metrics.ts), what cAdvisor reads for its container_* metrics:
 * - v1: cpuacct.usage_user/usage_sys, cpu.stat (CFS periods), memory.stat total_{cache,mapped_file,swap},
 *   memory.failcnt, memory.oom_control oom_kill, cgroup.procs, pids.max, cpu.shares/cfs_quota_us/cfs_period_us.
 * - v2: cpu.stat user_usec/system_usec/nr_periods/nr_throttled/throttled_usec, memory.stat
 *   {file,file_mapped}, memory.swap.current, memory.events max/oom_kill, cgroup.procs, pids.max,
 *   cpu.weight (as shares, cAdvisor's conversion), cpu.max.
 *
 * Where a cgroups path lands is runc's rule: the cgroupfs driver takes an absolute path under each
 * hierarchy; the systemd driver takes "slice:prefix:name", i.e. <expanded slice>/<prefix>-<name>.scope.
 * On a hybrid host (v1 controllers plus a cgroup2 mount at unified/) runc uses v1, so do we.
 *
 * The reads are synchronous on purpose: cgroupfs is generated in memory by the kernel, a read takes
 * about 10 µs here, while the same read through libuv's 4 threads takes about 90 µs and queues
 * behind every other file operation of a busy daemon (issue 12, item 17). Callers that read many
 * cgroups yield to the event loop between batches (actors/stats-sampler.ts).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgument } from '../errors/catalogue.js';

export type CgroupDriver = 'cgroupfs' | 'systemd';

export interface CgroupStats {
  cpuUsageNs: bigint;
  cpuUserNs: bigint;
  cpuSystemNs: bigint;
  /** CFS enforcement periods elapsed, those throttled, and the time throttled. */
  cfsPeriods: bigint;
  cfsThrottledPeriods: bigint;
  cfsThrottledNs: bigint;
  memoryUsageBytes: bigint;
  memoryWorkingSetBytes: bigint;
  memoryRssBytes: bigint;
  /** Page cache, of which mapped files; swap in use. */
  memoryCacheBytes: bigint;
  memoryMappedFileBytes: bigint;
  memorySwapBytes: bigint;
  /** Times the usage hit the limit (v1 failcnt, v2 memory.events max). */
  memoryFailcnt: bigint;
  /** Processes the OOM killer killed in the cgroup. */
  oomKills: bigint;
  pageFaults: bigint;
  majorPageFaults: bigint;
  /** Tasks (threads) in the cgroup, pids.current; processes, the lines of cgroup.procs. */
  pids: number;
  processes: number;
  /** The memory limit, or null when unlimited (or unknown, as for a sum of cgroups). */
  memoryLimitBytes: bigint | null;
  /** pids.max, or null when unlimited (or unknown). */
  pidsLimit: bigint | null;
  /** The CPU spec: shares (v2 weight converted), CFS quota (null: none) and period, in µs. */
  cpuShares: bigint | null;
  cpuQuotaUs: bigint | null;
  cpuPeriodUs: bigint | null;
}

/** Which cgroup hierarchy to read and where it is mounted. */
export interface CgroupLayout {
  root: string;
  version: 1 | 2;
}

export const CGROUP_ROOT = '/sys/fs/cgroup';

/** Pure v2 when the root itself is a cgroup2 mount; otherwise (v1 or hybrid) the v1 controllers. */
export function hostCgroupLayout(root = CGROUP_ROOT): CgroupLayout {
  return { root, version: existsSync(join(root, 'cgroup.controllers')) ? 2 : 1 };
}

/** v1 reports "no limit" as PAGE_COUNTER_MAX pages (0x7FFFFFFFFFFFF000 with 4 KiB pages). */
const V1_UNLIMITED = 1n << 62n;

/** The cgroupsPath podchart gives runc for a pod's pause or container (`id`), per driver. */
export function cgroupsPathFor(cgroupParent: string, id: string, driver: CgroupDriver): string {
  if (driver === 'systemd') return `${cgroupParent || 'system.slice'}:podchart:${id}`;
  return `${cgroupParent || '/podchart'}/${id}`;
}

/**
 * systemd's slice naming, as runc's ExpandSlice: "a-b-c.slice" lives at
 * /a.slice/a-b.slice/a-b-c.slice; "-.slice" is the root.
 */
export function expandSlice(slice: string): string {
  if (!slice.endsWith('.slice') || slice.length <= '.slice'.length || slice.includes('/')) {
    throw new InvalidArgument(`"${slice}" is not a systemd slice name (like kubepods-besteffort.slice)`);
  }
  const name = slice.slice(0, -'.slice'.length);
  if (name === '-') return '/';
  let path = '';
  let prefix = '';
  for (const part of name.split('-')) {
    if (part === '') throw new InvalidArgument(`systemd slice name "${slice}" has an empty component`);
    path += `/${prefix}${part}.slice`;
    prefix += `${part}-`;
  }
  return path;
}

/** A cgroupsPath (as given to runc) as a path relative to a hierarchy's root, starting with "/". */
export function cgroupRelativePath(cgroupsPath: string, driver: CgroupDriver): string {
  if (driver === 'cgroupfs') return absolute(cgroupsPath);
  const parts = cgroupsPath.split(':');
  if (parts.length !== 3) throw new InvalidArgument(`systemd cgroupsPath "${cgroupsPath}" must be slice:prefix:name`);
  const [slice = '', prefix = '', name = ''] = parts;
  const unit = name.endsWith('.slice') ? name : prefix ? `${prefix}-${name}.scope` : `${name}.scope`;
  const parent = expandSlice(slice || 'system.slice');
  return parent === '/' ? `/${unit}` : `${parent}/${unit}`;
}

/** A pod's cgroup_parent (a path for cgroupfs, a slice for systemd) relative to a hierarchy's root. */
export function parentRelativePath(cgroupParent: string, driver: CgroupDriver): string {
  return driver === 'systemd' ? expandSlice(cgroupParent) : absolute(cgroupParent);
}

// runc joins a relative cgroupfs path to its own cgroup; podchart's daemon cgroup is not the pods'
// home, so a relative parent is read as starting at the root.
function absolute(path: string): string {
  return path.startsWith('/') ? path : `/${path}`;
}

/** Where a cgroupsPath lives: per v1 controller, and on a v2 (unified) hierarchy. */
export function cgroupDir(cgroupsPath: string, driver: CgroupDriver, root = CGROUP_ROOT): { v1: (controller: string) => string; v2: string } {
  const rel = cgroupRelativePath(cgroupsPath, driver);
  return { v1: (controller) => join(root, controller, rel), v2: join(root, rel) };
}

/** Reads "key value" lines (memory.stat, cpu.stat) into a map; malformed lines are skipped. */
export function parseFlatKeyed(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value && /^\d+$/.test(value)) out.set(key, BigInt(value));
  }
  return out;
}

function parseNumber(text: string | null): bigint | null {
  const t = text?.trim() ?? '';
  return /^\d+$/.test(t) ? BigInt(t) : null;
}

function workingSet(usage: bigint, inactiveFile: bigint): bigint {
  return usage > inactiveFile ? usage - inactiveFile : 0n;
}

/** Lines of a list file (cgroup.procs): its entries. */
function countLines(text: string | null | undefined): number {
  return (text ?? '').split('\n').filter((line) => line.trim() !== '').length;
}

/** A signed number (cpu.cfs_quota_us is -1 without a quota): null when absent or negative. */
function parseNonNegative(text: string | null | undefined): bigint | null {
  const t = text?.trim() ?? '';
  return /^\d+$/.test(t) ? BigInt(t) : null;
}

/**
 * The contents of a cgroup's files (null where absent: a controller not enabled). The ones after
 * pidsCurrent serve the metrics RPCs alone; absent, their counters are zero.
 */
export interface V1Files {
  cpuacctUsage: string | null;
  memoryUsage: string | null;
  memoryStat: string | null;
  memoryLimit: string | null;
  pidsCurrent: string | null;
  cpuacctUsageUser?: string | null;
  cpuacctUsageSys?: string | null;
  cpuStat?: string | null;
  memoryFailcnt?: string | null;
  memoryOomControl?: string | null;
  procs?: string | null;
  pidsMax?: string | null;
  cpuShares?: string | null;
  cpuQuota?: string | null;
  cpuPeriod?: string | null;
}

export function statsFromV1(f: V1Files): CgroupStats {
  const stat = parseFlatKeyed(f.memoryStat ?? '');
  const cpu = parseFlatKeyed(f.cpuStat ?? '');
  const usage = parseNumber(f.memoryUsage) ?? 0n;
  const limit = parseNumber(f.memoryLimit);
  return {
    cpuUsageNs: parseNumber(f.cpuacctUsage) ?? 0n,
    cpuUserNs: parseNumber(f.cpuacctUsageUser ?? null) ?? 0n,
    cpuSystemNs: parseNumber(f.cpuacctUsageSys ?? null) ?? 0n,
    cfsPeriods: cpu.get('nr_periods') ?? 0n,
    cfsThrottledPeriods: cpu.get('nr_throttled') ?? 0n,
    cfsThrottledNs: cpu.get('throttled_time') ?? 0n,
    memoryUsageBytes: usage,
    memoryWorkingSetBytes: workingSet(usage, stat.get('total_inactive_file') ?? 0n),
    memoryRssBytes: stat.get('total_rss') ?? 0n,
    memoryCacheBytes: stat.get('total_cache') ?? 0n,
    memoryMappedFileBytes: stat.get('total_mapped_file') ?? 0n,
    memorySwapBytes: stat.get('total_swap') ?? 0n,
    memoryFailcnt: parseNumber(f.memoryFailcnt ?? null) ?? 0n,
    oomKills: parseFlatKeyed(f.memoryOomControl ?? '').get('oom_kill') ?? 0n,
    pageFaults: stat.get('total_pgfault') ?? 0n,
    majorPageFaults: stat.get('total_pgmajfault') ?? 0n,
    pids: Number(parseNumber(f.pidsCurrent) ?? 0n),
    processes: countLines(f.procs),
    memoryLimitBytes: limit !== null && limit < V1_UNLIMITED ? limit : null,
    pidsLimit: parseNumber(f.pidsMax ?? null), // "max" is no number: unlimited
    cpuShares: parseNumber(f.cpuShares ?? null),
    cpuQuotaUs: parseNonNegative(f.cpuQuota),
    cpuPeriodUs: parseNumber(f.cpuPeriod ?? null),
  };
}

export interface V2Files {
  cpuStat: string | null;
  memoryCurrent: string | null;
  memoryStat: string | null;
  memoryMax: string | null;
  pidsCurrent: string | null;
  memorySwapCurrent?: string | null;
  memoryEvents?: string | null;
  procs?: string | null;
  pidsMax?: string | null;
  cpuWeight?: string | null;
  cpuMax?: string | null;
}

/** CPU shares (2-262144) as cgroup v2's cpu.weight (1-10000), as runc converts them. */
export function weightFromShares(shares: bigint): bigint {
  return shares <= 2n ? 1n : 1n + ((shares - 2n) * 9999n) / 262142n;
}

/** cpu.weight (1-10000) as v1 shares (2-262144), by cAdvisor's and runc's conversion, inverted. */
export function sharesFromWeight(weight: bigint): bigint {
  return 2n + ((weight - 1n) * 262142n) / 9999n;
}

export function statsFromV2(f: V2Files): CgroupStats {
  const cpu = parseFlatKeyed(f.cpuStat ?? '');
  const stat = parseFlatKeyed(f.memoryStat ?? '');
  const events = parseFlatKeyed(f.memoryEvents ?? '');
  const usage = parseNumber(f.memoryCurrent) ?? 0n;
  const weight = parseNumber(f.cpuWeight ?? null);
  const [quota = '', period = ''] = (f.cpuMax ?? '').trim().split(/\s+/);
  return {
    cpuUsageNs: (cpu.get('usage_usec') ?? 0n) * 1000n,
    cpuUserNs: (cpu.get('user_usec') ?? 0n) * 1000n,
    cpuSystemNs: (cpu.get('system_usec') ?? 0n) * 1000n,
    cfsPeriods: cpu.get('nr_periods') ?? 0n,
    cfsThrottledPeriods: cpu.get('nr_throttled') ?? 0n,
    cfsThrottledNs: (cpu.get('throttled_usec') ?? 0n) * 1000n,
    memoryUsageBytes: usage,
    memoryWorkingSetBytes: workingSet(usage, stat.get('inactive_file') ?? 0n),
    memoryRssBytes: stat.get('anon') ?? 0n,
    memoryCacheBytes: stat.get('file') ?? 0n,
    memoryMappedFileBytes: stat.get('file_mapped') ?? 0n,
    memorySwapBytes: parseNumber(f.memorySwapCurrent ?? null) ?? 0n,
    memoryFailcnt: events.get('max') ?? 0n,
    oomKills: events.get('oom_kill') ?? 0n,
    pageFaults: stat.get('pgfault') ?? 0n,
    majorPageFaults: stat.get('pgmajfault') ?? 0n,
    pids: Number(parseNumber(f.pidsCurrent) ?? 0n),
    processes: countLines(f.procs),
    memoryLimitBytes: parseNumber(f.memoryMax), // "max" is no number: unlimited
    pidsLimit: parseNumber(f.pidsMax ?? null),
    cpuShares: weight === null ? null : sharesFromWeight(weight),
    cpuQuotaUs: parseNonNegative(quota),
    cpuPeriodUs: parseNumber(period || null),
  };
}

/** A file's text, or null when it (or its cgroup) is gone: ENODEV is what a removed cgroup's open file gives. */
function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENODEV' || code === 'ENOTDIR') return null;
    throw err;
  }
}

function isDir(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

/**
 * Stats of the cgroup at `rel` (relative to the hierarchy root), or null if it does not exist.
 * `full`: every counter the metrics RPCs use; otherwise the stats RPCs' few, the rest left zero.
 */
export function readCgroupStatsAt(rel: string, layout: CgroupLayout = hostCgroupLayout(), full = false): CgroupStats | null {
  if (layout.version === 2) {
    const dir = join(layout.root, rel);
    const always = (file: string): string | null => readOrNull(join(dir, file));
    const at = (file: string): string | null => (full ? readOrNull(join(dir, file)) : null);
    const files: V2Files = {
      cpuStat: always('cpu.stat'),
      memoryCurrent: always('memory.current'),
      memoryStat: always('memory.stat'),
      memoryMax: always('memory.max'),
      pidsCurrent: always('pids.current'),
      memorySwapCurrent: at('memory.swap.current'),
      memoryEvents: at('memory.events'),
      procs: at('cgroup.procs'),
      pidsMax: at('pids.max'),
      cpuWeight: at('cpu.weight'),
      cpuMax: at('cpu.max'),
    };
    // Checked after reading: a cgroup removed meanwhile must not pass for one with empty counters.
    if (!isDir(dir)) return null;
    return statsFromV2(files);
  }
  const always = (controller: string, file: string): string | null => readOrNull(join(layout.root, controller, rel, file));
  const at = (controller: string, file: string): string | null => (full ? always(controller, file) : null);
  const files: V1Files = {
    cpuacctUsage: always('cpuacct', 'cpuacct.usage'),
    memoryUsage: always('memory', 'memory.usage_in_bytes'),
    memoryStat: always('memory', 'memory.stat'),
    memoryLimit: always('memory', 'memory.limit_in_bytes'),
    pidsCurrent: always('pids', 'pids.current'),
    cpuacctUsageUser: at('cpuacct', 'cpuacct.usage_user'),
    cpuacctUsageSys: at('cpuacct', 'cpuacct.usage_sys'),
    cpuStat: at('cpu', 'cpu.stat'),
    memoryFailcnt: at('memory', 'memory.failcnt'),
    memoryOomControl: at('memory', 'memory.oom_control'),
    procs: at('pids', 'cgroup.procs') ?? at('memory', 'cgroup.procs'),
    pidsMax: at('pids', 'pids.max'),
    cpuShares: at('cpu', 'cpu.shares'),
    cpuQuota: at('cpu', 'cpu.cfs_quota_us'),
    cpuPeriod: at('cpu', 'cpu.cfs_period_us'),
  };
  if (!isDir(join(layout.root, 'cpuacct', rel)) && !isDir(join(layout.root, 'memory', rel))) return null;
  return statsFromV1(files);
}

/** Stats of the cgroup runc made for `cgroupsPath`; null once it is gone (or before it exists). */
export function readCgroupStats(cgroupsPath: string, driver: CgroupDriver, layout: CgroupLayout = hostCgroupLayout(), full = false): CgroupStats | null {
  return readCgroupStatsAt(cgroupRelativePath(cgroupsPath, driver), layout, full);
}

export const ZERO_STATS: Readonly<CgroupStats> = Object.freeze({
  cpuUsageNs: 0n, cpuUserNs: 0n, cpuSystemNs: 0n, cfsPeriods: 0n, cfsThrottledPeriods: 0n, cfsThrottledNs: 0n,
  memoryUsageBytes: 0n, memoryWorkingSetBytes: 0n, memoryRssBytes: 0n, memoryCacheBytes: 0n, memoryMappedFileBytes: 0n,
  memorySwapBytes: 0n, memoryFailcnt: 0n, oomKills: 0n, pageFaults: 0n, majorPageFaults: 0n, pids: 0, processes: 0,
  memoryLimitBytes: null, pidsLimit: null, cpuShares: null, cpuQuotaUs: null, cpuPeriodUs: null,
});

/** The counters a sum adds up; the limits and the CPU spec of a sum are unknown. */
const SUMMED = ['cpuUsageNs', 'cpuUserNs', 'cpuSystemNs', 'cfsPeriods', 'cfsThrottledPeriods', 'cfsThrottledNs', 'memoryUsageBytes',
  'memoryWorkingSetBytes', 'memoryRssBytes', 'memoryCacheBytes', 'memoryMappedFileBytes', 'memorySwapBytes', 'memoryFailcnt',
  'oomKills', 'pageFaults', 'majorPageFaults'] as const;

/** The sum of several cgroups' counters (a pod without a cgroup of its own); the limits are unknown. */
export function sumCgroupStats(all: readonly CgroupStats[]): CgroupStats {
  const sum: CgroupStats = { ...ZERO_STATS };
  for (const s of all) {
    for (const key of SUMMED) sum[key] += s[key];
    sum.pids += s.pids;
    sum.processes += s.processes;
  }
  return sum;
}
