/**
 * What CRI handlers, the inspector and the CLI read about an actor: its typed state path, the
 * chart's tags that matter to CRI, and its context. Built from a snapshot, never stored: each is
 * kept beside the snapshot it was built from, which XState replaces rather than changes, so the
 * polled List and Status calls (issue 14: ≤ 1 ms with 100 pods) do not rebuild it on every poll.
 */
import type { Actor, SnapshotFrom } from 'xstate';
import type { sandboxMachine, SandboxStatePath } from '../machines/sandbox.machine.js';
import type { containerMachine, ContainerStatePath, CriContainerState } from '../machines/container.machine.js';
import type { SandboxContext } from '../machines/sandbox.types.js';
import type { ContainerContext } from '../machines/container.types.js';
import { stateName } from './actor-util.js';

export type SandboxActor = Actor<typeof sandboxMachine>;
export type SandboxSnapshot = SnapshotFrom<typeof sandboxMachine>;
export type ContainerActor = Actor<typeof containerMachine>;
export type ContainerSnapshot = SnapshotFrom<typeof containerMachine>;

export interface SandboxView {
  readonly id: string;
  /** Full state path, e.g. "PENDING.creating". */
  readonly state: SandboxStatePath;
  /** The chart's `ready` tag: CRI's SANDBOX_READY. */
  readonly ready: boolean;
  readonly context: SandboxContext;
}

export interface ContainerView {
  readonly id: string;
  readonly state: ContainerStatePath;
  /** The CRI state its chart state is tagged with, or null (REMOVE_FAILED: see criContainerState). */
  readonly criState: CriContainerState | null;
  readonly context: ContainerContext;
}

const CRI_CONTAINER_STATES: readonly CriContainerState[] = ['CONTAINER_CREATED', 'CONTAINER_RUNNING', 'CONTAINER_EXITED', 'CONTAINER_UNKNOWN'];

// stateName walks the snapshot's own value, so its result is a path of that chart by construction.

const sandboxViews = new WeakMap<SandboxSnapshot, SandboxView>();
const containerViews = new WeakMap<ContainerSnapshot, ContainerView>();

export function sandboxView(id: string, snapshot: SandboxSnapshot): SandboxView {
  let view = sandboxViews.get(snapshot);
  if (view?.id !== id) {
    view = { id, state: stateName(snapshot) as SandboxStatePath, ready: snapshot.hasTag('ready'), context: snapshot.context };
    sandboxViews.set(snapshot, view);
  }
  return view;
}

/** Null once the container is removed (its actor is done). */
export function containerView(id: string, snapshot: ContainerSnapshot): ContainerView | null {
  if (snapshot.status === 'done') return null;
  let view = containerViews.get(snapshot);
  if (view?.id !== id) {
    const criState = CRI_CONTAINER_STATES.find((tag) => snapshot.hasTag(tag)) ?? null;
    view = { id, state: stateName(snapshot) as ContainerStatePath, criState, context: snapshot.context };
    containerViews.set(snapshot, view);
  }
  return view;
}
