/**
 * Runs a short-lived program through the spawner helper (host/spawner-child.ts, which says why
 * it exists): the daemon forks the helper once, lazily, and sends it one message per program.
 *
 * The helper holds nothing the daemon needs: if it dies, the calls in flight fail with a message
 * that says so (the program may or may not have run; every caller's effect is idempotent), and the
 * next call forks a new one. While no call is in flight it does not keep the daemon's loop alive.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EffectFailed } from '../errors/catalogue.js';
import type { FromHelper, SpawnRequest, SpawnResult, ToHelper } from './spawner-protocol.js';
import { programStep, stepStarted } from './steps.js';

export type { SpawnRequest, SpawnResult } from './spawner-protocol.js';

interface Pending {
  request: SpawnRequest;
  resolve: (r: SpawnResult) => void;
  reject: (e: Error) => void;
  /** Called with the pid once the program runs (`reportPid`), or null if it never did. */
  started: (pid: number | null) => void;
}

/** A program in the helper: its pid (when asked for), ways to stop it, and its result. */
export interface RunningProgram {
  readonly pid: Promise<number | null>;
  /** Sends the program this signal, and nothing more. */
  readonly signal: (signal: NodeJS.Signals) => void;
  /** Stops it as its deadline would (the result then says `canceled`). */
  readonly cancel: () => void;
  readonly done: Promise<SpawnResult>;
}

// Module state on purpose, as in spawn-turn.ts: the helper serves the process (every daemon
// instance and test in it), and one helper is the point: each would cost a Node process.
let helper: ChildProcess | null = null;
const pending = new Map<number, Pending>();
let nextId = 1;

function startHelper(): ChildProcess {
  const child = fork(new URL('./spawner-child.js', import.meta.url), [], {
    // Not the daemon's flags (--cpu-prof, an inspector port); a small young generation, since
    // it holds only the output of programs in flight.
    execArgv: ['--max-semi-space-size=1'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  child.on('message', (m: FromHelper) => {
    const p = pending.get(m.id);
    if (!p) return;
    if ('pid' in m) {
      p.started(m.pid);
      return;
    }
    pending.delete(m.id);
    idle(child);
    p.started(null);
    p.resolve(m.result);
  });
  child.on('exit', (code, signal) => {
    if (helper === child) helper = null;
    const why = `the spawner helper exited (${signal ?? `code ${code}`})`;
    for (const [id, p] of pending) {
      pending.delete(id);
      p.started(null);
      p.reject(new EffectFailed(`${p.request.file} ${p.request.args.join(' ')}: ${why}; it may or may not have run`));
    }
  });
  child.on('error', () => {
    // a failed send or kill: 'exit' follows and fails what was in flight
  });
  return child;
}

/** Lets the daemon exit while the helper waits for work, and keeps it alive while a call runs. */
function idle(child: ChildProcess): void {
  if (pending.size > 0) return;
  child.unref();
  child.channel?.unref();
}

/** Starts the helper now (the daemon at start: its first spawn then waits for no fork of Node). */
export function startSpawner(): void {
  helper ??= startHelper();
  idle(helper);
}

/** Starts a program in the helper and answers at once; `done` settles as spawnProgram's promise does. */
export function startProgram(request: SpawnRequest): RunningProgram {
  const child = (helper ??= startHelper());
  child.ref();
  child.channel?.ref();
  const id = nextId++;
  const stepDone = stepStarted(programStep(request.file, request.args));
  let started: (pid: number | null) => void = () => undefined;
  const pid = new Promise<number | null>((resolve) => (started = resolve));
  const done = new Promise<SpawnResult>((resolve, reject) => {
    pending.set(id, { request, resolve, reject, started });
    child.send({ kind: 'spawn', id, request } satisfies ToHelper);
  }).finally(stepDone);
  const tell = (message: ToHelper): void => {
    if (pending.has(id) && child.connected) child.send(message);
  };
  return { pid, done, signal: (sig) => tell({ kind: 'signal', id, signal: sig }), cancel: () => tell({ kind: 'cancel', id }) };
}

export function spawnProgram(request: SpawnRequest, signal?: AbortSignal): Promise<SpawnResult> {
  const { cancel, done } = startProgram(request);
  if (!signal) return done;
  if (signal.aborted) cancel();
  else signal.addEventListener('abort', cancel, { once: true });
  return done.finally(() => signal.removeEventListener('abort', cancel));
}

/** Stops the helper (tests, and the daemon's shutdown); a later call starts a new one. */
export function stopSpawner(): void {
  helper?.kill('SIGTERM');
  helper = null;
}
