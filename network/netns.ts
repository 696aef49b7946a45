/**
 * Pod network namespaces, created by podchart before the pause process starts (seed 003) and
 * bind-mounted under /var/run/netns so they outlive every process in them. All steps idempotent:
 * teardown works when the namespace is already gone, e.g. after a reboot (containerd #5768).
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename } from 'node:path';
import { run } from '../host/exec.js';
import { isMounted, unmountAll } from '../host/mounts.js';

export const NETNS_DIR = '/var/run/netns';

/** The name `ip netns` knows a pod's namespace by. */
export function netnsName(sandboxId: string): string {
  return `podchart-${sandboxId.slice(0, 16)}`;
}

export function netnsPath(sandboxId: string): string {
  return `${NETNS_DIR}/${netnsName(sandboxId)}`;
}

/** Creates the namespace (if not mounted yet) and brings loopback up. */
export async function createNetns(path: string): Promise<void> {
  const name = basename(path);
  if (await isMounted(path)) {
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return;
  }
  if (existsSync(path)) await rm(path, { force: true }); // a file left by an unmount: ip wants it absent
  // One spawn for both steps: each costs a round trip through the spawner (issue 14).
  await run('sh', ['-c', 'ip netns add "$1" && ip -n "$1" link set lo up', 'netns', name]);
}

/** Unmounts the namespace but keeps its file (pod stop, seed 003). */
export async function unmountNetns(path: string): Promise<void> {
  await unmountAll([path]);
}

/** Unmounts and deletes the namespace file (pod remove). */
export async function removeNetns(path: string): Promise<void> {
  await unmountNetns(path);
  await rm(path, { force: true });
}
