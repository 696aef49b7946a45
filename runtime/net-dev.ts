/**
 * A pod's network counters, per interface, from its network namespace's /proc/net/dev (what
 * cAdvisor and containerd read for container_network_*). The file shows the namespace of the
 * process that reads it, so it is read through a process known to be in the pod's namespace (the
 * pause, or a running container: checked by the namespace's inode, against pid reuse), or, when no
 * such process runs, by `nsenter --net` (a program, so only then).
 */
import { readFileSync, statSync } from 'node:fs';
import { run } from '../host/exec.js';

export interface InterfaceCounters {
  name: string;
  rxBytes: bigint;
  rxPackets: bigint;
  rxErrors: bigint;
  rxDropped: bigint;
  txBytes: bigint;
  txPackets: bigint;
  txErrors: bigint;
  txDropped: bigint;
}

/** Devices that are not the pod's traffic: loopback (cAdvisor leaves it out too). */
const IGNORED = new Set(['lo']);

/**
 * /proc/net/dev: two header lines, then "name: rx(bytes packets errs drop fifo frame compressed
 * multicast) tx(bytes packets errs drop fifo colls carrier compressed)".
 */
export function parseNetDev(text: string): InterfaceCounters[] {
  const out: InterfaceCounters[] = [];
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const fields = line.slice(colon + 1).trim().split(/\s+/);
    if (!name || IGNORED.has(name) || fields.length < 16 || !fields.every((f) => /^\d+$/.test(f))) continue;
    const n = (i: number): bigint => BigInt(fields[i] ?? '0');
    out.push({ name, rxBytes: n(0), rxPackets: n(1), rxErrors: n(2), rxDropped: n(3), txBytes: n(8), txPackets: n(9), txErrors: n(10), txDropped: n(11) });
  }
  return out;
}

/** The namespace file's identity (device and inode), or null when it cannot be read. */
function nsIdentity(path: string): string | null {
  const st = statSync(path, { throwIfNoEntry: false });
  return st ? `${st.dev}:${st.ino}` : null;
}

/**
 * The counters of the network namespace bind-mounted at `netnsPath`, read through the first of
 * `pids` that is in it; null when the namespace is gone.
 */
export async function netnsCounters(netnsPath: string, pids: readonly number[]): Promise<InterfaceCounters[] | null> {
  const want = nsIdentity(netnsPath);
  if (!want) return null;
  for (const pid of pids) {
    if (nsIdentity(`/proc/${pid}/ns/net`) !== want) continue;
    try {
      return parseNetDev(readFileSync(`/proc/${pid}/net/dev`, 'utf8'));
    } catch {
      // exited between the check and the read: try the next one
    }
  }
  const r = await run('nsenter', [`--net=${netnsPath}`, '--', 'cat', '/proc/net/dev'], { allowFailure: () => true });
  return r.exitCode === 0 ? parseNetDev(r.stdout) : null;
}
