/**
 * The last restore, actor by actor (issue 15, item 5): what was persisted, what was observed on
 * the host, the events decided and why, and how long each took. Kept in memory by the running
 * daemon: it is the restore that made the actors it runs.
 */
import type { ContainerObservation, PodObservation } from './restore.js';

export interface RestoreEntry {
  kind: 'sandbox' | 'container';
  id: string;
  sandboxId: string;
  persisted: string;
  observed: ContainerObservation | PodObservation;
  decided: string[];
  /** The state the actor is in once the events were taken. */
  now: string;
  why: string;
  ms: number;
}

export interface RestoreReport {
  /** Milliseconds since the epoch. */
  startedAt: number;
  finishedAt: number | null;
  entries: RestoreEntry[];
  /** Pods whose restore threw (logged), with the error's message. */
  failed: { sandboxId: string; error: string }[];
}

export function newRestoreReport(): RestoreReport {
  return { startedAt: Date.now(), finishedAt: null, entries: [], failed: [] };
}
