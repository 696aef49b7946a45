/**
 * Brings one persisted container back: the exit file first (the source of truth, containerd
 * #10390), then the pid guarded by its start time, then the runtime's word.
 */
import type { Actor } from 'xstate';
import type { Logger } from 'pino';
import type { containerMachine } from '../machines/container.machine.js';
import type { ContainerContext } from '../machines/container.types.js';
import { isSameProcessAlive, processStartTime, readPidFile } from '../runtime/process.js';
import { runtimeAt } from './host.js';
import { conmonPidFile, readContainerExit, type ContainerHost } from './container-effects.js';
import { nowNs, stateName } from './actor-util.js';

/** Exit code when the process is gone and conmon left no exit file. */
const UNKNOWN_EXIT_CODE = 255;

export async function restoreContainer(
  actor: Actor<typeof containerMachine>,
  persisted: string,
  ctx: ContainerContext,
  host: ContainerHost,
  log: Logger,
): Promise<void> {
  const top = persisted.split('.')[0];
  if (top === 'UNKNOWN' || top === 'CREATING') {
    log.info({ persisted }, 'restore: container caught half-created, rolling back');
    actor.send({ type: 'ABANDON' });
    return;
  }
  // A removal was asked for (REMOVE_FAILED: and failed): finish it, i.e. retry. If it fails
  // again, the container is back in REMOVE_FAILED, from which RemoveContainer retries.
  if (top === 'REMOVING' || top === 'REMOVE_FAILED') {
    log.info({ persisted }, 'restore: container caught half-removed, finishing');
    actor.send({ type: 'REMOVE' });
    return;
  }
  if (top === 'CREATED') {
    actor.send({ type: 'OBSERVED_CREATED' });
    return;
  }
  const exit = await readContainerExit(ctx);
  if (exit) {
    actor.send({ type: 'EXIT', exit });
  } else if (await isSameProcessAlive(ctx.pid, ctx.pidStartTime)) {
    actor.send({ type: 'OBSERVED_RUNNING', pid: ctx.pid ?? 0, pidStartTime: ctx.pidStartTime ?? '' });
    // Running without its conmon (killed while we were down, or LOST before): the same LOST the
    // running daemon's watch gives, at once rather than after its first poll [issue 12 item 5].
    const conmonPid = await readPidFile(conmonPidFile(ctx));
    if (!(await isSameProcessAlive(conmonPid, null))) {
      log.warn({ conmonPid }, 'restore: the container runs but its conmon is gone');
      actor.send({ type: 'CONMON_LOST', message: `conmon (pid ${conmonPid ?? 'unknown'}) exited while the container was running; its output is no longer logged` });
    }
    if (top === 'STOPPING') actor.send({ type: 'STOP', timeoutSec: ctx.stopTimeoutSec });
  } else if (top === 'STARTING') {
    // Caught between conmon and runc start: ask the runtime what it has.
    const state = await runtimeAt(host.config, ctx.spec.runtimeHandler, ctx.spec.runtimePath).state(ctx.id);
    if (state?.status === 'running') {
      actor.send({ type: 'OBSERVED_RUNNING', pid: state.pid, pidStartTime: (await processStartTime(state.pid)) ?? '' });
    } else {
      actor.send({ type: 'EXIT', exit: { code: UNKNOWN_EXIT_CODE, at: nowNs(), reason: 'StartError', message: 'the daemon stopped while the container was starting' } });
    }
  } else {
    const at = ctx.exit?.at ?? nowNs();
    actor.send({ type: 'EXIT', exit: ctx.exit ?? { code: UNKNOWN_EXIT_CODE, at, reason: 'Unknown', message: 'the process ended while podchart was down and left no exit file' } });
  }
  log.info({ persisted, now: stateName(actor.getSnapshot()) }, 'container restored');
}
