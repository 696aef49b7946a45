/**
 * Exit watching (issue 13, item 4): while an actor's process may run, its exit file (conmon's) and
 * its conmon are watched, and what they show is sent to the actor as an event, if its chart takes
 * it. Which states are watched is read from the charts: a container's `processMayRun` tag, a
 * pod's RUNNING and STOPPING states.
 */
import type { Logger } from 'pino';
import type { AnyActorRef } from 'xstate';
import { UNKNOWN_EXIT_CODE, type ContainerEvent } from '../machines/container.types.js';
import type { SandboxEvent } from '../machines/sandbox.types.js';
import type { ContainerSnapshot, SandboxSnapshot } from './supervisor.js';
import { readExitFile } from '../runtime/exit-file.js';
import { podPaths } from '../runtime/pod-files.js';
import { isSameProcessAlive } from '../host/process.js';
import { afterConmonExit, conmonPidFile, containerExitDir, readContainerExit } from './container-files.js';
import { ExitWatches } from './exit-watches.js';
import { ConmonWatches } from './conmon-watches.js';
import type { Causes } from './cause.js';
import { nowNs } from './actor-util.js';

export interface ExitWatchDeps {
  logger: Logger;
  causes: Causes;
  /** The live actor for "sandbox:<id>" / "container:<id>", if any. */
  actorOf: (key: string) => Pick<AnyActorRef, 'send' | 'getSnapshot'> | undefined;
}

export class ExitWatch {
  private readonly files = new ExitWatches();
  private readonly conmons = new ConmonWatches();

  constructor(private readonly deps: ExitWatchDeps) {}

  stopAll(): void {
    this.files.stopAll();
    this.conmons.stopAll();
  }

  /** Sends `event` to the actor under `key` if its chart takes it now. */
  private deliver(key: string, event: SandboxEvent | ContainerEvent): void {
    const actor = this.deps.actorOf(key);
    if ((actor?.getSnapshot() as { can?: (e: unknown) => boolean } | undefined)?.can?.(event)) actor?.send(event);
  }

  /** Watch the pause's exit file while it may be running, and its conmon, which writes that file. */
  followPod(id: string, snapshot: SandboxSnapshot): void {
    const key = `sandbox:${id}`;
    const { context } = snapshot;
    // A pod without a pause process has no exit to watch: it is ready until it is stopped.
    if ((!snapshot.matches('RUNNING') && !snapshot.matches('STOPPING')) || context.spec.pauseProcess === false) {
      this.conmons.stop(`${key}:conmon`);
      this.conmons.stop(`${key}:pause`);
      return this.files.stop(key);
    }
    const exited = (exit: { code: number; at: string }): void => this.deps.causes.with('exit', () => this.deliver(key, { type: 'EXIT', ...exit }));
    this.files.follow(key, podPaths(context.spec).exitDir, id, exited);
    // Without its conmon no exit file will come: the pause process itself is watched instead, and
    // its end reported with the code unknown (issue 12, item 5), rather than a pod READY for ever.
    this.conmons.follow(`${key}:conmon`, podPaths(context.spec).conmonPidFile, (conmonPid) => {
      void (async () => {
        if (await readExitFile(podPaths(context.spec).exitDir, id)) return; // a normal exit: the watch above has it
        const unknown = (): void => exited({ code: UNKNOWN_EXIT_CODE, at: nowNs() });
        if (!(await isSameProcessAlive(context.pid, context.pidStartTime))) return unknown();
        this.deps.logger.warn({ sandboxId: id, conmonPid, pausePid: context.pid }, "the pause process's conmon exited while the pod runs; the pause is watched by its pid, and its exit code will not be known");
        this.conmons.follow(`${key}:pause`, podPaths(context.spec).pidFile, unknown);
      })();
    });
  }

  /**
   * Watch a container's exit file while its process may run (REMOVE_FAILED too: a failed forced
   * remove may have killed it, and its exit is then recorded), and its conmon while RUNNING: its
   * death with the process alive is LOST (issue 12, item 5).
   */
  followContainer(id: string, snapshot: ContainerSnapshot): void {
    const key = `container:${id}`;
    const { context } = snapshot;
    if (!snapshot.hasTag('processMayRun')) this.files.stop(key);
    else {
      this.files.follow(key, containerExitDir(context), id, () => {
        void this.deps.causes.with('exit', () => readContainerExit(context)).then((exit) =>
          this.deps.causes.with('exit', () => this.deliver(key, { type: 'EXIT', exit: exit ?? { code: UNKNOWN_EXIT_CODE, at: nowNs(), reason: 'Unknown', message: '' } })),
        );
      });
    }
    if (!snapshot.matches('RUNNING')) return this.conmons.stop(key);
    this.conmons.follow(key, conmonPidFile(context), (conmonPid) => {
      void this.deps.causes.with('conmon', () => afterConmonExit(context, conmonPid)).then((event) => this.deps.causes.with('conmon', () => {
        if (!event) return;
        if (event.type === 'CONMON_LOST') this.deps.logger.warn({ containerId: id, conmonPid }, event.message);
        this.deliver(key, event);
      }));
    });
  }
}
