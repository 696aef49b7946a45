/** Reads of the host the end-to-end tests assert on: mounts, processes, files. */
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

export function mountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter(Boolean);
}

/** Is `path` (under /var/run or /run) a mount point right now? */
export function isMountPoint(path: string): boolean {
  const alt = path.startsWith('/var/run/') ? path.slice('/var'.length) : path;
  return mountPoints().some((m) => m === path || m === alt);
}

export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Pids of processes whose command line contains `needle`. */
export function pidsMatching(needle: string): number[] {
  const out: number[] = [];
  for (const entry of execFileSync('ls', ['/proc']).toString().split('\n')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(needle) && Number(entry) !== process.pid) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

export function runcContainers(runDir: string, handler = 'runc', binary = '/usr/sbin/runc'): string[] {
  const root = `${runDir}/runtime/${handler}`;
  if (!existsSync(root)) return [];
  const out = execFileSync(binary, ['--root', root, 'list', '-q']).toString();
  return out.split('\n').filter(Boolean);
}

/**
 * Removes the cgroup_parent `name` (a top-level cgroup) from every hierarchy that has it: runc
 * removes the pods' own cgroups, not the parent it made for them. Its pods must be gone first.
 */
export function removeCgroupParent(name: string, root = '/sys/fs/cgroup'): void {
  for (const dir of [root, ...readdirSync(root).map((c) => join(root, c))]) {
    if (existsSync(join(dir, name))) rmdirSync(join(dir, name));
  }
}
