/** RunPodSandbox: validate, build the pod's spec, let its actor create it, answer when RUNNING. */
import { topState } from '../machines/state-path.js';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { AlreadyExists, InvalidArgument } from '../errors/catalogue.js';
import type { SandboxSpec } from '../machines/sandbox.types.js';
import { netnsPath } from '../network/netns.js';
import { runtimeForHandler } from '../actors/deps.js';
import type { CriContext } from './context.js';
import type { NamespaceMode, RunPodSandboxRequest } from './types.js';
import { checkPodMetadata, checkSandboxConfig } from './sandbox-validate.js';
import { checkAbsolutePath, checkHostname, checkStringMap, MAX_ANNOTATIONS_BYTES, MAX_LABELS_BYTES, MAX_POD_NAME_BYTES, checkText, quote, requireString } from './validate.js';

/** The registry name of a pod (names are unique across pods and containers, seed 000 §3.3). */
export function sandboxName(m: { name: string; namespace: string; uid: string; attempt: number }): string {
  return ['k8s_POD', m.name, m.namespace, m.uid, String(m.attempt)].join('_');
}

const MODES: readonly NamespaceMode[] = ['POD', 'CONTAINER', 'NODE', 'TARGET'];

export function buildSandboxSpec(req: RunPodSandboxRequest, id: string, ctx: CriContext): SandboxSpec {
  const config = req.config;
  if (!config) throw new InvalidArgument('RunPodSandboxRequest.config is required');
  const m = config.metadata;
  if (!m) throw new InvalidArgument('PodSandboxConfig.metadata is required');
  requireString(m.name, 'PodSandboxConfig.metadata.name');
  requireString(m.namespace, 'PodSandboxConfig.metadata.namespace');
  requireString(m.uid, 'PodSandboxConfig.metadata.uid');
  checkPodMetadata(m);
  checkSandboxConfig(config);
  const logDirectory = checkAbsolutePath(config.logDirectory ?? '', 'PodSandboxConfig.log_directory');
  checkStringMap(config.labels ?? {}, 'PodSandboxConfig.labels', MAX_LABELS_BYTES);
  checkStringMap(config.annotations ?? {}, 'PodSandboxConfig.annotations', MAX_ANNOTATIONS_BYTES);
  // An empty hostname means the node's, as containerd and CRI-O do (not the pod name: critest's
  // pod names are longer than the kernel's 64-byte limit).
  const hostname = config.hostname ? checkHostname(config.hostname, 'PodSandboxConfig.hostname') : osHostname();
  const cgroupParent = config.linux?.cgroupParent ?? '';
  if (cgroupParent && cgroupParent.split('/').includes('..')) {
    throw new InvalidArgument(`PodSandboxConfig.linux.cgroup_parent must not contain "..", got ${quote(cgroupParent)}`);
  }
  const ns = config.linux?.securityContext?.namespaceOptions;
  const mode = (v: NamespaceMode | undefined): NamespaceMode => (v && MODES.includes(v) ? v : 'POD');
  const namespaces = { network: mode(ns?.network), pid: mode(ns?.pid), ipc: mode(ns?.ipc) };
  const handler = checkText(req.runtimeHandler ?? '', 'RunPodSandboxRequest.runtime_handler', MAX_POD_NAME_BYTES) || ctx.config.defaultRuntimeHandler;
  const runtime = runtimeForHandler(ctx.config, handler); // unknown handler → INVALID_ARGUMENT
  return {
    name: sandboxName({ name: m.name, namespace: m.namespace, uid: m.uid, attempt: m.attempt ?? 0 }),
    metadata: { name: m.name, uid: m.uid, namespace: m.namespace, attempt: m.attempt ?? 0 },
    hostname,
    logDirectory,
    labels: config.labels ?? {},
    annotations: config.annotations ?? {},
    runtimeHandler: handler,
    runtimePath: runtime.binary,
    dns: config.dnsConfig
      ? { servers: config.dnsConfig.servers ?? [], searches: config.dnsConfig.searches ?? [], options: config.dnsConfig.options ?? [] }
      : null,
    portMappings: (config.portMappings ?? []).map((p) => ({
      protocol: p.protocol, containerPort: p.containerPort, hostPort: p.hostPort, hostIp: p.hostIp,
    })),
    cgroupParent,
    namespaces,
    sysctls: config.linux?.sysctls ?? {},
    oomScoreAdj: ctx.config.pauseOomScoreAdj,
    shmSizeBytes: ctx.config.shmSizeBytes,
    rootDir: join(ctx.config.rootDir, 'sandboxes', id),
    stateDir: join(ctx.config.runDir, 'sandboxes', id),
    netnsPath: namespaces.network === 'NODE' ? null : netnsPath(id),
    createdAt: (BigInt(Date.now()) * 1_000_000n).toString(),
    // A shared pid namespace needs its init, the pause, to reap; otherwise it may be left out.
    pauseProcess: !(ctx.config.dropInfraContainer && namespaces.pid !== 'POD'),
  };
}

/**
 * Two pods cannot hold one host port: portmap would silently let the newer DNAT rule win. Pods
 * that are no longer running have released theirs (CNI DEL at stop).
 */
function checkHostPorts(spec: SandboxSpec, ctx: CriContext): void {
  const key = (p: SandboxSpec['portMappings'][number]): string => `${p.hostIp || '*'}:${p.hostPort}/${(p.protocol || 'TCP').toLowerCase()}`;
  const wanted = spec.portMappings.filter((p) => p.hostPort > 0);
  const seen = new Set<string>();
  for (const p of wanted) {
    if (seen.has(key(p))) throw new InvalidArgument(`host port ${key(p)} is mapped twice in this pod`);
    seen.add(key(p));
  }
  for (const other of ctx.supervisor.views()) {
    if (topState(other.state) === 'REMOVING' || other.state === 'STOPPED') continue; // their ports are released
    for (const p of other.context.spec.portMappings) {
      const clash = wanted.find((w) => w.hostPort === p.hostPort && (w.protocol || 'TCP').toLowerCase() === (p.protocol || 'TCP').toLowerCase()
        && (!w.hostIp || !p.hostIp || w.hostIp === p.hostIp));
      if (clash) throw new AlreadyExists(`host port ${key(clash)} is already mapped by pod sandbox ${other.id} (${other.context.spec.metadata.namespace}/${other.context.spec.metadata.name})`);
    }
  }
}

export async function runPodSandbox(req: RunPodSandboxRequest, ctx: CriContext) {
  const id = ctx.supervisor.registry.newId();
  const spec = buildSandboxSpec(req, id, ctx);
  checkHostPorts(spec, ctx);
  const holder = ctx.supervisor.registry.holderOf(spec.name);
  if (holder) {
    throw new AlreadyExists(`pod sandbox name "${spec.name}" is already reserved for ${holder.kind} ${holder.id}; remove it first or use another attempt number`);
  }
  await ctx.sandboxes.run(spec, id, ctx.timeoutMs);
  return { podSandboxId: id };
}
