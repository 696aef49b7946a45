/** The messages between the daemon and its spawner helper (host/spawner.ts, host/spawner-child.ts). */

export interface SpawnRequest {
  file: string;
  args: readonly string[];
  /** The whole environment of the program; the helper's own (the daemon's) when absent. */
  env?: Record<string, string>;
  /** Written to the program's stdin, which is closed after it; stdin is /dev/null when absent. */
  input?: string;
  timeoutMs: number;
  /**
   * Run in a process group of its own, and SIGKILL the whole group at the deadline (a CNI plugin's
   * `sleep` or `iptables`). Otherwise only the program gets SIGTERM, then SIGKILL 5 s later.
   */
  processGroup?: boolean;
  /**
   * Keep the output as bytes (ExecSync: a container's output need not be text), stdout and stderr
   * drawing on one budget of this many bytes; what does not fit is counted, not kept. Text, each
   * stream capped at 16 MiB, when absent.
   */
  byteBudget?: number;
  /** Send the program's pid as soon as it runs (a caller that must find what it starts). */
  reportPid?: boolean;
  /**
   * conmon's launch: no stdio at all (its daemonized child would hold pipes open for the
   * container's life, and a wait on them would never end) and a sync pipe on fd 3, whose first
   * JSON line is the answer (the container's pid, or runc's error). The result comes once the
   * program has exited and that line has come or the pipe has closed; `sync` holds what it said.
   */
  syncPipe?: boolean;
}

/** The output of a `byteBudget` request, and how much of each stream did not fit the budget. */
export interface ByteOutput {
  stdout: Uint8Array;
  stderr: Uint8Array;
  dropped: { stdout: number; stderr: number };
}

export interface SpawnResult {
  /** The output as text; empty for a `byteBudget` request, whose output is in `bytes`. */
  stdout: string;
  stderr: string;
  bytes?: ByteOutput;
  /** What a `syncPipe` program wrote on fd 3 until its first JSON line. */
  sync?: string;
  /** The exit code, or null when a signal ended it. */
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  canceled: boolean;
  /** Why the program could not be started at all (ENOENT, EACCES), or absent. */
  spawnError?: string;
}

export type ToHelper =
  | { kind: 'spawn'; id: number; request: SpawnRequest }
  | { kind: 'cancel'; id: number }
  /** Sends a signal to the program alone, and nothing more (the caller decides what follows). */
  | { kind: 'signal'; id: number; signal: NodeJS.Signals };

/** A program's result, or (for `reportPid`) its pid once it runs, which comes first. */
export type FromHelper = { id: number; result: SpawnResult } | { id: number; pid: number };

/** conmon's first sync-pipe message (its first JSON line): the container's pid, or runc's error. */
export function parseSyncMessage(text: string): { pid: number; message?: string } | null {
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const parsed = JSON.parse(line) as { data?: number; pid?: number; message?: string };
      const pid = parsed.pid ?? parsed.data ?? -1;
      return parsed.message === undefined ? { pid } : { pid, message: parsed.message };
    } catch {
      // not JSON: conmon only writes JSON here, keep looking
    }
  }
  return null;
}
