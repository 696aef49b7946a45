/**
 * conmon writes `<exitDir>/<id>` holding the exit code when the container's process ends. It is the
 * source of truth for exits, also across daemon restarts (containerd #10390): read it before
 * trusting anything else. Its mtime is the exit time.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { makePrivate } from '../host/private-modes.js';
import type { ExitInfo } from '../machines/sandbox.types.js';
import { after } from '../host/long-timer.js';

export async function readExitFile(exitDir: string, id: string): Promise<ExitInfo | null> {
  const path = join(exitDir, id);
  let exit: ExitInfo;
  try {
    // stat first: at a restart most containers still run, their file is absent, and one failed
    // call each is half the thread-pool work of two (issue 14: restore of 200 pods).
    const st = await stat(path, { bigint: true });
    const text = await readFile(path, 'utf8');
    const code = Number.parseInt(text.trim(), 10);
    if (Number.isNaN(code)) return null; // conmon is still writing it
    exit = { code, at: st.mtimeNs.toString() };
  } catch {
    return null;
  }
  await settleExitFiles(path);
  return exit;
}

/**
 * conmon writes its exit-time files (the exit file, and in its persist dir `exit` and `oom`) with
 * the umask runc needs (private-modes.ts): they are made 0600 once the daemon has seen them. A
 * failure is let go on purpose: the exit is what the caller needs, the file sits in a 0700 dir,
 * and the next start's pass narrows it.
 */
export async function settleExitFiles(...paths: string[]): Promise<void> {
  try {
    await makePrivate(...paths);
  } catch {
    // see above
  }
}

/**
 * Resolves with the exit when the file appears (watched with inotify, not polled on a timer),
 * or with null after `timeoutMs` (any length; Infinity: never), or when `signal` aborts.
 */
export function waitForExitFile(exitDir: string, id: string, timeoutMs: number, signal?: AbortSignal): Promise<ExitInfo | null> {
  return new Promise((resolve) => {
    let settled = false;
    let watcher: FSWatcher | null = null;
    try {
      // The dir holds every exit file: only an event for this one (or one inotify could not
      // name) is read, or each exit would make every live watch read its file (N² reads).
      watcher = watch(exitDir, (_event, name) => {
        if (name === null || name === id) void check();
      });
    } catch {
      // No exit dir (the run dir was wiped by a reboot): no exit file can appear there.
      resolve(null);
      return;
    }
    const cancelTimer = after(timeoutMs, () => finish(null));
    const onAbort = (): void => finish(null);
    signal?.addEventListener('abort', onAbort);
    function finish(value: ExitInfo | null): void {
      if (settled) return;
      settled = true;
      watcher?.close();
      cancelTimer();
      signal?.removeEventListener('abort', onAbort);
      resolve(value);
    }
    async function check(): Promise<void> {
      const exit = await readExitFile(exitDir, id);
      if (exit) finish(exit);
    }
    // The watch is armed first, then the file checked: no exit can slip between the two.
    void check();
  });
}

/**
 * Calls `onExit` once when the exit file appears; returns a function that stops watching.
 * Used by actors/ to turn a pause or container exit into an EXIT event while the daemon runs.
 */
export function watchExitFile(exitDir: string, id: string, onExit: (exit: ExitInfo) => void): () => void {
  const controller = new AbortController();
  void waitForExitFile(exitDir, id, Infinity, controller.signal).then((exit) => {
    if (exit) onExit(exit);
  });
  return () => controller.abort();
}
