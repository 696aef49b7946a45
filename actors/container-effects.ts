/**
 * The real effects of the container chart: rootfs and OCI spec at create; conmon + runc create +
 * runc start at start (containerd's split); stop signal then SIGKILL; forced removal. Idempotent,
 * and each yields once before its first I/O so the state that invoked it is committed first.
 */
import { readFileSync, statSync } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UNKNOWN_EXIT_CODE, type ContainerContext, type ContainerExit, type Started } from '../machines/container.types.js';
import type { SandboxContext } from '../machines/sandbox.types.js';
import { EffectFailed, NotFound, Refused } from '../errors/catalogue.js';
import { pinNamespaces, pinnedNamespaces } from '../runtime/ns-pin.js';
import { podPaths } from '../runtime/pod-files.js';
import { createUnderConmon } from '../runtime/conmon.js';
import { secondsToMs } from '../host/long-timer.js';
import { logFileOf, logFilePath, secureLogFile, type LogFile } from '../runtime/log-path.js';
import { isSameProcessAlive, processStartTime, signalNumber, signalProcess } from '../host/process.js';
import { run } from '../host/exec.js';
import { timedStep } from '../host/steps.js';
import { capabilitiesFromMask, containerCapabilities, containerSpec, ociResources, splitDeviceNumber } from '../runtime/container-spec.js';
import { resolveUser, userOptions } from '../runtime/resolve-user.js';
import { seccompProfileFor } from '../runtime/seccomp-default.js';
import { apparmorProfileName } from '../runtime/apparmor.js';
import type { ContainerConfig, LinuxContainerResources } from '../runtime/cri-container-types.js';
import { runtimeAt, type Deps, type Lookups } from './deps.js';
import type { Janitor } from './janitor.js';
import { allSteps, effectActor, nowNs, type CommitGate } from './actor-util.js';
import { bundleDir, conmonAlive, conmonPidFile, containerExitDir, exitedWithin, exitStateDir, nsDir, oomFile, readContainerExit, rootfsDir } from './container-files.js';
import { PRIVATE_DIR, PRIVATE_FILE } from '../host/private-modes.js';

/** What the container effects work with: the daemon's deps, and the actor tree's answers. */
type ContainerHost = Deps & { lookups: Lookups; janitor: Janitor };

/** After SIGKILL, how long to wait for conmon to report the exit. */
const KILL_WAIT_MS = 10_000;
/** The log beneath the pod's log_directory, or null: then conmon logs into the container's dir. */
const logFile = (host: ContainerHost, ctx: ContainerContext): LogFile | null =>
  logFileOf(ctx.spec, host.lookups.sandboxOf(ctx.spec.sandboxId)?.spec.logDirectory);

function cgroupsPath(host: ContainerHost, pod: SandboxContext, id: string): string {
  const parent = pod.spec.cgroupParent;
  if (host.config.cgroupDriver === 'systemd') return `${parent || 'system.slice'}:podchart:${id}`;
  return `${parent || '/podchart'}/${id}`;
}

function requirePod(host: ContainerHost, ctx: ContainerContext): SandboxContext {
  const pod = host.lookups.sandboxOf(ctx.spec.sandboxId) ?? null;
  if (!pod) throw new NotFound(`pod sandbox ${ctx.spec.sandboxId} of container ${ctx.id} not found`);
  return pod;
}

/** The capabilities this daemon holds: runc cannot grant a container more (privileged, add ALL). */
function hostCapabilities(): ReturnType<typeof capabilitiesFromMask> {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('CapBnd:')) ?? '';
  return capabilitiesFromMask(line.split(/\s+/)[1] ?? '0');
}

async function missing(path: string): Promise<boolean> {
  try {
    await stat(path);
    return false;
  } catch {
    return true;
  }
}

export async function createContainer(host: ContainerHost, ctx: ContainerContext): Promise<void> {
  const pod = requirePod(host, ctx);
  const config = ctx.spec.config as unknown as ContainerConfig;
  const sc = config.linux?.securityContext ?? null;
  const hostCaps = hostCapabilities();
  // The steps that need nothing of each other run at once (issue 14: each is a few thread-pool
  // trips or a program; one after another they were ~3 ms of CreateContainer's ~12).
  const dirs = Promise.all([ctx.spec.dir, containerExitDir(ctx), bundleDir(ctx)].map((dir) => mkdir(dir, { recursive: true, mode: PRIVATE_DIR })));
  const mounted = host.images.mountRootfs(ctx.spec.imageId, rootfsDir(ctx));
  // The pause whose namespaces are joined must be the one the pod started: by its pins, or, for a
  // pod made before pinning, by its start time (issue 12, item 6).
  const pins = pinnedNamespaces(podPaths(pod.spec).nsDir);
  const pauseAlive = pod.pid === null ? Promise.resolve(true) : isSameProcessAlive(pod.pid, pod.pidStartTime);
  // RuntimeDefault opens the syscalls of the capabilities the container gets (containerd does).
  const seccomp = seccompProfileFor(sc, containerCapabilities(sc, hostCaps));
  await allSteps([dirs, mounted, pins, pauseAlive, seccomp]);
  const [rootfs, pinned, alive, seccompProfile] = await Promise.all([mounted, pins, pauseAlive, seccomp]);
  host.faults.hit('container.create.rootfs');
  if (!alive) throw new Refused(`the pause process of pod sandbox ${pod.id} has exited: its namespaces cannot be joined`);
  const image = host.images.require(ctx.spec.imageId);
  const imageConfig = JSON.parse(image.config) as Parameters<typeof containerSpec>[0]['image'];
  const user = await resolveUser(rootfs, userOptions(config, imageConfig));
  // TARGET pid mode (ephemeral containers) joins another running container's pid namespace,
  // pinned so that the target's exit cannot hand its pid, and the path, to another process.
  const targetId = sc?.namespaceOptions?.pid === 'TARGET' ? sc.namespaceOptions.targetId : '';
  const target = targetId ? host.lookups.containerProcess(targetId) : undefined;
  const targetPidNamespace = target ? (await pinNamespaces(target.pid, target.pidStartTime, nsDir(ctx), ['pid'])).pid : undefined;
  const deviceInfo: Parameters<typeof containerSpec>[0]['deviceInfo'] = {};
  for (const d of config.devices ?? []) {
    const st = statSync(d.hostPath);
    if (!st.isCharacterDevice() && !st.isBlockDevice()) throw new EffectFailed(`device ${d.hostPath} is not a character or block device`);
    deviceInfo[d.hostPath] = {
      type: st.isCharacterDevice() ? 'c' : 'b',
      ...splitDeviceNumber(st.rdev),
      fileMode: st.mode & 0o777,
      uid: st.uid,
      gid: st.gid,
    };
  }
  const { spec, hostDirsToCreate } = containerSpec({
    id: ctx.id,
    config,
    image: imageConfig,
    sandbox: { id: pod.id, spec: pod.spec, pausePid: pod.pid, pinned },
    rootfs,
    user,
    oomScoreFloor: host.oomScoreFloor,
    seccompProfile,
    apparmorProfile: host.hostHasAppArmor ? apparmorProfileName(sc) : null,
    hostHasAppArmor: host.hostHasAppArmor,
    cgroupsPath: cgroupsPath(host, pod, ctx.id),
    cgroupV2: host.cgroupV2,
    deviceInfo,
    hostCapabilities: hostCaps,
    ...(targetPidNamespace === undefined ? {} : { targetPidNamespace }),
  });
  // Only what is missing: kubelet also bind-mounts files, and those exist.
  for (const dir of hostDirsToCreate) if (await missing(dir)) await mkdir(dir, { recursive: true });
  await writeFile(join(bundleDir(ctx), 'config.json'), JSON.stringify(spec, null, 2), { mode: PRIVATE_FILE }); // the env
  // Made by the daemon, beneath the log directory, never through a link (checked at CreateContainer
  // too: this catches a change since). Last, so a failure before it leaves nothing in kubelet's dir.
  const log = logFile(host, ctx);
  if (log) await secureLogFile(log, 'create');
}

export async function startContainer(host: ContainerHost, ctx: ContainerContext): Promise<Started> {
  const runtime = runtimeAt(host.config, ctx.spec.runtimeHandler, ctx.spec.runtimePath);
  // conmon opens the log by path, following links: what was checked at create is checked again.
  const log = logFile(host, ctx);
  if (log) await secureLogFile(log, 'create');
  // What an earlier attempt may have left: its runc state, exit and oom files.
  await runtime.delete(ctx.id);
  await rm(join(containerExitDir(ctx), ctx.id), { force: true });
  await rm(oomFile(ctx), { force: true });
  const pid = await createUnderConmon({
    conmonPath: host.config.conmonPath,
    timeoutMs: host.config.conmonCreateTimeoutMs,
    runtime,
    id: ctx.id,
    name: ctx.spec.name,
    bundle: bundleDir(ctx),
    pidFile: join(ctx.spec.dir, 'container.pid'),
    conmonPidFile: conmonPidFile(ctx),
    logPath: log ? logFilePath(log) : join(ctx.spec.dir, 'container.log'),
    exitDir: containerExitDir(ctx),
    socketDir: ctx.spec.dir,
    persistDir: exitStateDir(ctx),
    terminal: ctx.spec.tty,
    stdin: ctx.spec.stdin,
    leaveStdinOpen: ctx.spec.stdin && !ctx.spec.stdinOnce,
  });
  host.faults.hit('container.start.created');
  const startedAt = nowNs();
  await runtime.start(ctx.id);
  const pidStartTime = (await processStartTime(pid)) ?? '';
  return { pid, pidStartTime, startedAt };
}

/**
 * The stop signal, then SIGKILL once the timeout has passed. runc signals the process itself, so
 * this works without conmon too (LOST); then the exit is not observed and is reported as Unknown.
 */
export async function stopContainer(host: ContainerHost, ctx: ContainerContext): Promise<ContainerExit | null> {
  const runtime = runtimeAt(host.config, ctx.spec.runtimeHandler, ctx.spec.runtimePath);
  const withConmon = await conmonAlive(ctx);
  // With its pid and start time known (recorded at start), /proc says whether it still runs and
  // the stop signal goes straight to it, as runc kill does after the same check: two runc spawns
  // fewer per stop (issue 14). Otherwise (never started, or restored without them) runc is asked.
  const known = ctx.pid !== null && ctx.pidStartTime !== null && ctx.pidStartTime !== '' ? ctx.pid : null;
  const status = known !== null ? ((await isSameProcessAlive(known, ctx.pidStartTime)) ? 'running' : 'stopped') : ((await runtime.state(ctx.id))?.status ?? null);
  if (status === 'running' && ctx.stopTimeoutSec > 0) {
    const signal = signalNumber(ctx.spec.stopSignal);
    if (known !== null && signal !== null) signalProcess(known, signal);
    else await runtime.kill(ctx.id, ctx.spec.stopSignal);
    if (await timedStep('wait exit after the stop signal', () => exitedWithin(ctx, withConmon, secondsToMs(ctx.stopTimeoutSec)))) return exitAfterStop(ctx, withConmon);
  }
  if (status !== null && status !== 'stopped') {
    // Every process of the container, not only its first: runc knows its cgroup.
    await runtime.kill(ctx.id, 'KILL', true);
    if (!(await timedStep('wait exit after SIGKILL', () => exitedWithin(ctx, withConmon, KILL_WAIT_MS)))) {
      const after = await runtime.state(ctx.id);
      if (after && after.status !== 'stopped') throw new EffectFailed(`container ${ctx.id} is still ${after.status} after SIGKILL`);
    }
  }
  return exitAfterStop(ctx, withConmon);
}

async function exitAfterStop(ctx: ContainerContext, withConmon: boolean): Promise<ContainerExit | null> {
  const exit = await readContainerExit(ctx);
  if (exit || withConmon || ctx.pid === null) return exit;
  return { code: UNKNOWN_EXIT_CODE, at: nowNs(), reason: 'Unknown', message: 'stopped by podchart after its conmon had exited; the exit code was not observed' };
}

/**
 * Forced removal: kill if running, then hand the runtime state (`runc delete`, a spawn of 10 ms
 * that containerd does at the exit rather than here), the rootfs, pinned namespaces and dirs to
 * the janitor (actors/janitor.ts), whose job is written before this resolves: RemoveContainer
 * answers once nothing of the container runs, without waiting for deletes and unmounts, as
 * containerd's does.
 */
export async function removeContainer(host: ContainerHost, ctx: ContainerContext): Promise<void> {
  // An observed exit is a dead process: `runc state` would only say "stopped".
  if (ctx.exit === null) await stopContainer(host, { ...ctx, stopTimeoutSec: 0 });
  host.faults.hit('container.remove.killed');
  const runtime = runtimeAt(host.config, ctx.spec.runtimeHandler, ctx.spec.runtimePath);
  // A container that never ran and failed (a CreateContainer rolled back): the failed call
  // should find nothing left, so its cleanup is done before this resolves.
  const rolledBack = ctx.pid === null && ctx.lastError !== null;
  await host.janitor.clean(
    {
      kind: 'container',
      id: ctx.id,
      rootfsDir: rootfsDir(ctx),
      nsDir: nsDir(ctx),
      dirs: [ctx.spec.dir, ...(ctx.spec.stateDir ? [ctx.spec.stateDir] : [])],
      runtimeState: { binary: runtime.binary, root: runtime.root, systemdCgroup: runtime.systemdCgroup },
    },
    rolledBack,
  );
}

/** UpdateContainerResources: applied with the runtime; the chart persists what was applied. */
export async function updateContainer(host: ContainerHost, ctx: ContainerContext, resources: Record<string, unknown>): Promise<Record<string, unknown>> {
  const oci = ociResources(resources as unknown as LinuxContainerResources, host.cgroupV2);
  const runtime = runtimeAt(host.config, ctx.spec.runtimeHandler, ctx.spec.runtimePath);
  await run(runtime.binary, [...runtime.globalArgs(), 'update', '--resources', '-', ctx.id], { input: JSON.stringify(oci) });
  return resources;
}

/** The chart's placeholders, replaced with these real effects. */
export function containerEffects(deps: Deps, lookups: Lookups, janitor: Janitor, committed: CommitGate) {
  const host: ContainerHost = { ...deps, lookups, janitor };
  const key = (input: ContainerContext): string => `container:${input.id}`;
  const effect = <I, O>(name: string, keyOf: (input: I) => string, run: (input: I) => Promise<O>) => effectActor(name, committed, keyOf, run, deps.onEffect);
  return {
    createContainer: effect('createContainer', key, (input: ContainerContext) => createContainer(host, input)),
    startContainer: effect('startContainer', key, (input: ContainerContext): Promise<Started> => startContainer(host, input)),
    stopContainer: effect('stopContainer', key, (input: ContainerContext): Promise<ContainerExit | null> => stopContainer(host, input)),
    removeContainer: effect('removeContainer', key, (input: ContainerContext) => removeContainer(host, input)),
    updateContainer: effect(
      'updateContainer',
      (input: { context: ContainerContext; resources: Record<string, unknown> }) => key(input.context),
      (input): Promise<Record<string, unknown>> => updateContainer(host, input.context, input.resources),
    ),
  };
}
