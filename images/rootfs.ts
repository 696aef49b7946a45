/**
 * A container's root filesystem: an overlay of its image's layers (read-only lower dirs, from the
 * layer store) under a writable upper dir of its own. `<containerDir>/` holds upper/, work/ and
 * merged/ (the mount point, what the OCI spec's root.path names).
 *
 * mount(2) copies its option string into one page, so every lowerdir must fit in ~4 KiB. When the
 * absolute paths do not, the lower dirs are given relative to their common parent and mount runs
 * there (`env -C <parent> mount …`): Docker's overlay2 does the same chdir trick, which Node cannot
 * do in-process. With the layer store's `<short>/fs` names that is 16 bytes a layer, ~250 layers;
 * overlay itself stacks at most 500 and images stop near 127.
 */
import { chmod, mkdir, realpath, rm } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { EffectFailed, InvalidArgument } from '../errors/catalogue.js';
import { isMounted, mountPointsUnder } from '../host/mounts.js';
import { run } from '../host/exec.js';
import { PRIVATE_DIR } from '../host/private-modes.js';
import { diskUsage, type DiskUsage } from './layer-store.js';

/** What mount(2) accepts (one page) less room for the kernel's own additions. */
export const MOUNT_OPTIONS_LIMIT = 4000;

export interface RootfsOptions {
  /** Layer dirs, top-most first, as overlay's lowerdir wants them. */
  lowerDirs: string[];
  /** Gets upper/, work/ and merged/ (and empty/ for an image without layers). */
  containerDir: string;
  readonly?: boolean;
}

export function rootfsPaths(containerDir: string): { upper: string; work: string; merged: string; empty: string } {
  return {
    upper: join(containerDir, 'upper'),
    work: join(containerDir, 'work'),
    merged: join(containerDir, 'merged'),
    empty: join(containerDir, 'empty'),
  };
}

/** Mounts the overlay at `<containerDir>/merged` unless it is mounted already; returns that path. */
export async function mountRootfs(opts: RootfsOptions): Promise<string> {
  const { upper, work, merged, empty } = rootfsPaths(opts.containerDir);
  if (await isMounted(merged)) return merged;
  // Ours, 0700: the container dir, overlay's work dir and the mount point (mounted, merged/ shows
  // the upper dir's mode). upper/ is the container's `/`: 0755, for a container of any uid.
  await mkdir(opts.containerDir, { recursive: true, mode: PRIVATE_DIR });
  // Whatever the daemon's umask: a 0750 `/` would lock out a container of another uid. Only when
  // made here, since the container may have changed the mode of its `/` since.
  const makeUpper = async (): Promise<void> => {
    if ((await mkdir(upper, { recursive: true, mode: 0o755 })) !== undefined) await chmod(upper, 0o755);
  };
  await Promise.all([...[work, merged].map((dir) => mkdir(dir, { recursive: true, mode: PRIVATE_DIR })), makeUpper()]);
  let lowers = opts.lowerDirs;
  if (lowers.length === 0) {
    // overlay needs at least one lower dir: an image without layers gets an empty one.
    await mkdir(empty, { recursive: true, mode: PRIVATE_DIR });
    lowers = [empty];
  }
  for (const path of [...lowers, upper, work]) {
    if (!path.startsWith('/') || /[,:\\]/.test(path)) {
      throw new InvalidArgument(`overlay path ${JSON.stringify(path)} must be absolute, without , : or \\`);
    }
  }
  const absolute = overlayOptions(lowers, upper, work, opts.readonly === true);
  if (absolute.length <= MOUNT_OPTIONS_LIMIT) {
    await run('mount', ['-t', 'overlay', 'overlay', '-o', absolute, merged]);
    return merged;
  }
  const base = commonParent(lowers);
  const short = overlayOptions(
    lowers.map((dir) => relative(base, dir) || '.'),
    upper,
    work,
    opts.readonly === true,
  );
  if (short.length > MOUNT_OPTIONS_LIMIT) {
    throw new InvalidArgument(`too many layers (${lowers.length}) for one overlay mount: options take ${short.length} bytes`);
  }
  await run('env', ['-C', base, 'mount', '-t', 'overlay', 'overlay', '-o', short, merged]);
  return merged;
}

function overlayOptions(lowers: string[], upper: string, work: string, readonly: boolean): string {
  return [...(readonly ? ['ro'] : []), `lowerdir=${lowers.join(':')}`, `upperdir=${upper}`, `workdir=${work}`].join(',');
}

/** The deepest directory holding every path. */
function commonParent(paths: string[]): string {
  const split = paths.map((p) => p.split(sep).slice(0, -1));
  const first = split[0] ?? [];
  let depth = 0;
  while (depth < first.length && split.every((parts) => parts[depth] === first[depth])) depth++;
  return first.slice(0, depth).join(sep) || sep;
}

/** Unmounts merged/ (every stacked mount on it); a no-op when nothing is mounted. */
export async function unmountRootfs(containerDir: string): Promise<void> {
  const { merged } = rootfsPaths(containerDir);
  // A bounded loop: each round removes one mount or fails loudly in run().
  for (let round = 0; round < 8 && (await isMounted(merged)); round++) {
    await run('umount', [merged], { allowFailure: (r) => /not mounted|no mount point/i.test(r.stderr) });
  }
  if (await isMounted(merged)) throw new EffectFailed(`${merged} is still mounted after unmounting it 8 times`);
}

/** Unmounts, then deletes the container dir (upper layer included). */
export async function removeRootfs(containerDir: string): Promise<void> {
  await unmountRootfs(containerDir);
  // rm -rf descends into mount points: refuse while anything (a bind mount, say) is mounted inside.
  const inside = await mountsUnder(containerDir);
  if (inside.length > 0) throw new EffectFailed(`cannot remove ${containerDir}: still mounted inside: ${inside.join(', ')}`);
  await rm(containerDir, { recursive: true, force: true });
}

/** Disk used by the container's writes (its upper dir). */
export async function writableLayerUsage(containerDir: string): Promise<DiskUsage> {
  return diskUsage(rootfsPaths(containerDir).upper);
}

/** Mount points at or below `dir` (none when it is gone). */
export async function mountsUnder(dir: string): Promise<string[]> {
  let real: string;
  try {
    real = await realpath(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return mountPointsUnder(real);
}
