/**
 * The supervisor's two listener buses: container lifecycle events (CRI GetContainerEvents) and
 * committed transitions (the inspector's live view). A listener that throws is logged, never
 * allowed to stop the actor whose snapshot it was told about.
 */
import type { Logger } from 'pino';
import type { Transition } from '../storage/store.js';

/** A container lifecycle event, as CRI's GetContainerEvents streams them. */
export interface ContainerLifecycleEvent {
  containerId: string;
  sandboxId: string;
  type: 'CONTAINER_CREATED_EVENT' | 'CONTAINER_STARTED_EVENT' | 'CONTAINER_STOPPED_EVENT' | 'CONTAINER_DELETED_EVENT';
  /** Nanoseconds since the epoch. */
  at: string;
}

/** A committed transition of any actor, for the inspector's live view. */
export interface ActorTransition extends Transition {
  kind: 'sandbox' | 'container';
  /** The pod of a container (its own id for a pod). */
  sandboxId: string;
}

class Bus<E> {
  private readonly listeners = new Set<(event: E) => void>();

  constructor(
    private readonly logger: Logger,
    private readonly what: string,
  ) {}

  /** Subscribes; returns the unsubscribe function. */
  on(listener: (event: E) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: E): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.logger.warn({ err }, `${this.what} listener failed`);
      }
    }
  }
}

export class ActorEvents {
  readonly containers: Bus<ContainerLifecycleEvent>;
  readonly transitions: Bus<ActorTransition>;

  constructor(logger: Logger) {
    this.containers = new Bus(logger, 'container event');
    this.transitions = new Bus(logger, 'transition');
  }
}
