/**
 * One CRI call's effects over every actor it touched, as a sequence (issue 15, item 3): a pod stop
 * → its containers' stops → the pause's exit and CNI DEL. Each step is a transition the call set
 * off; its duration is how long its actor spent in the state it left, within this call (from its
 * previous step of the same call, or from the call's first step), so the slowest step is the one
 * that held the call up.
 */
import type { Transition } from '../storage/store.js';

export interface TimelineStep {
  actorId: string;
  kind: 'sandbox' | 'container' | 'unknown';
  event: string;
  from: string | null;
  to: string;
  at: number;
  /** Milliseconds since the call's first step. */
  offsetMs: number;
  /** Milliseconds this step took (see above). */
  ms: number;
  error: string | null;
}

export interface Timeline {
  cause: string;
  steps: TimelineStep[];
  /** The index of the slowest step, or null when there are none. */
  slowest: number | null;
}

export function timeline(cause: string, transitions: readonly Transition[], kindOf: (actorId: string) => TimelineStep['kind']): Timeline {
  const start = transitions[0]?.at ?? 0;
  const lastAt = new Map<string, number>();
  const steps = transitions.map((t): TimelineStep => {
    const since = lastAt.get(t.actorId) ?? start;
    lastAt.set(t.actorId, t.at);
    return { actorId: t.actorId, kind: kindOf(t.actorId), event: t.event, from: t.from, to: t.to, at: t.at, offsetMs: t.at - start, ms: t.at - since, error: t.error };
  });
  let slowest: number | null = null;
  steps.forEach((s, i) => {
    if (slowest === null || s.ms > (steps[slowest]?.ms ?? 0)) slowest = i;
  });
  return { cause, steps, slowest };
}
