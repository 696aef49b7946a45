/**
 * Where a call's time goes (issue 14, item 3): the programs it ran, the waits and the database
 * commits it made, each timed and handed to whoever observes (the daemon, which files them by
 * CRI method in /metrics, and the bench, which prints them per operation).
 *
 * Module state on purpose, as in spawner.ts: the programs of every daemon instance in the process
 * go through the one helper, so the observers are the process's too. An observer is called as a
 * step starts, in the caller's async context (where the daemon reads which call it serves), and
 * returns what to call with the step's duration, or nothing to let it pass.
 */
import { basename } from 'node:path';

/** `cause`: the call the step serves, when the step knows it better than its async context does. */
export type StepObserver = (step: string, cause: string | null | undefined) => ((ms: number) => void) | undefined;

const observers = new Set<StepObserver>();

/** Adds an observer; returns its removal. */
export function observeSteps(observer: StepObserver): () => void {
  observers.add(observer);
  return () => void observers.delete(observer);
}

/** Marks a step's start; call the result at its end (a second call does nothing). */
export function stepStarted(step: string, cause?: string | null): () => void {
  if (observers.size === 0) return () => undefined;
  const started = performance.now();
  const finishers: ((ms: number) => void)[] = [];
  for (const observe of observers) {
    const finish = observe(step, cause);
    if (finish) finishers.push(finish);
  }
  let done = false;
  return () => {
    if (done) return;
    done = true;
    const ms = performance.now() - started;
    for (const finish of finishers) finish(ms);
  };
}

/** Times `work` as one step. */
export async function timedStep<T>(step: string, work: () => Promise<T>): Promise<T> {
  const finish = stepStarted(step);
  try {
    return await work();
  } finally {
    finish();
  }
}

/** Runtimes and ip whose subcommand says what the spawn was for ("runc create", "ip netns"). */
const WITH_SUBCOMMAND = new Set(['runc', 'crun', 'runsc', 'ip']);

/**
 * A program's step name: "exec " and its file's name, with the subcommand for runtimes and ip.
 * A few names per program, never its arguments (ids, paths, and what could be a secret).
 */
export function programStep(file: string, args: readonly string[]): string {
  const name = basename(file);
  const runtime = WITH_SUBCOMMAND.has(name) || /^runc|^crun/.test(name);
  const sub = runtime ? args.find((a) => !a.startsWith('-')) : undefined;
  return `exec ${name}${sub && /^[a-z-]{1,20}$/.test(sub) ? ` ${sub}` : ''}`;
}
