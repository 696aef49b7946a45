/**
 * The supervisor: runs the root actor, persists every sandbox actor as its own row on every
 * transition (synchronously, so it is committed before any CRI reply), restores them at start,
 * and turns conmon's exit files into EXIT events.
 *
 * Restore does not resume XState snapshots: a restored actor starts in UNKNOWN with its persisted
 * context, and is sent the state observed on the host (containerd restart.go does the same against
 * the task). That sidesteps two XState traps: effects that were in flight would run again on
 * restore, and entry actions would not.
 */
import { createActor, waitFor, type Actor, type AnyActorRef, type InspectionEvent, type SnapshotFrom } from 'xstate';
import type { Logger } from 'pino';
import { supervisorMachine, sandboxSystemId } from '../machines/supervisor.machine.js';
import { sandboxMachine } from '../machines/sandbox.machine.js';
import type { SandboxContext, SandboxEvent, SandboxSpec } from '../machines/sandbox.types.js';
import { DeadlineExceeded, EffectFailed, NotFound, Refused, Unavailable } from '../errors/catalogue.js';
import type { Store, Transition } from '../storage/store.js';
import { readExitFile, watchExitFile } from '../runtime/exit-file.js';
import { podPaths } from '../runtime/pod-files.js';
import { isSameProcessAlive } from '../runtime/process.js';
import { Registry } from './registry.js';
import { sandboxEffects } from './sandbox-effects.js';
import type { Host } from './host.js';

export type SandboxActor = Actor<typeof sandboxMachine>;
export type SandboxSnapshot = SnapshotFrom<typeof sandboxMachine>;

/** What CRI handlers and the CLI read about a pod. */
export interface SandboxView {
  id: string;
  /** Full state path, e.g. "PENDING.creating". */
  state: string;
  context: SandboxContext;
}

/** Exit code reported when the pause process is gone and conmon left no exit file. */
export const UNKNOWN_EXIT_CODE = 255;

const BUSY = ['PENDING', 'STOPPING', 'REMOVING'] as const;

export function stateName(snapshot: { value: unknown }): string {
  const walk = (v: unknown): string =>
    typeof v === 'string' ? v : Object.entries(v as Record<string, unknown>).map(([k, sub]) => `${k}.${walk(sub)}`)[0] ?? '';
  return walk(snapshot.value);
}

function eventLabel(type: string): string {
  const done = /^xstate\.done\.actor\.(.+)$/.exec(type);
  if (done) return `${done[1]}.done`;
  const failed = /^xstate\.error\.actor\.(.+)$/.exec(type);
  if (failed) return `${failed[1]}.error`;
  return type;
}

export interface SupervisorDeps {
  store: Store;
  host: Host;
  logger: Logger;
}

export class Supervisor {
  readonly registry = new Registry();
  private readonly root;
  private readonly saved = new Map<string, { state: string; context: string }>();
  private readonly exitWatchers = new Map<string, () => void>();
  private serving = false;

  constructor(private readonly deps: SupervisorDeps) {
    const sandbox = sandboxMachine.provide({ actors: sandboxEffects(deps.host) });
    this.root = createActor(supervisorMachine.provide({ actors: { sandbox } }), {
      systemId: 'supervisor',
      inspect: (event) => this.onInspect(event),
    });
  }

  /** Starts the root actor and restores every sandbox from the database. */
  async start(): Promise<void> {
    this.root.start();
    this.registry.load(this.deps.store.names());
    const rows = this.deps.store.loadSandboxes();
    // One bad row must not keep every other pod from coming back (containerd's recover() does
    // the same): it is logged and left in the database for an operator to inspect.
    await Promise.all(
      rows.map(async (row) => {
        try {
          await this.restoreSandbox(row.id, row.state, JSON.parse(row.context) as SandboxContext);
        } catch (err) {
          this.deps.logger.error({ sandboxId: row.id, err }, 'restore failed for this pod; skipped');
        }
      }),
    );
    this.root.send({ type: 'RESTORED' });
    this.serving = true;
    this.deps.logger.info({ sandboxes: rows.length }, 'restore finished');
  }

  /** Stops serving and stops the actors; pods and conmon keep running (graceful SIGTERM). */
  async shutdown(settleMs = 10_000): Promise<void> {
    this.serving = false;
    for (const stop of this.exitWatchers.values()) stop();
    this.exitWatchers.clear();
    // Let effects in flight reach a committed state, within a bound; restore handles the rest.
    await Promise.allSettled(this.sandboxActors().map((a) => this.settle(a, settleMs)));
    this.root.send({ type: 'SHUTDOWN' });
  }

  sandboxActor(id: string): SandboxActor | undefined {
    return this.root.system.get(sandboxSystemId(id)) as SandboxActor | undefined;
  }

  sandboxActors(): SandboxActor[] {
    return this.registry.ids('sandbox').flatMap((id) => this.sandboxActor(id) ?? []);
  }

  /** Resolves an id, name or unique prefix to a sandbox id, or null. */
  findSandbox(ref: string): string | null {
    const id = this.registry.resolve(ref, 'sandbox');
    return id && this.sandboxActor(id) ? id : null;
  }

  view(id: string): SandboxView | null {
    const actor = this.sandboxActor(id);
    if (!actor) return null;
    const snapshot = actor.getSnapshot();
    return { id, state: stateName(snapshot), context: snapshot.context };
  }

  views(): SandboxView[] {
    return this.registry.ids('sandbox').flatMap((id) => this.view(id) ?? []);
  }

  history(id: string, limit = 20): Transition[] {
    return this.deps.store.history(id, limit);
  }

  private assertServing(): void {
    if (!this.serving) throw new Unavailable('podchart is restoring its pods or shutting down; retry shortly');
  }

  /**
   * RunPodSandbox: reserve the name and persist the intent, spawn the actor, CREATE, and wait
   * until creation has settled. On failure the chart has rolled back (or left a NOTREADY pod).
   */
  async runSandbox(spec: SandboxSpec, id: string, timeoutMs: number): Promise<string> {
    this.assertServing();
    const input = { id, spec };
    const initial: SandboxContext = {
      id, spec, pid: null, pidStartTime: null, exit: null, tornDown: true, stopTimeoutSec: 10, lastError: null,
    };
    this.deps.store.insertSandbox(id, spec.name, 'UNKNOWN', initial);
    this.registry.add({ id, name: spec.name, kind: 'sandbox' });
    this.saved.set(id, { state: 'UNKNOWN', context: JSON.stringify(initial) });
    this.root.send({ type: 'SPAWN_SANDBOX', id, input });
    const actor = this.sandboxActor(id);
    if (!actor) throw new EffectFailed(`sandbox actor ${id} did not start`);
    actor.send({ type: 'CREATE' });
    const snapshot = await this.settle(actor, timeoutMs);
    if (snapshot.matches('RUNNING')) return id;
    const why = snapshot.context.lastError ?? `it ended in state ${stateName(snapshot)}`;
    const left = snapshot.status === 'done' ? 'everything it created was removed' : 'it is left NOTREADY for removal';
    throw new EffectFailed(`pod sandbox ${spec.name} could not be started: ${why} (${left})`);
  }

  /** StopPodSandbox: idempotent; resolves once the pod is stopped and torn down. */
  async stopSandbox(id: string, timeoutMs: number, graceSec: number): Promise<void> {
    this.assertServing();
    const actor = this.requireActor(id);
    const snapshot = await this.request(actor, { type: 'STOP', timeoutSec: graceSec }, timeoutMs);
    if (snapshot.matches('STOPPED') && snapshot.context.tornDown) return;
    throw new EffectFailed(`stopping pod sandbox ${id} failed: ${snapshot.context.lastError ?? stateName(snapshot)}`);
  }

  /** RemovePodSandbox: stops first if running; resolves once everything is gone. */
  async removeSandbox(id: string, timeoutMs: number): Promise<void> {
    this.assertServing();
    const actor = this.requireActor(id);
    const snapshot = await this.request(actor, { type: 'REMOVE' }, timeoutMs);
    if (snapshot.status === 'done') return;
    throw new EffectFailed(`removing pod sandbox ${id} failed: ${snapshot.context.lastError ?? stateName(snapshot)}`);
  }

  private requireActor(id: string): SandboxActor {
    const actor = this.sandboxActor(id);
    if (!actor) throw new NotFound(`pod sandbox ${id} not found`);
    return actor;
  }

  /** Sends one event if the chart accepts it in its current state, then waits for it to settle. */
  private async request(actor: SandboxActor, event: SandboxEvent, timeoutMs: number): Promise<SandboxSnapshot> {
    const before = actor.getSnapshot();
    if (before.status === 'done') return before;
    if (!before.can(event)) {
      const state = stateName(before);
      const why =
        state === 'REMOVING'
          ? 'it is already being removed'
          : state.startsWith('PENDING')
            ? 'it is still being created'
            : state === 'STOPPING'
              ? 'it is being stopped; retry when that finishes'
              : `its state is ${state}`;
      throw new Refused(`pod sandbox ${before.context.id} cannot ${event.type.toLowerCase()} now: ${why}`);
    }
    actor.send(event);
    return this.settle(actor, timeoutMs);
  }

  /** Waits until the actor has no work in flight. The work itself is not cancelled by a timeout. */
  private async settle(actor: SandboxActor, timeoutMs: number): Promise<SandboxSnapshot> {
    try {
      return await waitFor(actor, (s) => s.status === 'done' || !BUSY.some((b) => s.matches(b)), { timeout: timeoutMs });
    } catch (err) {
      if (err instanceof Error && /timeout/i.test(err.message)) {
        throw new DeadlineExceeded(
          `pod sandbox ${actor.getSnapshot().context.id} is still ${stateName(actor.getSnapshot())} after ${timeoutMs} ms; ` +
            'the operation continues in the background',
        );
      }
      throw err;
    }
  }

  /** Brings one persisted sandbox back, in the state observed on the host. */
  private async restoreSandbox(id: string, persisted: string, context: SandboxContext): Promise<void> {
    const log = this.deps.logger.child({ sandboxId: id });
    this.saved.set(id, { state: persisted, context: JSON.stringify(context) });
    this.root.send({ type: 'SPAWN_SANDBOX', id, input: context });
    const actor = this.sandboxActor(id);
    if (!actor) return;
    const top = persisted.split('.')[0];
    if (top === 'UNKNOWN' || top === 'PENDING') {
      log.info({ persisted }, 'restore: caught half-created, rolling back');
      actor.send({ type: 'PENDING' });
      return;
    }
    if (top === 'REMOVING') {
      log.info('restore: caught half-removed, finishing');
      actor.send({ type: 'REMOVE' });
      return;
    }
    // The exit file is the source of truth; then the pid, guarded against reuse by its start time.
    const exit = await readExitFile(podPaths(context.spec).exitDir, id);
    const alive = !exit && (await isSameProcessAlive(context.pid, context.pidStartTime));
    if (alive && context.pid !== null && context.pidStartTime !== null) {
      actor.send({ type: 'READY', pid: context.pid, pidStartTime: context.pidStartTime });
    } else {
      const at = exit?.at ?? context.exit?.at ?? (BigInt(Date.now()) * 1_000_000n).toString();
      actor.send({ type: 'EXIT', code: exit?.code ?? context.exit?.code ?? UNKNOWN_EXIT_CODE, at });
    }
    if (top === 'STOPPING') {
      log.info('restore: caught mid-stop, finishing');
      actor.send({ type: 'STOP', timeoutSec: context.stopTimeoutSec });
    }
    log.info({ persisted, now: stateName(actor.getSnapshot()), pauseAlive: alive }, 'restored');
  }

  /** Every sandbox snapshot passes here, synchronously: persist it, record the transition, watch exits. */
  private onInspect(event: InspectionEvent): void {
    if (event.type !== '@xstate.snapshot') return;
    // ActorRefLike in the type; at run time every inspected ref is an Actor with an id.
    const refId = (event.actorRef as Partial<AnyActorRef>).id ?? '';
    if (!refId.startsWith('sandbox:')) return;
    const id = refId.slice('sandbox:'.length);
    const snapshot = event.snapshot as SandboxSnapshot;
    const to = stateName(snapshot);
    const previous = this.saved.get(id);
    const log = this.deps.logger.child({ sandboxId: id });
    if (snapshot.status === 'done') {
      this.stopExitWatch(id);
      this.deps.store.deleteSandbox(id);
      this.registry.remove(id);
      this.saved.delete(id);
      log.info({ event: eventLabel(event.event.type), from: previous?.state }, 'sandbox removed');
      this.root.send({ type: 'FORGET_SANDBOX', id });
      return;
    }
    // The initial UNKNOWN of a restored actor is not news: the row keeps its last real state.
    if (to === 'UNKNOWN' && previous) return;
    const context = JSON.stringify(snapshot.context);
    // Before any early return: a pod restored to RUNNING has an unchanged row but needs its watch.
    this.followExits(id, to, snapshot.context);
    if (previous && previous.state === to && previous.context === context) return;
    const label = eventLabel(event.event.type);
    const changed = previous?.state !== to;
    const isError = label.endsWith('.error');
    const transition: Transition | null = changed || isError
      ? { actorId: id, event: label, from: previous?.state ?? null, to, at: Date.now(), error: isError ? snapshot.context.lastError : null }
      : null;
    this.deps.store.saveSandbox(id, to, snapshot.context, transition);
    this.saved.set(id, { state: to, context });
    if (transition) log.info({ event: label, from: transition.from, to, error: transition.error ?? undefined }, 'transition');
  }

  /** Watch the pause's exit file while it may be running. */
  private followExits(id: string, state: string, context: SandboxContext): void {
    const mayRun = state === 'RUNNING' || state === 'STOPPING';
    if (mayRun && !this.exitWatchers.has(id)) {
      const stop = watchExitFile(podPaths(context.spec).exitDir, id, (exit) => {
        this.exitWatchers.delete(id);
        const actor = this.sandboxActor(id);
        if (actor && actor.getSnapshot().can({ type: 'EXIT', ...exit })) actor.send({ type: 'EXIT', ...exit });
      });
      this.exitWatchers.set(id, stop);
    } else if (!mayRun) {
      this.stopExitWatch(id);
    }
  }

  private stopExitWatch(id: string): void {
    this.exitWatchers.get(id)?.();
    this.exitWatchers.delete(id);
  }
}
