/**
 * The real effects of the sandbox chart: files, /dev/shm, netns, the pause container under conmon.
 * Every effect is idempotent (XState runs an effect again when it is restored mid-flight, and we
 * retry after crashes), and each yields once before its first I/O so the supervisor has committed
 * the state that invoked it: the intent is persisted before the effect.
 */
import { appendFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Created, ExitInfo, PodNetworkStatus, PodResources, SandboxContext, Stopped } from '../machines/sandbox.types.js';
import { createUnderConmon } from '../runtime/conmon.js';
import { readExitFile, waitForExitFile } from '../runtime/exit-file.js';
import { timedStep } from '../host/steps.js';
import { secondsToMs } from '../host/long-timer.js';
import { clampOomScoreAdj } from '../runtime/oom.js';
import { pauseSpec } from '../runtime/pause-spec.js';
import { mountShm, podPaths, writePodFiles, type PodPaths } from '../runtime/pod-files.js';
import type { OciRuntime } from '../runtime/oci-runtime.js';
import { isSameProcessAlive, processStartTime, signalProcess } from '../host/process.js';
import { makePinnedNamespaces, pinNamespaces, unpinNamespaces, type PinnableNamespace } from '../runtime/ns-pin.js';
import { writePodSysctls } from '../runtime/pod-sysctls.js';
import { createNetns, unmountNetns } from '../network/netns.js';
import { isMounted } from '../host/mounts.js';
import { EffectFailed } from '../errors/catalogue.js';
import { runtimeAt, type Deps } from './deps.js';
import type { Janitor } from './janitor.js';
import { allSteps, effectActor, type CommitGate } from './actor-util.js';
import { PRIVATE_FILE } from '../host/private-modes.js';
import { applyPodLimits, podLimits } from '../runtime/pod-cgroup.js';
import { hostCgroupLayout } from '../runtime/cgroup-stats.js';

/** After SIGKILL, how long to wait for conmon to report the exit. */
const KILL_WAIT_MS = 10_000;

function cgroupsPath(deps: Deps, ctx: SandboxContext): string {
  const parent = ctx.spec.cgroupParent;
  if (deps.config.cgroupDriver === 'systemd') return `${parent || 'system.slice'}:podchart:${ctx.id}`;
  return `${parent || '/podchart'}/${ctx.id}`;
}

export async function createSandbox(deps: Deps, ctx: SandboxContext): Promise<Created> {
  const { spec } = ctx;
  const paths = podPaths(spec);
  const runtime = runtimeAt(deps.config, spec.runtimeHandler, spec.runtimePath);
  await writePodFiles(spec, paths);
  deps.faults.hit('sandbox.create.files');
  const hostIpc = spec.namespaces.ipc === 'NODE';
  // [003] the namespace exists, with loopback up, before CNI configures it and before the pause
  // process starts in it. The shm mount does not depend on it: both are made at once (issue 14:
  // each is a program run, ~3 and ~6 ms).
  const steps: Promise<unknown>[] = [];
  if (!hostIpc) steps.push(mountShm(spec, paths.shm));
  if (spec.netnsPath) steps.push(createNetns(spec.netnsPath));
  // Without a pause, its other namespaces are made at once too: nothing else needs to exist first.
  const pauseless = spec.pauseProcess === false;
  if (pauseless) steps.push(makePinnedNamespaces(paths.nsDir, pinnedKinds(spec).filter((k) => k !== 'pid'), spec.hostname));
  await allSteps(steps);
  // A pause gets them from runc; without one they are written now, so a bad one fails here.
  if (pauseless) await writePodSysctls(spec.sysctls, { net: spec.netnsPath, ipc: hostIpc ? null : join(paths.nsDir, 'ipc') });
  let networkUp: Promise<PodNetworkStatus> | null = null;
  if (spec.netnsPath) {
    deps.faults.hit('sandbox.create.netns');
    // CNI ADD runs while the pause container is made (issue 14): both need only the namespace,
    // which exists now. Its outcome is awaited below, on every path, so a rollback never runs
    // CNI DEL beside an ADD still in flight.
    networkUp = setUpNetwork(deps, ctx);
    // Handled here too: a failure before the pause is made must not count as an unhandled rejection.
    networkUp.catch(() => undefined);
  }
  let pause: { pid: number | null; pidStartTime: string | null } = { pid: null, pidStartTime: null };
  try {
    if (!pauseless) pause = await createPause(deps, ctx, runtime, paths, hostIpc);
  } catch (err) {
    await networkUp?.catch(() => undefined);
    throw err;
  }
  const network = networkUp ? await networkUp : null;
  deps.faults.hit('sandbox.create.network');
  // /etc/hosts carries the pod's name and IP (kubelet's own hosts file replaces it in containers
  // that mount one). Appended in place: the pause's bind mount of the file sees it.
  if (network?.ip) await appendFile(paths.hosts, `${network.ip}\t${spec.hostname}\n`);
  return { ...pause, network };
}

/** The pause container: created under conmon, started, checked alive, its namespaces pinned. */
async function createPause(deps: Deps, ctx: SandboxContext, runtime: OciRuntime, paths: PodPaths, hostIpc: boolean): Promise<{ pid: number; pidStartTime: string }> {
  const { spec, id } = ctx;
  const oci = pauseSpec({
    id,
    spec,
    rootfs: deps.pauseRootfs,
    oomScoreAdj: clampOomScoreAdj(spec.oomScoreAdj, deps.oomScoreFloor),
    cgroupsPath: cgroupsPath(deps, ctx),
    shmPath: hostIpc ? null : paths.shm,
    hostnamePath: paths.hostname,
    hostsPath: paths.hosts,
    resolvPath: paths.resolv,
  });
  await writeFile(join(paths.bundle, 'config.json'), JSON.stringify(oci, null, 2), { mode: PRIVATE_FILE });
  // A pause container left by an earlier attempt would make runc create fail: clear it first.
  await runtime.delete(id);
  await rm(join(paths.exitDir, id), { force: true });
  const pid = await createUnderConmon({
    conmonPath: deps.config.conmonPath,
    timeoutMs: deps.config.conmonCreateTimeoutMs,
    runtime,
    id,
    name: spec.name,
    bundle: paths.bundle,
    pidFile: paths.pidFile,
    conmonPidFile: paths.conmonPidFile,
    logPath: paths.pauseLog,
    exitDir: paths.exitDir,
    socketDir: spec.stateDir,
  });
  deps.faults.hit('sandbox.create.created');
  // The namespaces exist from `runc create` on, held by the process that becomes the pause (the
  // same pid and start time across its exec): they are pinned while runc starts it (issue 14).
  const pidStartTime = await processStartTime(pid);
  if (pidStartTime === null) {
    const exit = await readExitFile(paths.exitDir, id);
    throw new EffectFailed(`the pause process of ${id} exited right after it was created (exit code ${exit?.code ?? 'unknown'})`);
  }
  // Containers join these by their pins, never by /proc/<pid>, which a reused pid would redirect.
  await allSteps([runtime.start(id), pinNamespaces(pid, pidStartTime, paths.nsDir, pinnedKinds(spec))]);
  deps.faults.hit('sandbox.create.started');
  if (!(await isSameProcessAlive(pid, pidStartTime))) {
    const exit = await readExitFile(paths.exitDir, id);
    throw new EffectFailed(`the pause process of ${id} exited right after start (exit code ${exit?.code ?? 'unknown'})`);
  }
  return { pid, pidStartTime };
}

/** The namespaces of its own the pause process holds for the pod's containers (pause-spec.ts), or, without a pause, the pins do. */
function pinnedKinds(spec: SandboxContext['spec']): PinnableNamespace[] {
  const kinds: PinnableNamespace[] = [];
  if (spec.namespaces.ipc !== 'NODE') kinds.push('ipc');
  if (spec.namespaces.network !== 'NODE') kinds.push('uts');
  if (spec.namespaces.pid !== 'NODE') kinds.push('pid');
  return kinds;
}

/** CNI ADD, with the pod's port mappings, DNS and the node's pod CIDR. */
async function setUpNetwork(deps: Deps, ctx: SandboxContext): Promise<PodNetworkStatus> {
  const { spec } = ctx;
  const result = await deps.cni.add({
    containerId: ctx.id,
    netnsPath: spec.netnsPath ?? '',
    ifName: 'eth0',
    podName: spec.metadata.name,
    podNamespace: spec.metadata.namespace,
    podUid: spec.metadata.uid,
    portMappings: spec.portMappings.map((p) => ({
      hostPort: p.hostPort,
      containerPort: p.containerPort,
      protocol: (p.protocol || 'TCP').toLowerCase() as 'tcp' | 'udp' | 'sctp',
      hostIp: p.hostIp,
    })),
    ...(spec.dns ? { dns: spec.dns } : {}),
    ...(deps.network.podCidr ? { podCidr: deps.network.podCidr } : {}),
  });
  const ips = deps.cni.podIps(result);
  return { ip: ips.ip, additionalIps: ips.additional, result };
}

/** CNI DEL: releases the pod's IP and port mappings; works when the netns is already gone. */
async function tearDownNetwork(deps: Deps, ctx: SandboxContext): Promise<void> {
  if (!ctx.spec.netnsPath) return;
  const netns = (await isMounted(ctx.spec.netnsPath)) ? ctx.spec.netnsPath : null;
  await deps.cni.del(ctx.id, netns, {
    podName: ctx.spec.metadata.name,
    podNamespace: ctx.spec.metadata.namespace,
    podUid: ctx.spec.metadata.uid,
  });
}

/**
 * CNI DEL at remove (and at the rollback of a failed create), where a failure is let go, stated:
 * a DEL that cannot succeed (a plugin refusing its own arguments, a netns or plugin gone) would
 * otherwise keep the pod, its netns, shm and dirs for ever (issue 12, item 11). What DEL would
 * have released (the cache entry, an IP lease, port mappings) is named in the log. At stop, the
 * failure is still the stop's: kubelet retries StopPodSandbox, and the pod reports it.
 */
async function releaseNetwork(deps: Deps, ctx: SandboxContext): Promise<void> {
  try {
    await tearDownNetwork(deps, ctx);
  } catch (err) {
    deps.logger.error(
      { sandboxId: ctx.id, err, leftover: { cniCacheEntry: ctx.id, network: ctx.network ? { ip: ctx.network.ip, additionalIps: ctx.network.additionalIps } : null, netns: ctx.spec.netnsPath } },
      'CNI DEL failed at remove; the pod is removed anyway, and what DEL would have released (IP lease, port mappings, CNI cache entry) is left for the operator',
    );
  }
}

/** Stops the pause process: the stop signal, then SIGKILL after the grace period. */
async function killPause(deps: Deps, ctx: SandboxContext, graceSec: number): Promise<ExitInfo | null> {
  const { spec, id } = ctx;
  if (spec.pauseProcess === false) return null; // nothing runs for the pod itself
  const runtime = runtimeAt(deps.config, spec.runtimeHandler, spec.runtimePath);
  const exitDir = podPaths(spec).exitDir;
  // With the pause's pid and start time known (READY recorded them), /proc says whether it still
  // runs and the stop signal goes straight to it: two runc spawns fewer per stop (issue 14). runc
  // kill does the same: it checks the process's start time and signals it. Without them (a pod
  // caught half-created), runc is asked.
  const pid = ctx.pidStartTime !== null ? ctx.pid : null;
  const status = pid !== null ? ((await isSameProcessAlive(pid, ctx.pidStartTime)) ? 'running' : 'stopped') : ((await runtime.state(id))?.status ?? 'stopped');
  if (status === 'stopped') return readExitFile(exitDir, id);
  if (status === 'running' && graceSec > 0) {
    if (pid !== null) signalProcess(pid, 'SIGTERM');
    else await runtime.kill(id, 'TERM');
    const exit = await timedStep('wait pause exit after SIGTERM', () => waitForExitFile(exitDir, id, secondsToMs(graceSec)));
    if (exit) return exit;
  }
  await runtime.kill(id, 'KILL', true);
  const exit = await timedStep('wait pause exit after SIGKILL', () => waitForExitFile(exitDir, id, KILL_WAIT_MS));
  if (exit) return exit;
  // conmon itself may be gone (killed with the daemon's cgroup, say): trust runc's word instead.
  const after = await runtime.state(id);
  if (after && after.status !== 'stopped') {
    throw new EffectFailed(`the pause process of ${id} is still ${after.status} after SIGKILL`);
  }
  return null;
}

/** Kills the pause process, deletes its container, unmounts /dev/shm and the netns (file kept). */
export async function stopSandbox(deps: Deps, ctx: SandboxContext): Promise<Stopped> {
  const runtime = runtimeAt(deps.config, ctx.spec.runtimeHandler, ctx.spec.runtimePath);
  const paths = podPaths(ctx.spec);
  // Two independent lines of spawns and CNI calls, run at once (issue 14). CNI DEL needs the
  // netns, which is pinned, not the pause (the containers were stopped before this): it runs
  // while the pause is stopped, deleted and its shm and pins unmounted. The netns is unmounted
  // only after DEL.
  let exit: ExitInfo | null = null;
  const stopPause = async (): Promise<void> => {
    exit = await killPause(deps, ctx, ctx.stopTimeoutSec);
    deps.faults.hit('sandbox.stop.killed');
    await runtime.delete(ctx.id);
    await unpinNamespaces(paths.nsDir, [paths.shm]); // and the shm, in the same umount run
  };
  const stopNetwork = async (): Promise<void> => {
    await tearDownNetwork(deps, ctx);
    deps.faults.hit('sandbox.stop.network');
    if (ctx.spec.netnsPath) await unmountNetns(ctx.spec.netnsPath);
  };
  await allSteps([stopPause(), stopNetwork()]);
  return { exit };
}

/**
 * Everything a pod ever made, undone: used for remove and for the rollback of a failed or
 * interrupted create. Only removes what exists, so it is safe at any point of a half-made pod.
 */
/** `rollback`: a failed RunPodSandbox's undo, which does the unmounts and deletes itself (as any removal does while the janitor is busy). */
export async function removeSandbox(deps: Deps, janitor: Janitor, ctx: SandboxContext, rollback = false): Promise<void> {
  await killPause(deps, ctx, 0); // seed rule 4: remove does not wait for a graceful stop
  await runtimeAt(deps.config, ctx.spec.runtimeHandler, ctx.spec.runtimePath).delete(ctx.id);
  deps.faults.hit('sandbox.remove.stopped');
  // A pod whose stop tore its network down (and unmounted its netns) had its CNI DEL then; a
  // second one would cost a plugin run per plugin for nothing (containerd does not repeat it
  // either). A rollback always runs it: the failed create may have got as far as ADD.
  const tornDown = !rollback && ctx.tornDown && !(ctx.spec.netnsPath && (await isMounted(ctx.spec.netnsPath)));
  if (!tornDown) await releaseNetwork(deps, ctx);
  // The unmounts and deletes: queued for the janitor (actors/janitor.ts, its job written before
  // this resolves), or done here on a rollback or while the janitor is busy.
  const paths = podPaths(ctx.spec);
  await janitor.clean({ kind: 'sandbox', id: ctx.id, shm: paths.shm, nsDir: paths.nsDir, netns: ctx.spec.netnsPath || null, dirs: [ctx.spec.stateDir, ctx.spec.rootDir] }, rollback);
  deps.faults.hit('sandbox.remove.netns');
}

/**
 * UpdatePodSandboxResources: what was asked (persisted in `resourcesRequested` before this runs)
 * written to the pod's cgroup. Idempotent: a restore that finds it caught midway writes it again.
 */
export async function updatePodResources(deps: Deps, ctx: SandboxContext): Promise<PodResources> {
  const requested = ctx.resourcesRequested;
  if (!requested) throw new EffectFailed(`pod sandbox ${ctx.id} has no resource update to apply`);
  if (!ctx.spec.cgroupParent) throw new EffectFailed(`pod sandbox ${ctx.id} has no cgroup of its own (it was run without linux.cgroup_parent)`);
  deps.faults.hit('sandbox.update.persisted');
  await applyPodLimits(ctx.spec.cgroupParent, deps.config.cgroupDriver, hostCgroupLayout(), podLimits(requested.resources, requested.overhead));
  return requested;
}

/** The chart's placeholders, replaced with these real effects. */
export function sandboxEffects(deps: Deps, janitor: Janitor, committed: CommitGate) {
  const key = (input: SandboxContext): string => `sandbox:${input.id}`;
  const effect = <O>(name: string, run: (input: SandboxContext) => Promise<O>) => effectActor(name, committed, key, run, deps.onEffect);
  return {
    createSandbox: effect('createSandbox', (input): Promise<Created> => createSandbox(deps, input)),
    stopSandbox: effect('stopSandbox', (input): Promise<Stopped> => stopSandbox(deps, input)),
    removeSandbox: effect('removeSandbox', (input) => removeSandbox(deps, janitor, input)),
    rollbackSandbox: effect('rollbackSandbox', (input) => removeSandbox(deps, janitor, input, true)),
    updatePodResources: effect('updatePodResources', (input): Promise<PodResources> => updatePodResources(deps, input)),
  };
}
