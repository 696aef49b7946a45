/**
 * What a pod leaves on the host, looked at directly (not through podchart): the netns file and its
 * nsfs mount, the run and root dirs, the shm mount, runc's state, conmon and pause processes, the
 * pod's cgroups and its database rows. The end-to-end tests assert on these, and use them to clean
 * up after a failed run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync, rmdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import type { DaemonPaths } from './daemon.js';

export const NETNS_DIR = '/var/run/netns';
const CGROUP_ROOT = '/sys/fs/cgroup';

/** Where podchart puts a pod's network namespace. */
export function netnsFile(id: string): string {
  return `${NETNS_DIR}/podchart-${id.slice(0, 16)}`;
}

export function runDirOf(paths: DaemonPaths, id: string): string {
  return join(paths.run, 'sandboxes', id);
}

export function rootDirOf(paths: DaemonPaths, id: string): string {
  return join(paths.root, 'sandboxes', id);
}

export function shmOf(paths: DaemonPaths, id: string): string {
  return join(runDirOf(paths, id), 'shm');
}

export function exitFileOf(paths: DaemonPaths, id: string): string {
  return join(runDirOf(paths, id), 'exits', id);
}

/** The path as mountinfo spells it (/var/run is a symlink to /run here). */
function canonical(path: string): string {
  try {
    return join(realpathSync(dirname(path)), basename(path));
  } catch {
    return path;
  }
}

/** Mount points, unescaped, from /proc/self/mountinfo. */
export function mountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => (line.split(' ')[4] ?? '').replace(/\\040/g, ' '));
}

export function isMounted(path: string): boolean {
  const target = canonical(path);
  return mountPoints().includes(target);
}

/** Field 22 of /proc/<pid>/stat, or null when the pid is gone or a zombie. */
export function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') return null;
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

export interface HostProcess {
  pid: number;
  cmdline: string;
}

/** Live (non-zombie) processes whose command line or cgroup mentions one of `needles`. */
export function processesMentioning(needles: string[]): HostProcess[] {
  const found: HostProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      if (startTime(pid) === null) continue;
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      if (needles.some((n) => cmdline.includes(n) || cgroup.includes(n))) found.push({ pid, cmdline });
    } catch {
      // exited while we looked
    }
  }
  return found;
}

/** Container ids runc knows under the daemon's runtime root for the runc handler. */
export function runcIds(paths: DaemonPaths): string[] {
  const root = join(paths.run, 'runtime', 'runc');
  if (!existsSync(root)) return [];
  const out = execFileSync('runc', ['--root', root, 'list', '-q'], { encoding: 'utf8' });
  return out.split('\n').map((s) => s.trim()).filter(Boolean);
}

/** The pod's cgroup directories (cgroupfs driver: <controller>/podchart/<id>) that still exist. */
export function cgroupDirs(id: string): string[] {
  if (!existsSync(CGROUP_ROOT)) return [];
  const dirs: string[] = [];
  for (const controller of readdirSync(CGROUP_ROOT)) {
    for (const candidate of [join(CGROUP_ROOT, controller, 'podchart', id)]) {
      if (existsSync(candidate)) dirs.push(candidate);
    }
  }
  return dirs;
}

export interface DbRows {
  names: number;
  sandboxes: number;
  transitions: number;
}

function openDb(paths: DaemonPaths): BetterSqlite3.Database | null {
  const file = join(paths.root, 'podchart.db');
  if (!existsSync(file)) return null;
  return new BetterSqlite3(file, { readonly: true, fileMustExist: true });
}

/** Rows about one pod in the daemon's database, read-only (works while the daemon is down). */
export function dbRows(paths: DaemonPaths, id: string): DbRows {
  const db = openDb(paths);
  if (!db) return { names: 0, sandboxes: 0, transitions: 0 };
  try {
    const count = (sql: string): number => db.prepare(sql).pluck().get(id) as number;
    return {
      names: count('SELECT COUNT(*) FROM names WHERE id = ?'),
      sandboxes: count('SELECT COUNT(*) FROM sandboxes WHERE id = ?'),
      // A removed pod's history is kept for removedHistoryRetentionSeconds (issue 12, item 8): only
      // rows no live or removed actor accounts for are left behind.
      transitions: count(`SELECT COUNT(*) FROM transitions t WHERE t.actor_id = ?
                             AND NOT EXISTS (SELECT 1 FROM removed_actors r WHERE r.actor_id = t.actor_id)`),
    };
  } finally {
    db.close();
  }
}

/** Every sandbox row in the database: id, persisted state and context. */
export function dbSandboxes(paths: DaemonPaths): { id: string; state: string; context: Record<string, unknown> }[] {
  const db = openDb(paths);
  if (!db) return [];
  try {
    const rows = db.prepare('SELECT id, state, context FROM sandboxes ORDER BY rowid').all() as { id: string; state: string; context: string }[];
    return rows.map((r) => ({ id: r.id, state: r.state, context: JSON.parse(r.context) as Record<string, unknown> }));
  } finally {
    db.close();
  }
}

/**
 * Everything of pod `id` still on the host, one line each; [] when nothing is left. Processes are
 * checked separately (processesOf), since conmon may take a moment to exit after its container.
 */
export function leftovers(paths: DaemonPaths, id: string): string[] {
  const left: string[] = [];
  const ns = netnsFile(id);
  if (isMounted(ns)) left.push(`netns mount ${canonical(ns)}`);
  if (existsSync(ns)) left.push(`netns file ${ns}`);
  if (isMounted(shmOf(paths, id))) left.push(`shm mount ${shmOf(paths, id)}`);
  for (const kind of ['ipc', 'uts', 'pid']) if (isMounted(join(runDirOf(paths, id), 'ns', kind))) left.push(`${kind} namespace pin ${join(runDirOf(paths, id), 'ns', kind)}`);
  if (existsSync(runDirOf(paths, id))) left.push(`run dir ${runDirOf(paths, id)}`);
  if (existsSync(rootDirOf(paths, id))) left.push(`root dir ${rootDirOf(paths, id)}`);
  if (runcIds(paths).includes(id)) left.push(`runc container ${id}`);
  for (const dir of cgroupDirs(id)) left.push(`cgroup ${dir}`);
  const rows = dbRows(paths, id);
  for (const [table, n] of Object.entries(rows)) if (n > 0) left.push(`${n} row(s) in ${table}`);
  return left;
}

/** conmon, pause (catatonit) or any other live process of pod `id`. */
export function processesOf(id: string): HostProcess[] {
  return processesMentioning([id]);
}

/**
 * Last resort after a failed run: kill processes of the test (cmdline mentions the base dir, or
 * pod ids in cmdline or cgroup), delete runc containers, unmount and delete the pods' mounts and
 * netns files. Best effort; never throws.
 */
export function forceCleanup(paths: DaemonPaths, ids: Iterable<string>): string[] {
  const done: string[] = [];
  const idList = [...ids];
  const attempt = (what: string, fn: () => void): void => {
    try {
      fn();
      done.push(what);
    } catch {
      // best effort
    }
  };
  for (const p of processesMentioning([paths.base, ...idList])) {
    attempt(`kill ${p.pid} (${p.cmdline.slice(0, 80)})`, () => process.kill(p.pid, 'SIGKILL'));
  }
  const runcRoot = join(paths.run, 'runtime', 'runc');
  let known: string[] = [];
  try {
    known = runcIds(paths);
  } catch {
    // runc's root is unreadable: nothing to delete through it
  }
  for (const id of idList) {
    if (known.includes(id)) {
      attempt(`runc delete ${id}`, () => execFileSync('runc', ['--root', runcRoot, 'delete', '--force', id], { stdio: 'ignore' }));
    }
    const shm = shmOf(paths, id);
    if (isMounted(shm)) attempt(`umount ${shm}`, () => execFileSync('umount', ['-l', shm], { stdio: 'ignore' }));
    const ns = netnsFile(id);
    if (isMounted(ns)) attempt(`umount ${ns}`, () => execFileSync('umount', ['-l', ns], { stdio: 'ignore' }));
    if (existsSync(ns)) attempt(`rm ${ns}`, () => rmSync(ns, { force: true }));
    for (const dir of cgroupDirs(id)) attempt(`rmdir ${dir}`, () => rmdirSync(dir));
  }
  // Anything mounted under the base dir (shm of pods whose ids we missed).
  for (const mp of mountPoints().filter((m) => m.startsWith(paths.base)).reverse()) {
    attempt(`umount ${mp}`, () => execFileSync('umount', ['-l', mp], { stdio: 'ignore' }));
  }
  return done;
}

/** host-local's IP leases for the test daemons' network (test/daemon.ts): one file per IP, naming the container that holds it. */
export function ipLeases(ipamDir: string, network = 'podchart-test'): { ip: string; owner: string }[] {
  const dir = join(ipamDir, network);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))
    .map((ip) => ({ ip, owner: readFileSync(join(dir, ip), 'utf8').split(/\s/)[0] ?? '' }));
}
