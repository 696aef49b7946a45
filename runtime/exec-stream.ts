/**
 * A streaming exec (CRI Exec): `runc exec` of a command in a running container with the
 * container's process settings, its stdio handed to the caller, and its exit code at the end. The
 * process file and the kill on abort are ExecSync's (runtime/exec-sync.ts): a client that goes
 * away gets the command and everything it started killed, runc is never killed first.
 *
 * Without a tty, the command's stdin, stdout and stderr are pipes. With a tty, runc runs in the
 * foreground on a pseudo-terminal of ours (node-pty), as CRI-O runs it: runc itself takes the
 * container's console and copies it to and from its own terminal, and passes a resize of ours
 * (SIGWINCH) on to it. That spares us receiving the console's fd over a unix socket
 * (SCM_RIGHTS), which Node cannot do.
 */
import { spawn } from 'node:child_process';
import { spawnTurn } from '../host/spawn-turn.js';
import { signalNumber } from '../host/process.js';
import { access, rm } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { PassThrough, Writable, type Readable } from 'node:stream';
import { foldCarriageReturns } from './tty-output.js';
import { prepareExec, stopExec, type ExecTarget, type RuncHandle } from './exec-sync.js';

export type { ExecTarget } from './exec-sync.js';

export interface TerminalSize {
  width: number;
  height: number;
}

export interface StreamingExec {
  stdin: Writable | null;
  stdout: Readable | null;
  /** Always null with a tty: the terminal carries both streams. */
  stderr: Readable | null;
  /** Resizes the exec's terminal (nothing without a tty). */
  resize(size: TerminalSize): void;
  /** The command's exit code (128 + signal when killed) once runc has exited and its output is closed. */
  done: Promise<number>;
  /** Kills the command and everything it started (the client went away); resolves when done. */
  abort(): Promise<void>;
}

/** The terminal size before the client's first resize (the client sends its own at once). */
const DEFAULT_SIZE: TerminalSize = { width: 80, height: 24 };

export async function startExec(target: ExecTarget, cmd: string[], want: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }): Promise<StreamingExec> {
  const { processFile, pidFile, args } = await prepareExec(target.runtime, target.id, target.bundle, target.workDir, cmd, want.tty ? DEFAULT_SIZE : null);
  const cleanup = async (): Promise<void> => {
    await rm(processFile, { force: true });
    await rm(pidFile, { force: true });
  };
  await spawnTurn();
  const started = want.tty ? await startOnTerminal(target.runtime.binary, args, pidFile, want) : startOnPipes(target.runtime.binary, args, want);
  const done = started.closed.finally(cleanup);
  let killing: Promise<void> | null = null;
  return {
    ...started.streams,
    done,
    abort: () => (killing ??= stopExec(started.runc, started.closed, pidFile, target.containerPid).then(() => undefined)),
  };
}

interface Started {
  runc: RuncHandle;
  closed: Promise<number>;
  streams: Pick<StreamingExec, 'stdin' | 'stdout' | 'stderr' | 'resize'>;
}

function startOnPipes(binary: string, args: string[], want: { stdin: boolean; stdout: boolean; stderr: boolean }): Started {
  const child = spawn(binary, args, {
    stdio: [want.stdin ? 'pipe' : 'ignore', want.stdout ? 'pipe' : 'ignore', want.stderr ? 'pipe' : 'ignore'],
  });
  const closed = new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 + (signalNumber(signal) ?? 0) : -1)));
  });
  // A write after the command closed its stdin is the command's business, not an error of ours.
  child.stdin?.on('error', () => undefined);
  return { runc: child, closed, streams: { stdin: child.stdin, stdout: child.stdout, stderr: child.stderr, resize: () => undefined } };
}

async function startOnTerminal(binary: string, args: string[], pidFile: string, want: { stdin: boolean; stdout: boolean }): Promise<Started> {
  // Loaded on the first terminal exec, not at start: a daemon that streams nothing keeps its
  // memory (issue 14; the streaming libraries together are ~5 MB of RSS).
  const { default: pty } = await import('node-pty');
  // Our terminal is made raw before runc starts: runc makes it raw too (keeping output
  // translation on: runtime/tty-output.ts), but only once it holds the container's console, and
  // input that came sooner would be echoed and line-edited twice; input also waits for that
  // moment (below), this is the second net. `exec` keeps the pid: it is runc's. encoding null: the terminal's bytes as
  // Buffers, not decoded (a UTF-8 sequence split across reads stays whole).
  const term = pty.spawn('/bin/sh', ['-c', 'stty raw -echo && exec "$@"', 'sh', binary, ...args], { name: 'xterm', cols: DEFAULT_SIZE.width, rows: DEFAULT_SIZE.height, encoding: null });
  const stdout = new PassThrough();
  let exited = false;
  term.onData((data: string | Buffer) => {
    if (!want.stdout || stdout.writableEnded) return;
    if (!stdout.write(data)) {
      term.pause();
      stdout.once('drain', () => term.resume());
    }
  });
  const closed = new Promise<number>((resolve) => {
    term.onExit(({ exitCode, signal }) => {
      exited = true;
      stdout.end();
      resolve(signal ? 128 + signal : exitCode);
    });
  });
  // runc passes our size on to the container's console once it holds it (its pid file says so);
  // a resize before then would be lost in runc's start-up, so the latest one waits for it.
  let latest: TerminalSize | null = null;
  let consoleReady = false;
  const applySize = (): void => {
    if (!latest || exited) return;
    try {
      term.resize(latest.width, latest.height);
    } catch {
      // the terminal closed between the exit and its event: nothing left to resize
    }
  };
  const ready = untilExists(pidFile, () => exited).then(() => {
    consoleReady = true;
    applySize();
  });
  // Input waits for the same moment: written before runc copies it, it would sit in our terminal
  // before `stty raw` (echoed, line-edited, ^D taken as our end of file rather than the command's).
  const send = (data: Buffer | string): void => {
    try {
      if (!exited) term.write(data);
    } catch {
      // the terminal closed between the exit and its event: the input has nowhere to go
    }
  };
  const stdin = want.stdin
    ? new Writable({
        write(chunk: Buffer, _enc, callback) {
          void ready.then(() => {
            send(chunk);
            callback();
          });
        },
        // The client closed stdin: as on a terminal, that is an end-of-file (^D) to the command.
        final(callback) {
          void ready.then(() => {
            send('\x04');
            callback();
          });
        },
      })
    : null;
  const runc: RuncHandle = { pid: term.pid, kill: (signal) => term.kill(signal) };
  return {
    runc,
    closed,
    streams: {
      stdin,
      stdout: want.stdout ? stdout.pipe(foldCarriageReturns()) : null,
      stderr: null,
      resize: (size) => {
        if (size.width <= 0 || size.height <= 0) return;
        latest = size;
        if (consoleReady) applySize();
      },
    },
  };
}

/** How often the pid file is looked for while runc starts the command. */
const PID_FILE_POLL_MS = 10;

/** Resolves once `path` exists, or when `stop()` says it never will. */
async function untilExists(path: string, stop: () => boolean): Promise<void> {
  while (!stop()) {
    if (await access(path).then(() => true, () => false)) return;
    await delay(PID_FILE_POLL_MS);
  }
}
