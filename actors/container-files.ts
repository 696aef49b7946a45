/**
 * Where a container's files are (bundle, rootfs, conmon's pid and exit files) and what they say:
 * whether conmon lives, how the process ended. Shared by the effects, the exit watch and restore.
 */
import { existsSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { UNKNOWN_EXIT_CODE, type ContainerContext, type ContainerEvent, type ContainerExit } from '../machines/container.types.js';
import { readExitFile, settleExitFiles, waitForExitFile } from '../runtime/exit-file.js';
import { isSameProcessAlive, readPidFile } from '../host/process.js';
import { nowNs } from './actor-util.js';

/** Without conmon, how often a stop looks whether the process is gone. */
const GONE_POLL_MS = 100;

/**
 * Where conmon writes what it learns when the process ends (its --persist-dir `exit` and `oom`,
 * and the exit file): under runDir, so that a full rootDir cannot lose an exit code. conmon gives
 * up before the exit file when it cannot write the persist-dir one (issue 12, item 1).
 */
export const exitStateDir = (ctx: ContainerContext): string => ctx.spec.stateDir ?? ctx.spec.dir;
export const containerExitDir = (ctx: ContainerContext): string => join(exitStateDir(ctx), 'exits');
export const rootfsDir = (ctx: ContainerContext): string => join(ctx.spec.dir, 'rootfs');
export const bundleDir = (ctx: ContainerContext): string => join(ctx.spec.dir, 'bundle');
export const oomFile = (ctx: ContainerContext): string => join(exitStateDir(ctx), 'oom');
/** A TARGET container's pid namespace, pinned for this container (runtime/ns-pin.ts). */
export const nsDir = (ctx: ContainerContext): string => join(exitStateDir(ctx), 'ns');
export const conmonPidFile = (ctx: ContainerContext): string => join(ctx.spec.dir, 'conmon.pid');

/** Whether the container's conmon still runs (false when it never wrote its pid file). */
export async function conmonAlive(ctx: ContainerContext): Promise<boolean> {
  return isSameProcessAlive(await readPidFile(conmonPidFile(ctx)), null);
}

/**
 * What conmon's death means for a running container: with the process alive, CONMON_LOST (no
 * exit file will come, its output is no longer logged); with it gone and an exit file written,
 * nothing (conmon exited normally, the exit watch reports it); gone with none, an unknown EXIT.
 */
export async function afterConmonExit(ctx: ContainerContext, conmonPid: number): Promise<ContainerEvent | null> {
  if (await isSameProcessAlive(ctx.pid, ctx.pidStartTime)) {
    return { type: 'CONMON_LOST', message: `conmon (pid ${conmonPid}) exited while the container was running; its output is no longer logged` };
  }
  if (await readExitFile(containerExitDir(ctx), ctx.id)) return null;
  return { type: 'EXIT', exit: { code: UNKNOWN_EXIT_CODE, at: nowNs(), reason: 'Unknown', message: `conmon (pid ${conmonPid}) exited and left no exit file` } };
}

/**
 * Until the process has exited or `timeoutMs` has passed. With conmon, its exit file says so (and
 * carries the code); without it none will come, so the pid (guarded by its start time) is polled.
 */
export async function exitedWithin(ctx: ContainerContext, withConmon: boolean, timeoutMs: number): Promise<boolean> {
  if (withConmon) return (await waitForExitFile(containerExitDir(ctx), ctx.id, timeoutMs)) !== null;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await isSameProcessAlive(ctx.pid, ctx.pidStartTime))) return true;
    if (Date.now() >= deadline) return false;
    await delay(Math.min(GONE_POLL_MS, Math.max(0, deadline - Date.now())));
  }
}
/** The container's exit as conmon recorded it: code, time, and why (Completed, Error, OOMKilled). */
export async function readContainerExit(ctx: ContainerContext): Promise<ContainerExit | null> {
  const exit = await readExitFile(containerExitDir(ctx), ctx.id);
  if (!exit) return null;
  const oom = existsSync(oomFile(ctx));
  await settleExitFiles(oomFile(ctx), join(exitStateDir(ctx), 'exit')); // conmon's --persist-dir files
  const reason = oom ? 'OOMKilled' : exit.code === 0 ? 'Completed' : 'Error';
  return { code: exit.code, at: exit.at, reason, message: '' };
}
