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
}

export interface SpawnResult {
  stdout: string;
  stderr: string;
  /** The exit code, or null when a signal ended it. */
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  canceled: boolean;
  /** Why the program could not be started at all (ENOENT, EACCES), or absent. */
  spawnError?: string;
}

export type ToHelper = { kind: 'spawn'; id: number; request: SpawnRequest } | { kind: 'cancel'; id: number };

export interface FromHelper {
  id: number;
  result: SpawnResult;
}
