/**
 * At start, before anything is served: narrows a state tree an older podchart left behind (rootDir
 * 0711; images/, layers/, pod and container dirs 0755; the database, blobs and bundles 0644) to
 * directories 0700 and files 0600 (issue 11, item 4). New state is created that way already
 * (host/private-modes.ts); this pass is for a daemon upgraded in place, and for what conmon and
 * runc wrote with their umask while the daemon was down (exit files).
 *
 * It leaves what is not ours, as the create paths do: the content of each layer (its fs/, an
 * overlay lower dir: the image's own modes, setuid bits included), each container's upper dir (its
 * `/`, which its user must traverse, and which it writes), the pause rootfs, the pod files
 * bind-mounted into containers, the OCI runtime's own state, anything mounted (a rootfs's merged/,
 * a pod's /dev/shm) and the CRI socket (0660).
 */
import { realpath } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import type { Config } from '../config/config.js';
import { mountsUnder } from '../images/rootfs.js';
import { tightenTree } from '../host/private-modes.js';

/** Paths below rootDir that are not ours to narrow, relative to it (see the owners named). */
const NOT_OURS_IN_ROOT = [
  /^images\/layers\/[^/]+\/fs(\.tmp-[^/]+)?$/, // images/layer-store.ts: `<short>/fs`, an overlay lower dir
  /^containers\/[^/]+\/rootfs\/upper$/, // images/rootfs.ts: the container's upper dir, its `/`
  /^pause\/rootfs$/, // runtime/pause-rootfs.ts: the pause container's `/`
  /^sandboxes\/[^/]+\/(hostname|hosts|resolv\.conf)$/, // runtime/pod-files.ts: bind-mounted, 0644
];
/** runtime/oci-runtime.ts: runc's (or crun's) state under `runtime/<handler>/`, the root itself ours. */
const NOT_OURS_IN_RUN = [/^runtime\/[^/]+\/[^/]+$/];

/** Narrows rootDir, runDir and the CNI cache; returns how many paths it changed. */
export async function tightenState(config: Pick<Config, 'rootDir' | 'runDir' | 'socket' | 'cniCacheDir'>): Promise<number> {
  // mountinfo names real paths: compare real paths throughout.
  const root = await realpath(config.rootDir);
  const run = await realpath(config.runDir);
  const socket = join(await realpath(dirname(config.socket)).catch(() => dirname(config.socket)), basename(config.socket));
  const mounted = new Set([...(await mountsUnder(root)), ...(await mountsUnder(run))]);
  const under = (top: string, patterns: RegExp[]) => (path: string): boolean => {
    if (mounted.has(path) || path === socket) return true;
    const rel = relative(top, path);
    return patterns.some((p) => p.test(rel));
  };
  let changed = await tightenTree(root, under(root, NOT_OURS_IN_ROOT));
  changed += await tightenTree(run, under(run, NOT_OURS_IN_RUN));
  // By default inside rootDir. Placed elsewhere, maybe in a dir other software shares: the dir and
  // the files network/cni-cache.ts writes there (`<id>.json`, its temp files), nothing else.
  const cni = await realpath(config.cniCacheDir).catch(() => null);
  if (cni !== null && relative(root, cni).startsWith('..')) {
    changed += await tightenTree(cni, (path) => path !== cni && !/^[^/]+\.json(\.tmp-[0-9a-f]+)?$/.test(relative(cni, path)));
  }
  return changed;
}
