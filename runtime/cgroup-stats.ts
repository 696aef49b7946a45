/**
 * CPU, memory and pid counters of one cgroup, read straight from cgroupfs, for the CRI stats RPCs.
 * The same counters containerd's cri plugin reads through its cgroups library
 * (`internal/cri/server/container_stats_list_linux.go`):
 * - v1: cpuacct.usage; memory.usage_in_bytes, memory.stat total_{inactive_file,rss,pgfault,pgmajfault},
 *   memory.limit_in_bytes; pids.current.
 * - v2: cpu.stat usage_usec; memory.current, memory.stat {inactive_file,anon,pgfault,pgmajfault},
 *   memory.max; pids.current.
 * Working set = usage − inactive file, clamped at 0 (cAdvisor's and containerd's definition).
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
  memoryUsageBytes: bigint;
  memoryWorkingSetBytes: bigint;
  memoryRssBytes: bigint;
  pageFaults: bigint;
  majorPageFaults: bigint;
  pids: number;
  /** The memory limit, or null when unlimited (or unknown, as for a sum of cgroups). */
  memoryLimitBytes: bigint | null;
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

/** The contents of a cgroup's files (null where absent: a controller not enabled). */
export interface V1Files {
  cpuacctUsage: string | null;
  memoryUsage: string | null;
  memoryStat: string | null;
  memoryLimit: string | null;
  pidsCurrent: string | null;
}

export function statsFromV1(f: V1Files): CgroupStats {
  const stat = parseFlatKeyed(f.memoryStat ?? '');
  const usage = parseNumber(f.memoryUsage) ?? 0n;
  const limit = parseNumber(f.memoryLimit);
  return {
    cpuUsageNs: parseNumber(f.cpuacctUsage) ?? 0n,
    memoryUsageBytes: usage,
    memoryWorkingSetBytes: workingSet(usage, stat.get('total_inactive_file') ?? 0n),
    memoryRssBytes: stat.get('total_rss') ?? 0n,
    pageFaults: stat.get('total_pgfault') ?? 0n,
    majorPageFaults: stat.get('total_pgmajfault') ?? 0n,
    pids: Number(parseNumber(f.pidsCurrent) ?? 0n),
    memoryLimitBytes: limit !== null && limit < V1_UNLIMITED ? limit : null,
  };
}

export interface V2Files {
  cpuStat: string | null;
  memoryCurrent: string | null;
  memoryStat: string | null;
  memoryMax: string | null;
  pidsCurrent: string | null;
}

export function statsFromV2(f: V2Files): CgroupStats {
  const cpu = parseFlatKeyed(f.cpuStat ?? '');
  const stat = parseFlatKeyed(f.memoryStat ?? '');
  const usage = parseNumber(f.memoryCurrent) ?? 0n;
  return {
    cpuUsageNs: (cpu.get('usage_usec') ?? 0n) * 1000n,
    memoryUsageBytes: usage,
    memoryWorkingSetBytes: workingSet(usage, stat.get('inactive_file') ?? 0n),
    memoryRssBytes: stat.get('anon') ?? 0n,
    pageFaults: stat.get('pgfault') ?? 0n,
    majorPageFaults: stat.get('pgmajfault') ?? 0n,
    pids: Number(parseNumber(f.pidsCurrent) ?? 0n),
    memoryLimitBytes: parseNumber(f.memoryMax), // "max" is no number: unlimited
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

/** Stats of the cgroup at `rel` (relative to the hierarchy root), or null if it does not exist. */
export function readCgroupStatsAt(rel: string, layout: CgroupLayout = hostCgroupLayout()): CgroupStats | null {
  if (layout.version === 2) {
    const dir = join(layout.root, rel);
    const [cpuStat = null, memoryCurrent = null, memoryStat = null, memoryMax = null, pidsCurrent = null] = ['cpu.stat', 'memory.current', 'memory.stat', 'memory.max', 'pids.current'].map((f) => readOrNull(join(dir, f)));
    // Checked after reading: a cgroup removed meanwhile must not pass for one with empty counters.
    if (!isDir(dir)) return null;
    return statsFromV2({ cpuStat, memoryCurrent, memoryStat, memoryMax, pidsCurrent });
  }
  const at = (controller: string, file: string): string | null => readOrNull(join(layout.root, controller, rel, file));
  const files: V1Files = {
    cpuacctUsage: at('cpuacct', 'cpuacct.usage'),
    memoryUsage: at('memory', 'memory.usage_in_bytes'),
    memoryStat: at('memory', 'memory.stat'),
    memoryLimit: at('memory', 'memory.limit_in_bytes'),
    pidsCurrent: at('pids', 'pids.current'),
  };
  if (!isDir(join(layout.root, 'cpuacct', rel)) && !isDir(join(layout.root, 'memory', rel))) return null;
  return statsFromV1(files);
}

/** Stats of the cgroup runc made for `cgroupsPath`; null once it is gone (or before it exists). */
export function readCgroupStats(cgroupsPath: string, driver: CgroupDriver, layout: CgroupLayout = hostCgroupLayout()): CgroupStats | null {
  return readCgroupStatsAt(cgroupRelativePath(cgroupsPath, driver), layout);
}

export const ZERO_STATS: Readonly<CgroupStats> = Object.freeze({
  cpuUsageNs: 0n, memoryUsageBytes: 0n, memoryWorkingSetBytes: 0n, memoryRssBytes: 0n,
  pageFaults: 0n, majorPageFaults: 0n, pids: 0, memoryLimitBytes: null,
});

/** The sum of several cgroups' counters (a pod without a cgroup of its own); the limit is unknown. */
export function sumCgroupStats(all: readonly CgroupStats[]): CgroupStats {
  return all.reduce<CgroupStats>(
    (a, s) => ({
      cpuUsageNs: a.cpuUsageNs + s.cpuUsageNs,
      memoryUsageBytes: a.memoryUsageBytes + s.memoryUsageBytes,
      memoryWorkingSetBytes: a.memoryWorkingSetBytes + s.memoryWorkingSetBytes,
      memoryRssBytes: a.memoryRssBytes + s.memoryRssBytes,
      pageFaults: a.pageFaults + s.pageFaults,
      majorPageFaults: a.majorPageFaults + s.majorPageFaults,
      pids: a.pids + s.pids,
      memoryLimitBytes: null,
    }),
    { ...ZERO_STATS },
  );
}
