/** Facts about host processes from /proc, used to tell a live pause process from a reused pid. */
import { readFile } from 'node:fs/promises';

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or null if the pid is gone. */
export async function processStartTime(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parens: split after its closing paren.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); field 22 is rest[19].
    if (rest[0] === 'Z') return null; // a zombie has exited
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

/** True when `pid` is alive and is still the process that started at `startTime`. */
export async function isSameProcessAlive(pid: number | null, startTime: string | null): Promise<boolean> {
  if (!pid || pid <= 0) return false;
  const now = await processStartTime(pid);
  return now !== null && (startTime === null || now === startTime);
}
