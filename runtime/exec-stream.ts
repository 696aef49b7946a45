/**
 * A streaming exec (CRI Exec, without a tty): `runc exec` of a command in a running container with
 * the container's process settings, its stdin, stdout and stderr handed to the caller as pipes, and
 * its exit code at the end. The process file and the kill on abort are ExecSync's
 * (runtime/exec-sync.ts): a client that goes away gets the command and everything it started
 * killed, runc is never killed first.
 */
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { osSignal, prepareExec, stopExec, type ExecTarget } from './exec-sync.js';

export type { ExecTarget } from './exec-sync.js';


export interface StreamingExec {
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
  /** The command's exit code (128 + signal when killed) once runc has exited and its output is closed. */
  exited: Promise<number>;
  /** Kills the command and everything it started (the client went away); resolves when done. */
  kill(): Promise<void>;
}

export async function startExec(target: ExecTarget, cmd: string[], want: { stdin: boolean; stdout: boolean; stderr: boolean }): Promise<StreamingExec> {
  const { processFile, pidFile, args } = await prepareExec(target.runtime, target.id, target.bundle, target.workDir, cmd, false);
  const child = spawn(target.runtime.binary, args, {
    stdio: [want.stdin ? 'pipe' : 'ignore', want.stdout ? 'pipe' : 'ignore', want.stderr ? 'pipe' : 'ignore'],
  });
  const closed = new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 + (osSignal(signal) ?? 0) : -1)));
  });
  const cleanup = async (): Promise<void> => {
    await rm(processFile, { force: true });
    await rm(pidFile, { force: true });
  };
  const exited = closed.finally(cleanup);
  // A write after the command closed its stdin is the command's business, not an error of ours.
  child.stdin?.on('error', () => undefined);
  let killing: Promise<void> | null = null;
  return {
    stdin: child.stdin,
    stdout: child.stdout,
    stderr: child.stderr,
    exited,
    kill: () => (killing ??= stopExec(child, closed, pidFile, target.containerPid).then(() => undefined)),
  };
}
