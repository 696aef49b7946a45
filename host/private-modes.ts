/**
 * The modes of podchart's own state (issue 11, item 4; the CVE-2021-41091 class): directories
 * 0700, files 0600, so no unprivileged host user reaches an unpacked setuid binary, a device node,
 * the database or a bundle's env. containerd keeps its snapshots under 0700 the same way.
 *
 * Set explicitly at each create, not by a process umask: conmon and runc inherit the daemon's
 * umask, and runc makes a missing mount target inside the container's rootfs with it. Under 077
 * that directory is 0700 root's, and a container running as another uid cannot reach its own
 * volume (runc's process.user.umask applies to the container process only, after the mounts).
 * So the umask stays as the host gives it (022, as containerd and CRI-O run), and what conmon and
 * runc write with it into our directories is narrowed afterwards with makePrivate().
 *
 * What is not ours keeps its mode: image content under a layer's fs/, the container's own `/`,
 * the pod files bind-mounted into containers, the OCI runtime's state, mounted file systems.
 */
import { chmodSync, lstatSync, type Stats } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { lstatOrNull, readdirSyncOrEmpty } from './fs-optional.js';

export const PRIVATE_DIR = 0o700;
export const PRIVATE_FILE = 0o600;
/** Files bind-mounted into containers (hostname, hosts, resolv.conf): any uid reads them there. */
export const SHARED_FILE = 0o644;

/** Drops the group and other bits of each path that has any; absent paths and symlinks are left. */
export async function makePrivate(...paths: string[]): Promise<void> {
  for (const path of paths) {
    const st = await lstatOrNull(path);
    if (st !== null) await narrow(path, st);
  }
}

/**
 * Makes every directory and file under `top` (and `top` itself) private, except where `keep` says
 * a path is not ours: that path is neither changed nor entered. Symlinks are never followed.
 * Returns how many paths it changed.
 *
 * A file system mounted below `top` (a container's rootfs, a pod's /dev/shm, a namespace pin) is
 * neither changed nor entered, also when it was mounted after the walk began: its device differs
 * from its parent directory's. A path removed meanwhile is skipped.
 *
 * Assumes nobody else writes below `top` while it runs except podchart, conmon and runc (trusted),
 * since a path swapped for a symlink between lstat and chmod would be followed: the paths a
 * container can write (its upper dir, mounts) must be among those `keep` names or mounted.
 */
export async function tightenTree(top: string, keep: (path: string) => boolean): Promise<number> {
  let changed = 0;
  // Walked with synchronous calls from an explicit stack: one lstat is a few µs that way, against
  // ~80 µs through the thread pool and a promise (issue 14: the ~8 000 paths of 200 pods took 0.7 s,
  // all of it before the restore could begin). Every SLICE_MS the walk yields to the event loop, so
  // the CRI socket, open by then, keeps answering Version and Status.
  const stack: { path: string; parentDev: number | null }[] = [{ path: top, parentDev: null }];
  let slice = performance.now();
  while (stack.length > 0) {
    const { path, parentDev } = stack.pop() as { path: string; parentDev: number | null };
    if (keep(path)) continue;
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st === undefined || st.isSymbolicLink()) continue;
    if (parentDev !== null && st.dev !== parentDev) continue; // a mount point
    if (narrowSync(path, st)) changed++;
    if (st.isDirectory()) for (const name of readdirSyncOrEmpty(path)) stack.push({ path: join(path, name), parentDev: st.dev });
    if (performance.now() - slice > SLICE_MS) {
      await new Promise((resolve) => setImmediate(resolve));
      slice = performance.now();
    }
  }
  return changed;
}

/** Synchronous work between two yields of tightenTree. */
const SLICE_MS = 5;

/** The private mode of a path that is group- or other-accessible; null when it is private already, or a symlink. */
function narrowed(st: Stats): number | null {
  return st.isSymbolicLink() || (st.mode & 0o077) === 0 ? null : st.mode & 0o700;
}

/** False also when the path went away since its lstat (removed by a CRI call meanwhile). */
function narrowSync(path: string, st: Stats): boolean {
  const mode = narrowed(st);
  if (mode === null) return false;
  try {
    chmodSync(path, mode);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

async function narrow(path: string, st: Stats): Promise<boolean> {
  const mode = narrowed(st);
  if (mode !== null) await chmod(path, mode);
  return mode !== null;
}
