/**
 * A pod's sysctls written into its own namespaces, for a pod without a pause process (config
 * dropInfraContainer). With a pause, runc writes them when it creates the pause container; without
 * one, nothing would until the first container, so a bad one would fail CreateContainer instead of
 * RunPodSandbox. CRI-O's pinns writes them when it makes the namespaces, as this does.
 *
 * /proc/sys/net/* and the IPC sysctls belong to the namespaces of the process that writes them:
 * `nsenter` puts the writing shell into the pod's netns and pinned ipc namespace.
 */
import { EffectFailed } from '../errors/catalogue.js';
import { run, tail } from '../host/exec.js';

/** Where each namespace of the pod is pinned; null where the pod has none of its own. */
export interface SysctlNamespaces {
  net: string | null;
  ipc: string | null;
}

/** `net.ipv4.ip_forward` → `net/ipv4/ip_forward`; a name already spelt with `/` is kept, as runc does. */
export function sysctlPath(key: string): string {
  return `/proc/sys/${key.includes('/') ? key : key.replace(/\./g, '/')}`;
}

/** Writes every sysctl in one program run; a failure names the sysctl and the kernel's words. */
export async function writePodSysctls(sysctls: Readonly<Record<string, string>>, ns: SysctlNamespaces): Promise<void> {
  const entries = Object.entries(sysctls);
  if (entries.length === 0) return;
  const enter = [...(ns.net ? [`--net=${ns.net}`] : []), ...(ns.ipc ? [`--ipc=${ns.ipc}`] : [])];
  // Never the host's: cri/ refuses a sysctl of a namespace the pod shares with the node.
  if (enter.length === 0) throw new EffectFailed('the pod has sysctls but no network or IPC namespace of its own to set them in');
  // One shell for all of them (every spawn costs a fork of the spawner); it stops at the first
  // failure and names it. The keys were checked in cri/ (no "..", no spaces, namespaced only).
  const script = 'while [ $# -gt 0 ]; do printf %s "$3" > "$2" || { echo "sysctl $1 could not be set to \\"$3\\"" >&2; exit 1; }; shift 3; done';
  const args = entries.flatMap(([key, value]) => [key, sysctlPath(key), value]);
  const result = await run('nsenter', [...enter, '--', 'sh', '-c', script, 'sysctls', ...args], { allowFailure: () => true });
  if (result.exitCode !== 0) throw new EffectFailed(`the pod's sysctls could not be set in its namespaces: ${tail(result.stderr || result.stdout)}`);
}
