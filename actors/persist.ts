/**
 * From actor snapshots to rows and history. Every snapshot of a pod or container actor passes
 * here, synchronously, from XState's inspection callback: a changed one is written as the actor's
 * row (by the RowWriter, which holds what the database refuses), and a move to another state, an
 * effect failure or a restore decision becomes a history row with its cause.
 *
 * Dedupe: XState reports a snapshot for every event and every effect it starts, most of them
 * unchanged; a row is written only when the state or the context differs from the last one saved.
 */
import type { AnyMachineSnapshot, InspectionEvent } from 'xstate';
import type { Logger } from 'pino';
import type { SandboxContext } from '../machines/sandbox.types.js';
import type { ContainerContext } from '../machines/container.types.js';
import type { ActorKind, Transition } from '../storage/store.js';
import { RowWriter } from './row-writer.js';
import type { Causes } from './cause.js';
import { actorKey, eventLabel, stateName } from './actor-util.js';
import type { ContainerLifecycleEvent } from './actor-events.js';

/** A pod's or a container's snapshot, with its context typed (AnyMachineSnapshot's is `any`). */
type ActorSnapshot = Omit<AnyMachineSnapshot, 'context'> & { context: SandboxContext | ContainerContext };

/** What one snapshot amounted to, for the supervisor to act on. */
export interface Recorded {
  kind: ActorKind;
  id: string;
  /** The pod of a container (its own id for a pod). */
  sandboxId: string;
  /** The snapshot's state path ("STOPPING.pause"), or "removed" when the actor is done. */
  state: string;
  context: SandboxContext | ContainerContext;
  /** The snapshot itself, for the exit watch. */
  snapshot: ActorSnapshot;
  /** The history row written, when the snapshot is news. */
  transition: Transition | null;
  /** The CRI container event it is, if any. */
  lifecycle: ContainerLifecycleEvent['type'] | null;
}

/** Which transitions CRI calls events: the actors' own history, seen from kubelet. */
function lifecycleEvent(from: string | undefined, to: string): ContainerLifecycleEvent['type'] | null {
  if (to === 'CREATED' && from === 'CREATING') return 'CONTAINER_CREATED_EVENT';
  if (to === 'RUNNING' && from === 'STARTING') return 'CONTAINER_STARTED_EVENT';
  if (to === 'EXITED' && from !== 'EXITED') return 'CONTAINER_STOPPED_EVENT';
  if (to === 'removed') return 'CONTAINER_DELETED_EVENT';
  return null;
}

export class Recorder {
  /** Last saved state and context (JSON) per actor key ("sandbox:<id>", "container:<id>"). */
  private readonly saved = new Map<string, { state: string; context: string }>();
  /** The cause of each actor's latest outside event; its effects' completions inherit it. */
  private readonly causes = new Map<string, string>();

  constructor(
    private readonly writer: RowWriter,
    private readonly logger: Logger,
    /** The cause of the event being handled now (a CRI call, restore, an exit watch). */
    private readonly causeOf: Causes,
  ) {}

  /** What is already on disk for an actor about to start (a new row, or one restored). */
  seed(key: string, state: string, context: unknown): void {
    this.saved.set(key, { state, context: JSON.stringify(context) });
  }

  /** Writes what a snapshot changed; null for what is not a pod or container snapshot, or no news at all. */
  record(event: InspectionEvent): Recorded | null {
    if (event.type !== '@xstate.snapshot') return null;
    const key = actorKey(event.actorRef);
    const kind: ActorKind | null = key.startsWith('sandbox:') ? 'sandbox' : key.startsWith('container:') ? 'container' : null;
    if (!kind) return null;
    const id = key.slice(kind.length + 1);
    const snapshot = event.snapshot as ActorSnapshot;
    const sandboxId = kind === 'sandbox' ? id : (snapshot.context as ContainerContext).spec.sandboxId;
    const previous = this.saved.get(key);
    // Fields of the actor's log lines, not a child logger: most snapshots log nothing.
    const actorField = kind === 'sandbox' ? { sandboxId: id } : { containerId: id };
    const label = eventLabel(event.event.type);
    if (snapshot.status === 'done') {
      // The move to "removed" is the last row of a history kept for removedHistoryRetentionSeconds.
      const final: Transition = {
        actorId: id, event: label, from: previous?.state ?? null, to: 'removed', at: Date.now(), error: null,
        cause: this.causeOf.current() ?? this.causes.get(key) ?? null,
      };
      this.writer.remove(kind, id, final, final.at);
      this.saved.delete(key);
      this.causes.delete(key);
      this.logger.info({ ...actorField, event: final.event, from: previous?.state }, `${kind} removed`);
      return { kind, id, sandboxId, state: 'removed', context: snapshot.context, snapshot, transition: final, lifecycle: kind === 'container' ? 'CONTAINER_DELETED_EVENT' : null };
    }
    const to = stateName(snapshot);
    const unchanged: Recorded = { kind, id, sandboxId, state: to, context: snapshot.context, snapshot, transition: null, lifecycle: null };
    // The initial UNKNOWN of a restored actor is not news: the row keeps its last real state.
    if (to === 'UNKNOWN' && previous) return null;
    const context = JSON.stringify(snapshot.context);
    // An outside event (not an effect's completion) carries the cause of the call that sent it.
    const outside = !event.event.type.startsWith('xstate.');
    const restoring = outside && this.causeOf.current() === 'restore';
    if (previous && previous.state === to && previous.context === context && !restoring) return unchanged;
    const changed = previous?.state !== to;
    const isError = label.endsWith('.error');
    const cause = (outside ? this.causeOf.current() : null) ?? this.causes.get(key) ?? null;
    // Only an event that moved the actor hands its cause on to the effects it started.
    if (outside && cause && changed) this.causes.set(key, cause);
    // Restore's decisions are history too, even when the observed state is the persisted one.
    const restored = outside && cause === 'restore';
    const transition: Transition | null = changed || isError || restored
      ? { actorId: id, event: label, from: previous?.state ?? null, to, at: Date.now(), error: isError ? (snapshot.context.lastError?.message ?? null) : null, cause }
      : null;
    this.writer.save(kind, id, to, snapshot.context, transition);
    this.saved.set(key, { state: to, context });
    if (transition) this.logger.info({ ...actorField, event: label, from: transition.from, to, error: transition.error ?? undefined }, 'transition');
    const lifecycle = kind === 'container' && changed ? lifecycleEvent(previous?.state, to) : null;
    return { ...unchanged, transition, lifecycle };
  }
}
