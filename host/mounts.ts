/**
 * Mount points, as the kernel lists them for this process (/proc/self/mountinfo): the one reader
 * and parser of that file (host, images, runtime pins all ask here).
 *
 * The kernel builds the file anew on every read, at a cost that grows with the mounts (each pod
 * adds its netns, shm, pins and container rootfs): with pods made in parallel it showed up in the
 * profile (issue 14). Callers that ask within one turn of the event loop share one read.
 */
import { readFileSync } from 'node:fs';
import { readFile, realpath } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { run } from './exec.js';

let queued: Promise<ReadonlySet<string>> | null = null;

/**
 * The mount points now, unescaped. A read is shared only by callers that asked before it began
 * (it is queued until the loop's check phase), so no caller ever gets a read older than its call:
 * a mount made before asking is always seen.
 */
export function mountPoints(): Promise<ReadonlySet<string>> {
  queued ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
    queued = null; // callers from here on wait for a read that starts after them
    return readMountPoints();
  });
  return queued;
}

async function readMountPoints(): Promise<ReadonlySet<string>> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  const points = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    // Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
    const point = line.split(' ', 5)[4];
    if (point) points.add(point.includes('\\') ? point.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))) : point);
  }
  return points;
}

/** major/minor from st.rdev, with Linux's encoding (12-bit major, 20-bit minor, split across the word). */
export function splitDeviceNumber(rdev: number): { major: number; minor: number } {
  const dev = BigInt(rdev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

/** Device names by st_dev: a filesystem's source does not change while it is mounted. */
const devices = new Map<number, string | null>();

/**
 * The source mountinfo gives the filesystem of device number `dev` (st_dev), such as /dev/vda1 or
 * "overlay"; null when no mount has it. Read once per device (the metrics' `device` label).
 */
export function deviceOf(dev: number): string | null {
  if (devices.has(dev)) return devices.get(dev) ?? null;
  const { major, minor } = splitDeviceNumber(dev);
  const wanted = `${major}:${minor}`;
  let source: string | null = null;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    // "id parent major:minor root point options [optional…] - fstype source superoptions"
    const [, , majorMinor] = line.split(' ', 3);
    const after = line.split(' - ')[1];
    if (majorMinor === wanted && after) {
      source = after.split(' ')[1] ?? null;
      break;
    }
  }
  devices.set(dev, source);
  return source;
}

/** The path as mountinfo spells it: /var/run is often a symlink to /run. As given when its dir is absent. */
export async function canonicalPath(path: string): Promise<string> {
  return realpath(dirname(path)).then((dir) => join(dir, basename(path)), () => path);
}

export async function isMounted(path: string): Promise<boolean> {
  const [points, target] = await Promise.all([mountPoints(), canonicalPath(path)]);
  return points.has(target);
}

/** Mount points at or below `dir`, a real path (realpath: mountinfo names no symlinks). */
export async function mountPointsUnder(dir: string): Promise<string[]> {
  return [...(await mountPoints())].filter((point) => point === dir || point.startsWith(`${dir}/`));
}

/** A umount run whose every complaint is about a path that is no longer mounted (a race): done. */
const onlyNotMounted = (stderr: string): boolean => stderr.split('\n').filter(Boolean).every((line) => /not mounted|no mount point/i.test(line));

/** Unmounts those of `paths` that are mount points, all in one `umount` run; idempotent. */
export async function unmountAll(paths: readonly string[]): Promise<void> {
  const [points, targets] = await Promise.all([mountPoints(), Promise.all(paths.map(canonicalPath))]);
  const mounted = targets.filter((target) => points.has(target));
  if (mounted.length > 0) await run('umount', mounted, { allowFailure: (r) => onlyNotMounted(r.stderr) });
}
