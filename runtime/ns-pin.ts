/**
 * Namespaces pinned by bind mounts (issue 12, item 6), as CRI-O's pinns pins a pod's. A path
 * `/proc/<pid>/ns/ipc` names whatever process has that pid now: once the pause process has exited
 * and its pid is reused, a container started against it joins another process's namespaces. A
 * bind mount of the namespace file names that one namespace for as long as it is mounted, and
 * never another. Pinning is checked against the process's start time afterwards, so the pin is
 * known to be of the process that was meant, not of a successor with the same pid.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { canonicalPath, mountPoints, unmountAll } from '../host/mounts.js';
import { join } from 'node:path';
import { EffectFailed } from '../errors/catalogue.js';
import { run } from '../host/exec.js';
import { isSameProcessAlive } from '../host/process.js';
import { PRIVATE_DIR, PRIVATE_FILE } from '../host/private-modes.js';

export type PinnableNamespace = 'ipc' | 'uts' | 'pid';
export type PinnedNamespaces = Partial<Record<PinnableNamespace, string>>;

const KINDS: readonly PinnableNamespace[] = ['ipc', 'uts', 'pid'];

/** Bind-mounts `/proc/<pid>/ns/<kind>` at `<dir>/<kind>` for each kind; returns the paths. */
export async function pinNamespaces(pid: number, startTime: string, dir: string, kinds: readonly PinnableNamespace[]): Promise<PinnedNamespaces> {
  const { pinned, unpinned } = await pinFiles(dir, kinds);
  const binds = unpinned.flatMap(([kind, file]) => [`/proc/${pid}/ns/${kind}`, file]);
  // One process for all of them: every spawn forks the daemon (host/spawn-turn.ts).
  if (binds.length > 0) await run('sh', ['-c', 'while [ $# -gt 0 ]; do mount --bind "$1" "$2" || exit 1; shift 2; done', 'pin', ...binds]);
  if (!(await isSameProcessAlive(pid, startTime))) {
    await unpinNamespaces(dir);
    throw new EffectFailed(`process ${pid} exited before its namespaces were pinned; they are not joined`);
  }
  return pinned;
}

/**
 * New ipc and uts namespaces, pinned at `<dir>/<kind>` with no process in them, for a pod without
 * a pause process (config dropInfraContainer; CRI-O's pinns does the same). `unshare` makes them
 * and bind-mounts each before it exits; `hostname` runs inside the new uts namespace to name it.
 * Idempotent: a kind already pinned (an earlier attempt) is kept, not made again.
 */
export async function makePinnedNamespaces(dir: string, kinds: readonly ('ipc' | 'uts')[], hostname: string): Promise<PinnedNamespaces> {
  const { pinned, unpinned } = await pinFiles(dir, kinds);
  const args = unpinned.map(([kind, file]) => `--${kind}=${file}`);
  // `hostname` only inside the pod's uts namespace: anywhere else it would rename the host. One
  // pinned by an attempt that failed after its mount is named again, by entering it.
  const newUts = args.some((a) => a.startsWith('--uts='));
  if (args.length > 0) await run('unshare', [...args, '--', ...(newUts ? ['hostname', hostname] : ['true'])]);
  if (!newUts && pinned.uts) await run('nsenter', [`--uts=${pinned.uts}`, '--', 'hostname', hostname]);
  return pinned;
}

/** The namespaces pinned under `dir` (none for a pod made before pinning, or after its stop). */
export async function pinnedNamespaces(dir: string): Promise<PinnedNamespaces> {
  const mounted = await mountPoints();
  const pinned: PinnedNamespaces = {};
  for (const kind of KINDS) {
    const file = await canonicalPath(join(dir, kind));
    if (mounted.has(file)) pinned[kind] = file;
  }
  return pinned;
}

/**
 * Unmounts every pin under `dir` and deletes it; idempotent. `alongside`: other mounts of the pod
 * (its shm) unmounted in the same umount run, one program fewer per pod stop (issue 14).
 */
export async function unpinNamespaces(dir: string, alongside: readonly string[] = []): Promise<void> {
  await unmountAll([...alongside, ...KINDS.map((kind) => join(dir, kind))]);
  await rm(dir, { recursive: true, force: true });
}

/**
 * Each kind's pin file under `dir`, and those not mounted yet, made as empty files to mount on
 * (kinds an earlier attempt pinned are kept: pinning is idempotent).
 */
async function pinFiles(dir: string, kinds: readonly PinnableNamespace[]): Promise<{ pinned: PinnedNamespaces; unpinned: [PinnableNamespace, string][] }> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR });
  const mounted = await mountPoints();
  const pinned: PinnedNamespaces = {};
  const unpinned: [PinnableNamespace, string][] = [];
  for (const kind of kinds) {
    const file = await canonicalPath(join(dir, kind)); // as mountinfo spells it
    pinned[kind] = file;
    if (mounted.has(file)) continue;
    await writeFile(file, '', { mode: PRIVATE_FILE });
    unpinned.push([kind, file]);
  }
  return { pinned, unpinned };
}

