/** Small helpers shared by the sandbox and container sides of the supervisor. */
import { fromPromise, waitFor, type AnyActorRef, type AnyMachineSnapshot, type AnyStateMachine, type Actor } from 'xstate';
import { DeadlineExceeded, EffectFailed, PodchartError, Refused, type CodeNumber } from '../errors/catalogue.js';
import type { LastError } from '../machines/last-error.js';

/** The full state path of a snapshot, e.g. "PENDING.creating". */
export function stateName(snapshot: { value: unknown }): string {
  const walk = (v: unknown): string =>
    typeof v === 'string' ? v : Object.entries(v as Record<string, unknown>).map(([k, sub]) => `${k}.${walk(sub)}`)[0] ?? '';
  return walk(snapshot.value);
}

/** Effect completions read better as "createSandbox.done" than as xstate's internal event names. */
export function eventLabel(type: string): string {
  const done = /^xstate\.done\.actor\.(.+)$/.exec(type);
  if (done) return `${done[1]}.done`;
  const failed = /^xstate\.error\.actor\.(.+)$/.exec(type);
  if (failed) return `${failed[1]}.error`;
  const after = /^xstate\.after\.([^.]+)\./.exec(type);
  if (after) return `${after[1]} passed`;
  return type;
}

/** The id the supervisor gave an actor ("sandbox:<id>", "container:<id>"), or "". */
export function actorKey(ref: unknown): string {
  return (ref as Partial<AnyActorRef>).id ?? '';
}

/** Any machine actor; callers narrow the snapshot back to their chart's type. */
type MachineActor = Actor<AnyStateMachine>;

/** Waits until the actor has no work in flight (its chart's `busy` tag). The work is not cancelled by a timeout. */
export async function settle<S extends AnyMachineSnapshot>(actor: MachineActor, timeoutMs: number, what: string): Promise<S> {
  try {
    const idle = (s: AnyMachineSnapshot): boolean => s.status === 'done' || !s.hasTag('busy');
    return (await waitFor(actor, idle, { timeout: timeoutMs })) as S;
  } catch (err) {
    if (err instanceof Error && /timeout/i.test(err.message)) {
      throw new DeadlineExceeded(`${what} is still ${stateName(actor.getSnapshot())} after ${timeoutMs} ms; the operation continues in the background`);
    }
    throw err;
  }
}

/**
 * Sends one event if the chart accepts it, then waits for it to settle. While work is in flight
 * that the chart will not take the event during (RemoveContainer during a stop), the caller waits
 * for that work to settle, within its deadline, and asks again: containerd and CRI-O serialise
 * such calls the same way, and CRI makes Stop and Remove idempotent, so a second caller must not
 * get an error for the first one's work. A call the chart joins (REMOVE while REMOVING) settles
 * on the first one's outcome. A refusal once idle names the state and why, for the person
 * reading the error. A done actor is returned as is: the thing is gone. `commits.sent` runs right
 * after the event is taken (the supervisor's check that its new state was committed), and
 * `commits.settled` before the reply (the state it reports is written).
 */
export async function request<S extends AnyMachineSnapshot>(
  actor: MachineActor,
  event: { type: string },
  timeoutMs: number,
  what: string,
  why: (state: string) => string,
  commits: { sent(): Promise<void>; settled(): Promise<void> } = NO_COMMITS,
): Promise<S> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = actor.getSnapshot() as AnyMachineSnapshot;
    if (now.status === 'done') return now as S;
    if (now.can(event)) break;
    if (!now.hasTag('busy')) {
      throw new Refused(`${what} cannot ${event.type.toLowerCase()} now: ${why(stateName(now))}`);
    }
    await settle(actor, Math.max(0, deadline - Date.now()), what);
  }
  actor.send(event);
  await commits.sent();
  const settled = await settle<S>(actor, Math.max(0, deadline - Date.now()), what);
  await commits.settled();
  return settled;
}

const NO_COMMITS = { sent: async (): Promise<void> => undefined, settled: async (): Promise<void> => undefined };

/** Nanoseconds since the epoch, as CRI's int64 timestamps want them. */
export function nowNs(): string {
  return (BigInt(Date.now()) * 1_000_000n).toString();
}

/** Resolves once an actor's rows are on disk (actors/persist.ts); keyed "sandbox:<id>", "container:<id>". */
export type CommitGate = (key: string) => Promise<void>;

/**
 * Runs an effect once the state that invoked it is committed. The supervisor writes that state
 * synchronously, in XState's inspection callback, after the effect's actor has started: one
 * microtask later the write has happened, and when the database refused it, the gate holds the
 * effect until the held row is written (issue 12, item 1). An effect whose state was left
 * meanwhile (its actor stopped) never runs: the intent is always persisted before the effect.
 */
export async function afterCommit<T>(gate: CommitGate, key: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  await Promise.resolve();
  await gate(key);
  if (signal.aborted) throw new Error(`the effect of ${key} was cancelled before it ran: its state was left while the database refused writes`);
  return fn();
}

/** Told how long each effect ran, and whether it succeeded (the daemon's podchart_effect_duration_seconds). */
export type EffectObserver = (effect: string, seconds: number, ok: boolean) => void;

/**
 * An effect of a chart (`name`, as the machine invokes it), run once its actor's state is
 * committed (afterCommit), and timed for the observer from that point: the wait for the commit is
 * the database's time, not the effect's.
 */
export function effectActor<TInput, TOutput>(name: string, gate: CommitGate, keyOf: (input: TInput) => string, run: (input: TInput) => Promise<TOutput>, observe?: EffectObserver) {
  return fromPromise<TOutput, TInput>(({ input, signal }) =>
    afterCommit(gate, keyOf(input), signal, async () => {
      const started = performance.now();
      let ok = false;
      try {
        const output = await run(input);
        ok = true;
        return output;
      } finally {
        observe?.(name, (performance.now() - started) / 1000, ok);
      }
    }),
  );
}

/**
 * The error a CRI call gets when its actor's work failed: the code the chart kept with the failure
 * (INVALID_ARGUMENT for a bad capability, UNAVAILABLE from CNI; issue 13, item 2), or INTERNAL
 * when it kept none and only the state it ended in says what happened.
 */
export function actorFailure(what: string, lastError: LastError | null, state: string, after = ''): PodchartError {
  if (!lastError) return new EffectFailed(`${what}: it ended in state ${state}${after}`);
  return new PodchartError(lastError.code as CodeNumber, `${what}: ${lastError.message}${after}`);
}

/**
 * Runs independent steps of one effect at once and waits for every one of them, then fails with
 * the first failure: an effect that fails must not leave a step of its own still running, or a
 * retry of the effect could run beside it.
 */
export async function allSteps(steps: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(steps);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
