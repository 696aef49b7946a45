/** Facts about host processes from /proc: a live pause process told from a reused pid, what an exec started. */
import { readFileSync } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { constants } from 'node:os';

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or null if the pid is gone. */
export async function processStartTime(pid: number): Promise<string | null> {
  try {
    // Synchronous on purpose: procfs is generated in memory (a read is ~10 µs), where fs/promises
    // would make four thread-pool trips (open, fstat, read, close). A restore and the conmon watch
    // ask this for every container (issue 14).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parens: split after its closing paren.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); field 22 is rest[19].
    if (rest[0] === 'Z') return null; // a zombie has exited
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

/** The pid in a pid file (conmon's, runc's), or null when there is none or it holds no pid. */
export async function readPidFile(path: string): Promise<number | null> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 1 ? pid : null;
}

/** True when `pid` is alive and is still the process that started at `startTime`. */
export async function isSameProcessAlive(pid: number | null, startTime: string | null): Promise<boolean> {
  if (!pid || pid <= 0) return false;
  const now = await processStartTime(pid);
  return now !== null && (startTime === null || now === startTime);
}

/** The fields of /proc/<pid>/stat that say where a process sits: parent, group, session, state. */
export interface ProcessEntry {
  pid: number;
  ppid: number;
  pgrp: number;
  session: number;
  /** One letter: R, S, D, Z (exited, not yet reaped), T, … */
  state: string;
}

/** Every process on the host as /proc shows it now; ones that exit while it is read are left out. */
export async function processTable(): Promise<Map<number, ProcessEntry>> {
  const pids = (await readdir('/proc')).filter((e) => /^\d+$/.test(e));
  const entries = await Promise.all(
    pids.map(async (p): Promise<ProcessEntry | null> => {
      try {
        const stat = await readFile(`/proc/${p}/stat`, 'utf8');
        // Fields 3 to 6 follow the command name (which may contain spaces and parens).
        const [state = '?', ppid = '0', pgrp = '0', session = '0'] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return { pid: Number(p), ppid: Number(ppid), pgrp: Number(pgrp), session: Number(session), state };
      } catch {
        return null;
      }
    }),
  );
  return new Map(entries.filter((e): e is ProcessEntry => e !== null).map((e) => [e.pid, e]));
}

/** The pid namespace `pid` lives in ("pid:[4026532301]"), or null once it has exited. */
export async function pidNamespaceOf(pid: number): Promise<string | null> {
  try {
    return await readlink(`/proc/${pid}/ns/pid`);
  } catch {
    return null;
  }
}

/**
 * SIGKILLs `root` and everything beneath it: its descendants, and every process in its session or
 * group (conmon calls setsid when it daemonizes, and `runc create` and `runc init` run under it).
 * Returns the pids signalled. Used when a launch is given up: nothing it started may outlive it.
 */
export async function killProcessTree(root: number): Promise<number[]> {
  if (!(root > 1)) return [];
  const table = await processTable();
  const under = (entry: ProcessEntry): boolean => {
    for (let e: ProcessEntry | undefined = entry, hops = 0; e && hops < 64; e = table.get(e.ppid), hops += 1) {
      if (e.pid === root) return true;
      if (e.ppid <= 1) return false;
    }
    return false;
  };
  const victims = [...table.values()].filter((e) => e.pid !== process.pid && (e.session === root || e.pgrp === root || under(e)));
  for (const e of victims) {
    try {
      process.kill(e.pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  return victims.map((e) => e.pid);
}

/** Sends `signal` to `pid`; a process gone meanwhile (ESRCH) is what the caller wanted anyway. */
export function signalProcess(pid: number, signal: NodeJS.Signals | number): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/**
 * A signal as runc kill takes it ("TERM", "SIGTERM", "15") as a number; null for what Node does
 * not name (SIGRTMIN+1): that one is left to runc.
 */
export function signalNumber(signal: string): number | null {
  if (/^\d{1,2}$/.test(signal)) return Number(signal);
  const name = signal.toUpperCase().startsWith('SIG') ? signal.toUpperCase() : `SIG${signal.toUpperCase()}`;
  return (constants.signals as Readonly<Record<string, number>>)[name] ?? null;
}
