/**
 * The supervisor: runs the root actor (supervisor → pods → containers), persists every sandbox and
 * container actor as its own row on every transition (synchronously, so it is committed before
 * any CRI reply), restores them at start, and turns conmon's exit files into EXIT events.
 *
 * Restore does not resume XState snapshots: a restored actor starts in UNKNOWN with its persisted
 * context, and is sent the state observed on the host (containerd restart.go does the same against
 * the task). That sidesteps two XState traps: effects that were in flight would run again on
 * restore, and entry actions would not.
 */
import { createActor, type InspectionEvent } from 'xstate';
import { supervisorMachine, sandboxSystemId } from '../machines/supervisor.machine.js';
import { sandboxMachine } from '../machines/sandbox.machine.js';
import { containerMachine } from '../machines/container.machine.js';
import type { SandboxContext, SandboxEvent, SandboxSpec } from '../machines/sandbox.types.js';
import { EffectFailed, NotFound, Unavailable } from '../errors/catalogue.js';
import { StoreWriteFailed, type ActorKind, type RemovedActor, type Store, type Transition } from '../storage/store.js';
import { Registry } from './registry.js';
import { sandboxEffects } from './sandbox-effects.js';
import { containerEffects } from './container-effects.js';
import { containerRestoreWhy, decideContainer, decidePod, observeContainer, observePod, podRestoreWhy, restorableRows, type RestorableRow } from './restore.js';
import { newRestoreReport, type RestoreEntry, type RestoreReport } from './restore-report.js';
import { ExitWatch } from './exit-watch.js';
import { RowWriter } from './row-writer.js';
import { Janitor } from './janitor.js';
import { Recorder } from './persist.js';
import { ActorEvents, type ActorTransition, type ContainerLifecycleEvent } from './actor-events.js';
import type { Causes } from './cause.js';
import { nowNs, settle, stateName } from './actor-util.js';
import type { Deps, Lookups } from './deps.js';
import { containerView, sandboxView, type ContainerActor, type ContainerSnapshot, type ContainerView, type SandboxActor, type SandboxSnapshot, type SandboxView } from './views.js';

export type { SandboxActor, SandboxSnapshot, ContainerActor, ContainerSnapshot, SandboxView, ContainerView } from './views.js';
export { stateName } from './actor-util.js';

export type { ActorTransition, ContainerLifecycleEvent } from './actor-events.js';

export class Supervisor implements Lookups {
  readonly registry = new Registry();
  /**
   * Each kind's system ids, kept beside the registry's id list they were made from (which it
   * replaces on every change): a key string made afresh is flattened and hashed afresh on every
   * lookup, which was most of a List call's time with 200 containers (issue 14).
   */
  private readonly systemIdLists = new WeakMap<readonly string[], readonly string[]>();
  private readonly root;
  private readonly exits: ExitWatch;
  private readonly events: ActorEvents;
  private serving = false;
  private lastRestore: RestoreReport = newRestoreReport();
  private readonly writer: RowWriter;
  private readonly recorder: Recorder;
  /** The host cleanup of answered removals, in the background. */
  readonly janitor: Janitor;

  constructor(private readonly deps: Deps) {
    this.writer = new RowWriter({ store: deps.store, logger: deps.logger });
    this.recorder = new Recorder(this.writer, deps.logger, deps.causes);
    this.events = new ActorEvents(deps.logger);
    this.exits = new ExitWatch({ logger: deps.logger, causes: deps.causes, actorOf: (key) => this.root.system.get(key) as SandboxActor | ContainerActor | undefined });
    const committed = (key: string): Promise<void> => this.writer.committed(key);
    this.janitor = new Janitor({ store: deps.store, logger: deps.logger, images: deps.images, imagesInUse: () => this.imagesInUse(), faults: deps.faults });
    const container = containerMachine.provide({ actors: containerEffects(deps, this, this.janitor, committed) });
    const sandbox = sandboxMachine.provide({ actors: { ...sandboxEffects(deps, this.janitor, committed), container } });
    this.root = createActor(supervisorMachine.provide({ actors: { sandbox } }), {
      systemId: 'supervisor',
      inspect: (event) => this.onInspect(event),
    });
  }

  sandboxOf(sandboxId: string): SandboxContext | null {
    return this.view(sandboxId)?.context ?? null;
  }

  containerProcess(containerId: string): { pid: number; pidStartTime: string } | undefined {
    const view = this.containerView(containerId);
    const { pid, pidStartTime } = view?.context ?? {};
    return view?.state === 'RUNNING' && pid && pidStartTime ? { pid, pidStartTime } : undefined;
  }

  imagesInUse(): Set<string> {
    return new Set(this.containerViews().filter((v) => v.state !== 'REMOVING').map((v) => v.context.spec.imageId));
  }

  get causes(): Causes {
    return this.deps.causes;
  }

  get store(): Store {
    return this.deps.store;
  }

  /** The restore this daemon started with, actor by actor (the inspector's restore view). */
  restoreReport(): RestoreReport {
    return this.lastRestore;
  }

  /** Starts the root actor and restores every pod and container from the database. */
  async start(): Promise<void> {
    this.lastRestore = newRestoreReport();
    this.root.start();
    const rows = restorableRows(this.deps.store, this.deps.logger);
    // After the quarantine: the names of what it took are free again.
    this.registry.load(this.deps.store.names());
    // One bad row must not keep every other pod from coming back (containerd's recover() does
    // the same): it is logged, and a row that cannot be read is quarantined (restorableRows).
    await Promise.all(
      rows.map(async (row) => {
        try {
          await this.deps.causes.with('restore', () => this.restoreSandbox(row.id, row.state, row.context, row.containers));
        } catch (err) {
          this.lastRestore.failed.push({ sandboxId: row.id, error: err instanceof Error ? err.message : String(err) });
          this.deps.logger.error({ sandboxId: row.id, err }, 'restore failed for this pod; skipped');
        }
      }),
    );
    this.lastRestore.finishedAt = Date.now();
    this.root.send({ type: 'RESTORED' });
    // What a previous run left to clean (a crash after a reply, a failed unmount).
    this.janitor.resume();
    this.serving = true;
    this.deps.logger.info({ sandboxes: rows.length }, 'restore finished');
  }

  /** Stops serving and stops the actors; pods and conmon keep running (graceful SIGTERM). */
  async shutdown(settleMs = 10_000): Promise<void> {
    this.serving = false;
    this.writer.stop();
    this.exits.stopAll();
    // Let effects in flight reach a committed state, within a bound; restore handles the rest.
    const busy = [
      ...this.sandboxActors().map((a) => settle(a, settleMs, 'pod')),
      ...this.containerActors().map((a) => settle(a, settleMs, 'container')),
    ];
    await Promise.allSettled(busy);
    await this.janitor.finish(settleMs);
    this.root.send({ type: 'SHUTDOWN' });
  }

  /** Before a call that changes anything: the daemon serves, and its database takes writes. */
  assertServing(): void {
    if (!this.serving) throw new Unavailable('podchart is restoring its pods or shutting down; retry shortly');
    const failure = this.writer.failure();
    if (failure) throw new StoreWriteFailed(failure);
  }

  /**
   * Right after an event was sent: its transition was committed (in this turn's group commit),
   * or the call fails. A transition the database refused is held (actors/row-writer.ts): the
   * actor keeps it, and its effect waits, without acting, until the row is written; kubelet's
   * retry then finds the work done or going.
   */
  async assertCommitted(key: string): Promise<void> {
    await this.writer.flushed(key);
    const failure = this.writer.failure();
    if (failure) {
      throw new Unavailable(`podchart cannot write its state database (${failure}): the request was taken, but nothing is done until writes succeed again; free space or fix the disk under the daemon's rootDir, and retry`);
    }
  }

  /**
   * The two checks of a request (actor-util.ts `request`) on the actor under `key`; `settled`,
   * before a reply: the state it reports has been written (or held, which Status then says).
   */
  commitChecks(key: string): { sent(): Promise<void>; settled(): Promise<void> } {
    return { sent: () => this.assertCommitted(key), settled: () => this.writer.flushed(key) };
  }

  /** Why the daemon's database does not take writes (Status: RuntimeReady=false), or null. */
  writeFailure(): string | null {
    return this.writer.failure();
  }

  /** The root actor's state: RESTORING, SERVING or STOPPED (machines/supervisor.machine.ts). */
  rootState(): string {
    return stateName(this.root.getSnapshot());
  }

  sandboxActor(id: string): SandboxActor | undefined {
    return this.root.system.get(sandboxSystemId(id)) as SandboxActor | undefined;
  }

  containerActor(id: string): ContainerActor | undefined {
    return this.root.system.get(`container:${id}`) as ContainerActor | undefined;
  }

  sandboxActors(): SandboxActor[] {
    return this.actorsOf('sandbox') as SandboxActor[];
  }

  /** The ids of a kind's live actors, in the registry's order: the same list until one is added or removed. */
  liveIds(kind: ActorKind): readonly string[] {
    return this.registry.ids(kind);
  }

  containerActors(): ContainerActor[] {
    return this.actorsOf('container') as ContainerActor[];
  }

  /** Every live actor of a kind, in the registry's order. */
  private actorsOf(kind: ActorKind): unknown[] {
    const ids = this.registry.ids(kind);
    let systemIds = this.systemIdLists.get(ids);
    if (!systemIds) {
      systemIds = ids.map((id) => (kind === 'sandbox' ? sandboxSystemId(id) : `container:${id}`));
      this.systemIdLists.set(ids, systemIds);
    }
    const actors: unknown[] = [];
    for (const systemId of systemIds) {
      // The system's registry is untyped; the kind decided what was spawned under this id.
      const actor: unknown = this.root.system.get(systemId);
      if (actor) actors.push(actor);
    }
    return actors;
  }

  /** Resolves an id, name or unique prefix to a sandbox id, or null. */
  findSandbox(ref: string): string | null {
    const id = this.registry.resolve(ref, 'sandbox');
    return id && this.sandboxActor(id) ? id : null;
  }

  findContainer(ref: string): string | null {
    const id = this.registry.resolve(ref, 'container');
    return id && this.containerActor(id) ? id : null;
  }

  view(id: string): SandboxView | null {
    const actor = this.sandboxActor(id);
    if (!actor) return null;
    return sandboxView(id, actor.getSnapshot());
  }

  views(): SandboxView[] {
    return this.sandboxActors().map((actor) => {
      const snapshot = actor.getSnapshot();
      return sandboxView(snapshot.context.id, snapshot);
    });
  }

  containerView(id: string): ContainerView | null {
    const actor = this.containerActor(id);
    if (!actor) return null;
    return containerView(id, actor.getSnapshot());
  }

  containerViews(): ContainerView[] {
    const views: ContainerView[] = [];
    for (const actor of this.containerActors()) {
      const snapshot = actor.getSnapshot();
      const view = containerView(snapshot.context.id, snapshot);
      if (view) views.push(view);
    }
    return views;
  }

  /** Subscribes to container lifecycle events; returns the unsubscribe function. */
  onContainerEvent(listener: (event: ContainerLifecycleEvent) => void): () => void {
    return this.events.containers.on(listener);
  }

  /** Subscribes to every committed transition; returns the unsubscribe function. */
  onTransition(listener: (event: ActorTransition) => void): () => void {
    return this.events.transitions.on(listener);
  }

  history(id: string, limit = 20, before: number | null = null): Transition[] {
    return this.deps.store.history(id, limit, before);
  }

  /** The transitions one CRI call or restore set off, across actors, in order. */
  transitionsOf(cause: string): Transition[] {
    return this.deps.store.transitionsOf(cause);
  }

  /** Removed actors whose history is still kept, the most recently removed first. */
  removedActors(limit: number): RemovedActor[] {
    return this.deps.store.removedActors(limit);
  }

  /** A removed actor whose history is still kept (removedHistoryRetentionSeconds), or null. */
  removed(id: string): RemovedActor | null {
    return this.deps.store.removedActor(id);
  }

  /**
   * A new pod: reserve its name and persist the intent (the row), then spawn its actor, in
   * UNKNOWN. The sandbox service sends it CREATE.
   */
  spawnSandbox(spec: SandboxSpec, id: string): SandboxActor {
    const initial: SandboxContext = {
      id, spec, pid: null, pidStartTime: null, exit: null, tornDown: true, stopTimeoutSec: 10, lastError: null, containerIds: [], containerPhases: {}, network: null,
      resources: null, resourcesRequested: null,
    };
    this.deps.store.insertSandbox(id, spec.name, 'UNKNOWN', initial);
    this.registry.add({ id, name: spec.name, kind: 'sandbox' });
    this.recorder.seed(`sandbox:${id}`, 'UNKNOWN', initial);
    this.root.send({ type: 'SPAWN_SANDBOX', id, input: { id, spec } });
    const actor = this.sandboxActor(id);
    if (!actor) throw new EffectFailed(`sandbox actor ${id} did not start`);
    return actor;
  }

  /** Adds a container actor under its pod (the pod's chart refuses when the pod is not ready). */
  spawnContainer(sandboxId: string, event: Extract<SandboxEvent, { type: 'ADD_CONTAINER' }>): ContainerActor {
    const pod = this.sandboxActor(sandboxId);
    if (!pod) throw new NotFound(`pod sandbox ${sandboxId} not found`);
    this.recorder.seed(`container:${event.id}`, 'UNKNOWN', event.input);
    pod.send(event);
    const actor = this.containerActor(event.id);
    if (!actor) throw new EffectFailed(`container actor ${event.id} did not start`);
    return actor;
  }

  /** Brings one persisted pod back, with its containers, in the state observed on the host (actors/restore.ts). */
  private async restoreSandbox(id: string, persisted: string, context: SandboxContext, rows: RestorableRow['containers']): Promise<void> {
    const log = this.deps.logger.child({ sandboxId: id });
    this.recorder.seed(`sandbox:${id}`, persisted, context);
    this.root.send({ type: 'SPAWN_SANDBOX', id, input: context });
    const actor = this.sandboxActor(id);
    if (!actor) return;
    // Containers first: the pod is still UNKNOWN, and its stop or removal may need them.
    await Promise.all(
      rows.map(async (row) => {
        const ctx = row.context;
        this.recorder.seed(`container:${row.id}`, row.state, ctx);
        actor.send({ type: 'ADD_CONTAINER', id: row.id, input: ctx });
        const child = this.containerActor(row.id);
        if (!child) return;
        const started = performance.now();
        const seen = await observeContainer(row.state, ctx, this.deps.config);
        const events = decideContainer(row.state, ctx, seen, nowNs());
        for (const event of events) child.send(event);
        const entry: RestoreEntry = {
          kind: 'container', id: row.id, sandboxId: id, persisted: row.state, observed: seen, decided: events.map((e) => e.type),
          now: stateName(child.getSnapshot()), why: containerRestoreWhy(row.state, ctx, seen), ms: performance.now() - started,
        };
        this.lastRestore.entries.push(entry);
        log.info({ containerId: row.id, persisted: entry.persisted, seen, decided: entry.decided, now: entry.now }, 'container restored');
      }),
    );
    const started = performance.now();
    const seen = await observePod(persisted, context);
    const events = decidePod(persisted, context, seen, nowNs());
    for (const event of events) actor.send(event);
    const entry: RestoreEntry = {
      kind: 'sandbox', id, sandboxId: id, persisted, observed: seen, decided: events.map((e) => e.type),
      now: stateName(actor.getSnapshot()), why: podRestoreWhy(persisted, context, seen), ms: performance.now() - started,
    };
    this.lastRestore.entries.push(entry);
    log.info({ persisted, seen, decided: entry.decided, now: entry.now }, 'restored');
  }

  /** Every actor snapshot passes here, synchronously: persist it, follow its exits, tell listeners. */
  private onInspect(event: InspectionEvent): void {
    const recorded = this.recorder.record(event);
    if (!recorded) return;
    const { kind, id, sandboxId, transition, lifecycle } = recorded;
    if (recorded.state === 'removed') this.registry.remove(id);
    else if (kind === 'sandbox') {
      // Also for an unchanged row: an actor restored to RUNNING needs its watch.
      this.exits.followPod(id, recorded.snapshot as SandboxSnapshot);
    } else {
      this.exits.followContainer(id, recorded.snapshot as ContainerSnapshot);
    }
    if (transition) this.events.transitions.emit({ ...transition, kind, sandboxId });
    if (recorded.state === 'removed' && kind === 'sandbox') this.root.send({ type: 'FORGET_SANDBOX', id });
    if (lifecycle) this.events.containers.emit({ containerId: id, sandboxId, type: lifecycle, at: nowNs() });
  }
}
