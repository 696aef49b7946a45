/**
 * The spawner helper: a small Node process the daemon forks once, which starts every short-lived
 * program (runc, ip, mount, CNI plugins) on its behalf and sends back what they printed.
 *
 * Why a process of its own: fork() copies the forking process's page tables while holding its
 * memory map, so a spawn from the daemon (150-250 MB of RSS under load) stopped its event loop for
 * 3-10 ms each time, about 30 % of its busy time in the 50-client soak (issue 12, item 10). Forked
 * from this process, a spawn costs about 1 ms, on the other core, and the daemon's loop goes on.
 * It holds no state: when the daemon goes (even by kill -9), its IPC channel closes and it exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { after } from './long-timer.js';
import { parseSyncMessage, type ByteOutput, type FromHelper, type SpawnRequest, type SpawnResult, type ToHelper } from './spawner-protocol.js';

/** Output kept per stream; more is dropped and the drop is said at the end. */
const OUTPUT_CAP = 16 * 1024 * 1024;
/** How long a program has after SIGTERM (its deadline) before SIGKILL, as execa does. */
const FORCE_KILL_AFTER_MS = 5_000;

interface Running {
  cancel: () => void;
  signal: (signal: NodeJS.Signals) => void;
}

const running = new Map<number, Running>();

function send(message: FromHelper): void {
  if (process.connected) process.send?.(message);
}

function reply(id: number, result: SpawnResult): void {
  running.delete(id);
  send({ id, result });
}

function collector(): { push: (chunk: string) => void; text: () => string } {
  let text = '';
  let dropped = 0;
  return {
    push: (chunk) => {
      if (text.length + chunk.length <= OUTPUT_CAP) text += chunk;
      else dropped += chunk.length;
    },
    text: () => (dropped > 0 ? `${text}\n[${dropped} more characters not kept]` : text),
  };
}

/** stdout and stderr as bytes, sharing one budget (ExecSync's reply limit covers both). */
function byteCollector(budget: number): { stdout: (chunk: Buffer) => void; stderr: (chunk: Buffer) => void; output: () => ByteOutput } {
  let remaining = budget;
  const kept = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  const dropped = { stdout: 0, stderr: 0 };
  const push = (stream: 'stdout' | 'stderr') => (chunk: Buffer): void => {
    const part = chunk.length > remaining ? chunk.subarray(0, remaining) : chunk;
    dropped[stream] += chunk.length - part.length;
    remaining -= part.length;
    if (part.length > 0) kept[stream].push(part);
  };
  return { stdout: push('stdout'), stderr: push('stderr'), output: () => ({ stdout: Buffer.concat(kept.stdout), stderr: Buffer.concat(kept.stderr), dropped }) };
}

/** A `syncPipe` program (conmon): answered once it exited and its sync pipe spoke or closed. */
function runWithSyncPipe(id: number, req: SpawnRequest, child: ChildProcess): void {
  if (req.reportPid && child.pid !== undefined) send({ id, pid: child.pid });
  const pipe = child.stdio[3] as Readable | null | undefined;
  let sync = '';
  let spoke = !pipe;
  let exit: { code: number | null; signal: string | null } | null = null;
  let timedOut = false;
  let settled = false;
  // Any length, as for every program: a deadline past 24.8 days would overflow setTimeout.
  const cancelTimer = after(req.timeoutMs, () => {
    timedOut = true;
    if (req.processGroup && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // the group is already gone
      }
    }
    settle();
  });
  const settle = (spawnError?: string): void => {
    if (settled || (!spawnError && !timedOut && !(exit && spoke))) return;
    settled = true;
    cancelTimer();
    // conmon keeps the pipe open for the container's life (it would report the exit there too).
    pipe?.destroy();
    reply(id, { stdout: '', stderr: '', sync, code: exit?.code ?? null, signal: exit?.signal ?? null, timedOut, canceled: false, ...(spawnError ? { spawnError } : {}) });
  };
  pipe?.on('data', (chunk: Buffer) => {
    sync += chunk.toString();
    if (parseSyncMessage(sync)) spoke = true;
    settle();
  });
  for (const event of ['end', 'close', 'error']) {
    pipe?.on(event, () => {
      spoke = true;
      settle();
    });
  }
  child.on('error', (e) => settle(e.message));
  child.on('exit', (code, signal) => {
    exit = { code, signal };
    settle();
  });
  running.set(id, { cancel: () => undefined, signal: (signal) => void child.kill(signal) });
}

function runOne(id: number, req: SpawnRequest): void {
  let child;
  try {
    child = spawn(req.file, [...req.args], {
      env: req.env ?? process.env,
      stdio: req.syncPipe ? ['ignore', 'ignore', 'ignore', 'pipe'] : [req.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: req.processGroup === true,
    });
  } catch (err) {
    reply(id, { stdout: '', stderr: '', code: null, signal: null, timedOut: false, canceled: false, spawnError: (err as Error).message });
    return;
  }
  if (req.syncPipe) {
    runWithSyncPipe(id, req, child);
    return;
  }
  const { stdout: out, stderr: err } = child;
  if (!out || !err) throw new Error('spawn gave no stdout or stderr pipe'); // stdio says 'pipe'
  if (req.reportPid && child.pid !== undefined) send({ id, pid: child.pid });
  const stdout = collector();
  const stderr = collector();
  const bytes = req.byteBudget === undefined ? null : byteCollector(req.byteBudget);
  let timedOut = false;
  let canceled = false;
  let settled = false;
  const timers: (() => void)[] = [];
  const settle = (code: number | null, signal: string | null, spawnError?: string): void => {
    if (settled) return;
    settled = true;
    for (const cancel of timers) cancel();
    reply(id, { stdout: stdout.text(), stderr: stderr.text(), ...(bytes ? { bytes: bytes.output() } : {}), code, signal, timedOut, canceled, ...(spawnError ? { spawnError } : {}) });
  };
  const stop = (): void => {
    if (req.processGroup && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // the group is already gone
      }
      // Exited already, but something it started outside its group may hold stdout open.
      if (child.exitCode !== null || child.signalCode !== null) abandonPipes(child.exitCode, child.signalCode);
      return;
    }
    child.kill('SIGTERM');
    timers.push(after(FORCE_KILL_AFTER_MS, () => child.kill('SIGKILL')));
  };
  const abandonPipes = (code: number | null, signal: string | null): void => {
    out.destroy();
    err.destroy();
    settle(code, signal);
  };
  if (bytes) {
    out.on('data', bytes.stdout);
    err.on('data', bytes.stderr);
  } else {
    out.setEncoding('utf8').on('data', stdout.push);
    err.setEncoding('utf8').on('data', stderr.push);
  }
  child.on('error', (e) => settle(null, null, e.message));
  // 'close' waits for the pipes to end, which hold the whole answer; after a kill, do not wait on
  // pipes that a process outside the group (one that called setsid) may still hold.
  child.on('close', (code, signal) => settle(code, signal));
  child.on('exit', (code, signal) => {
    if (timedOut || canceled) abandonPipes(code, signal);
  });
  // Any length: a deadline past 24.8 days would overflow setTimeout.
  timers.push(
    after(req.timeoutMs, () => {
      timedOut = true;
      stop();
    }),
  );
  running.set(id, {
    cancel: () => {
      canceled = true;
      stop();
    },
    signal: (signal) => {
      child.kill(signal);
    },
  });
  if (child.stdin) {
    child.stdin.on('error', () => {
      // EPIPE: the program exited without reading its input; its exit status tells why
    });
    child.stdin.end(req.input);
  }
}

process.on('message', (message: ToHelper) => {
  if (message.kind === 'spawn') runOne(message.id, message.request);
  else if (message.kind === 'cancel') running.get(message.id)?.cancel();
  else running.get(message.id)?.signal(message.signal);
});
// The daemon is gone (exited, or killed with -9): nothing is left to answer to.
process.on('disconnect', () => process.exit(0));
