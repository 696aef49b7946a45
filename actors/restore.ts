/**
 * Restore by observation (issue 13, item 4): what a persisted actor is sent after a daemon
 * restart, decided from its persisted state and what is seen on the host. The decisions are pure
 * (restore.test.ts tabulates every persisted state × observation, as containerd's restart tests
 * do); `observeContainer` and `observePod` are the I/O that gathers what they need.
 *
 * A restored actor starts in UNKNOWN with its persisted context and is sent these events. Its
 * effects that were in flight are not resumed: work caught half-done is rolled back (a create)
 * or finished (a stop, a removal), from what is observed now.
 *
 * The order of truth: the exit file first (conmon wrote it: containerd #10390), then the pid
 * guarded by its start time, then, for a start caught between conmon and `runc start`, runc's word.
 *
 * What is restored is read through storage/rows.ts first (restorableRows): a row that cannot be
 * read is quarantined, never given to an actor.
 */
import { topState } from '../machines/state-path.js';
import { UNKNOWN_EXIT_CODE, type ContainerContext, type ContainerEvent, type ContainerExit } from '../machines/container.types.js';
import type { SandboxContext, SandboxEvent } from '../machines/sandbox.types.js';
import { readExitFile } from '../runtime/exit-file.js';
import { existsSync } from 'node:fs';
import { podPaths } from '../runtime/pod-files.js';
import { pinnedNamespaces } from '../runtime/ns-pin.js';
import { isMounted } from '../host/mounts.js';
import { isSameProcessAlive, processStartTime, readPidFile } from '../host/process.js';
import type { Config } from '../config/config.js';
import { conmonPidFile, readContainerExit } from './container-files.js';
import { runtimeAt } from './deps.js';
import type { Logger } from 'pino';
import { parseRow } from '../storage/rows.js';
import type { Store } from '../storage/store.js';

export interface ContainerObservation {
  /** What conmon's exit file says, or null when there is none. */
  exit: ContainerExit | null;
  /** The recorded pid is alive and is still the process that started then. */
  alive: boolean;
  /** conmon's pid (null: no pid file), and whether it still runs. */
  conmonPid: number | null;
  conmonAlive: boolean;
  /** runc's word, asked only for a start caught before its pid was recorded. */
  runtime: { running: boolean; pid: number; pidStartTime: string } | null;
}

export interface PodObservation {
  /** The pause's exit file, or null. */
  exit: { code: number; at: string } | null;
  /** The pause pid is alive with its recorded start time (and there is no exit file). */
  alive: boolean;
}


/** Whether a persisted container state needs the host looked at (the others decide alone). */
export function containerNeedsObservation(persisted: string): boolean {
  return !['UNKNOWN', 'CREATING', 'REMOVING', 'REMOVE_FAILED', 'CREATED'].includes(topState(persisted));
}

/** Whether runc must be asked: a start caught before the pid was recorded, with no other sign. */
export function containerNeedsRuntime(persisted: string, seen: Pick<ContainerObservation, 'exit' | 'alive'>): boolean {
  return topState(persisted) === 'STARTING' && !seen.exit && !seen.alive;
}

export function decideContainer(persisted: string, ctx: ContainerContext, seen: ContainerObservation, now: string): ContainerEvent[] {
  const state = topState(persisted);
  // Caught half-created: roll back. A removal asked for (and maybe failed): finish it, i.e.
  // retry; failing again, it is back in REMOVE_FAILED, from which RemoveContainer retries.
  if (state === 'UNKNOWN' || state === 'CREATING') return [{ type: 'ABANDON' }];
  if (state === 'REMOVING' || state === 'REMOVE_FAILED') return [{ type: 'REMOVE' }];
  if (state === 'CREATED') return [{ type: 'OBSERVED_CREATED' }];
  if (seen.exit) return [{ type: 'EXIT', exit: seen.exit }];
  if (seen.alive && ctx.pid !== null) {
    const events: ContainerEvent[] = [{ type: 'OBSERVED_RUNNING', pid: ctx.pid, pidStartTime: ctx.pidStartTime ?? '' }];
    // Running without its conmon (killed while we were down, or LOST before): the LOST the
    // running daemon's watch gives, at once rather than after its first poll (issue 12, item 5).
    if (!seen.conmonAlive) {
      events.push({ type: 'CONMON_LOST', message: `conmon (pid ${seen.conmonPid ?? 'unknown'}) exited while the container was running; its output is no longer logged` });
    }
    if (state === 'STOPPING') events.push({ type: 'STOP', timeoutSec: ctx.stopTimeoutSec });
    return events;
  }
  if (state === 'STARTING') {
    if (seen.runtime?.running) return [{ type: 'OBSERVED_RUNNING', pid: seen.runtime.pid, pidStartTime: seen.runtime.pidStartTime }];
    return [{ type: 'EXIT', exit: { code: UNKNOWN_EXIT_CODE, at: now, reason: 'StartError', message: 'the daemon stopped while the container was starting' } }];
  }
  const exit = ctx.exit ?? { code: UNKNOWN_EXIT_CODE, at: now, reason: 'Unknown', message: 'the process ended while podchart was down and left no exit file' };
  return [{ type: 'EXIT', exit }];
}

/** Whether a persisted pod state needs the host looked at. */
export function podNeedsObservation(persisted: string): boolean {
  return !['UNKNOWN', 'PENDING', 'REMOVING'].includes(topState(persisted));
}

export function decidePod(persisted: string, ctx: SandboxContext, seen: PodObservation, now: string): SandboxEvent[] {
  const state = topState(persisted);
  if (state === 'UNKNOWN' || state === 'PENDING') return [{ type: 'PENDING' }]; // caught half-created: roll back
  if (state === 'REMOVING') return [{ type: 'REMOVE' }]; // caught half-removed: finish
  const events: SandboxEvent[] =
    seen.alive && !seen.exit && (ctx.spec.pauseProcess === false || (ctx.pid !== null && ctx.pidStartTime !== null))
      ? [{ type: 'READY', pid: ctx.pid, pidStartTime: ctx.pidStartTime }]
      : [{ type: 'EXIT', code: seen.exit?.code ?? ctx.exit?.code ?? UNKNOWN_EXIT_CODE, at: seen.exit?.at ?? ctx.exit?.at ?? now }];
  if (state === 'STOPPING') events.push({ type: 'STOP', timeoutSec: ctx.stopTimeoutSec }); // caught mid-stop: finish
  // Caught mid-update of its resources: written again (the writes are idempotent).
  if (state === 'UPDATING' && ctx.resourcesRequested && events[0]?.type === 'READY') events.push({ type: 'UPDATE_RESOURCES', resources: ctx.resourcesRequested });
  return events;
}

/** A restore decision in words, for the inspector's restore view (issue 15, item 5). */
export function containerRestoreWhy(persisted: string, ctx: Pick<ContainerContext, 'pid'>, seen: ContainerObservation): string {
  const state = topState(persisted);
  if (state === 'UNKNOWN' || state === 'CREATING') return 'caught half-created: rolled back, what it made removed';
  if (state === 'REMOVING' || state === 'REMOVE_FAILED') return 'caught mid-removal: the removal is finished';
  if (state === 'CREATED') return 'created and not started: kept as it was';
  if (seen.exit && state === 'EXITED') return `the exit file says exit code ${seen.exit.code}, as persisted: it had exited before the restart`;
  if (seen.exit) return `the exit file says exit code ${seen.exit.code}: it exited while the daemon was down`;
  if (seen.alive) {
    const conmon = seen.conmonAlive ? '' : `, but its conmon (pid ${seen.conmonPid ?? 'unknown'}) is gone: LOST`;
    return `no exit file, and pid ${ctx.pid ?? '?'} is alive with its recorded start time${conmon}${state === 'STOPPING' ? '; the stop caught midway is finished' : ''}`;
  }
  if (state === 'STARTING') {
    return seen.runtime?.running
      ? `caught between conmon and its pid being recorded: runc says running, pid ${seen.runtime.pid}`
      : 'caught starting, and runc says it is not running: a failed start';
  }
  return 'no exit file, and its pid is gone: it ended while the daemon was down, with no exit code';
}

export function podRestoreWhy(persisted: string, ctx: Pick<SandboxContext, 'pid' | 'spec'>, seen: PodObservation): string {
  const state = topState(persisted);
  if (state === 'UNKNOWN' || state === 'PENDING') return 'caught half-created: rolled back, what it made removed';
  if (state === 'REMOVING') return 'caught mid-removal: the removal is finished';
  const stop = state === 'STOPPING' ? '; the stop caught midway is finished' : '';
  if (seen.exit && state === 'STOPPED') return `the pause's exit file says exit code ${seen.exit.code}, as persisted: it had stopped before the restart`;
  if (seen.exit) return `the pause's exit file says exit code ${seen.exit.code}: it exited while the daemon was down${stop}`;
  if (seen.alive) {
    const then = state === 'UPDATING' ? '; the resource update caught midway is written again' : stop;
    return ctx.spec.pauseProcess === false ? `its pinned namespaces are still mounted${then}` : `no exit file, and pause pid ${ctx.pid ?? '?'} is alive with its recorded start time${then}`;
  }
  if (state === 'STOPPED') return 'stopped, and still stopped';
  return ctx.spec.pauseProcess === false ? `its pinned namespaces are gone: NotReady${stop}` : `no exit file, and its pause pid is gone: NotReady${stop}`;
}

/** What the host shows of a persisted container, gathered only as far as its decision needs. */
export async function observeContainer(persisted: string, ctx: ContainerContext, config: Config): Promise<ContainerObservation> {
  const seen: ContainerObservation = { exit: null, alive: false, conmonPid: null, conmonAlive: false, runtime: null };
  if (!containerNeedsObservation(persisted)) return seen;
  seen.exit = await readContainerExit(ctx);
  seen.alive = !seen.exit && (await isSameProcessAlive(ctx.pid, ctx.pidStartTime));
  if (seen.alive) {
    seen.conmonPid = await readPidFile(conmonPidFile(ctx));
    seen.conmonAlive = await isSameProcessAlive(seen.conmonPid, null);
  }
  if (containerNeedsRuntime(persisted, seen)) {
    const state = await runtimeAt(config, ctx.spec.runtimeHandler, ctx.spec.runtimePath).state(ctx.id);
    if (state) seen.runtime = { running: state.status === 'running', pid: state.pid, pidStartTime: (await processStartTime(state.pid)) ?? '' };
  }
  return seen;
}

/**
 * What the host shows of a persisted pod's pause process; of a pod without one, whether all its
 * namespaces are still pinned (a reboot, say, takes them).
 */
export async function observePod(persisted: string, ctx: SandboxContext): Promise<PodObservation> {
  if (!podNeedsObservation(persisted)) return { exit: null, alive: false };
  if (ctx.spec.pauseProcess === false) return { exit: null, alive: await podNamespacesHeld(ctx) };
  const exit = await readExitFile(podPaths(ctx.spec).exitDir, ctx.id);
  return { exit, alive: !exit && (await isSameProcessAlive(ctx.pid, ctx.pidStartTime)) };
}

/** A pod's row and its containers', read and checked (storage/rows.ts), ready to restore. */
export interface RestorableRow {
  id: string;
  state: string;
  context: SandboxContext;
  containers: { id: string; state: string; context: ContainerContext }[];
}

/**
 * Every persisted pod with its containers, each row read through storage/rows.ts (upgraded from
 * older versions, checked against its schema and chart). A row that fails is quarantined with
 * its reason (a pod with its containers), shown in the inspector, and restore goes on.
 */
export function restorableRows(store: Store, logger: Logger): RestorableRow[] {
  const quarantine = (kind: 'sandbox' | 'container', id: string, reason: string): void => {
    store.quarantine(kind, id, reason);
    logger.error({ kind, id, reason }, `a persisted ${kind} row cannot be read: quarantined (see the inspector's /api/quarantine); restore goes on without it`);
  };
  return store.loadSandboxes().flatMap((row) => {
    const pod = parseRow('sandbox', row);
    if (!pod.ok) return quarantine('sandbox', row.id, pod.reason), [];
    const containers = store.loadContainers(row.id).flatMap((c) => {
      const parsed = parseRow('container', c);
      if (!parsed.ok) return quarantine('container', c.id, parsed.reason), [];
      return [{ id: c.id, state: parsed.state, context: parsed.context }];
    });
    // The pod waits only for containers that came back (its stop and removal count them).
    const kept = new Set(containers.map((c) => c.id));
    const context = { ...pod.context, containerIds: pod.context.containerIds.filter((id) => kept.has(id)) };
    return [{ id: row.id, state: pod.state, context, containers }];
  });
}

/** A pod without a pause: its netns and each namespace it pinned are still mounted. */
async function podNamespacesHeld(ctx: SandboxContext): Promise<boolean> {
  const paths = podPaths(ctx.spec);
  if (!existsSync(ctx.spec.stateDir)) return false;
  if (ctx.spec.netnsPath && !(await isMounted(ctx.spec.netnsPath))) return false;
  const pinned = await pinnedNamespaces(paths.nsDir);
  return (ctx.spec.namespaces.ipc === 'NODE' || pinned.ipc !== undefined) && (ctx.spec.namespaces.network === 'NODE' || pinned.uts !== undefined);
}
