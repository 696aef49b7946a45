/** Context, input and events of the container chart. Plain JSON: the context is what storage/ persists. */
import type { LastError } from './last-error.js';

/** What CRI asked for, fixed at CreateContainer. */
export interface ContainerSpecRecord {
  /** Registry name: k8s_<container>_<pod>_<namespace>_<uid>_<attempt> (seed 002). */
  name: string;
  metadata: { name: string; attempt: number };
  sandboxId: string;
  /** The image as the request named it, and the id it resolved to. */
  image: string;
  imageId: string;
  /** The repo digest of the image, for ContainerStatus.image_ref. */
  imageRef: string;
  /** The CRI ContainerConfig as received (proto-loader JSON), for status and restore. */
  config: Record<string, unknown>;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Absolute log path (pod log_directory + log_path), or "" when kubelet asked for none. */
  logPath: string;
  /**
   * Where conmon writes that log: the real path of the log_directory at CreateContainer, and the
   * log_path beneath it (runtime/log-path.ts). Absent without a log_path, and in older records.
   */
  logFile?: { root: string; relative: string };
  /** The container's own dir: bundle, rootfs layers, conmon files. */
  dir: string;
  /**
   * Its dir under runDir, for the exit file conmon writes when the process ends: on rootDir, a
   * full disk would lose the exit code (issue 12, item 1); CRI-O keeps its exits in /var/run too.
   * Absent in older records, whose exit file is in `dir`.
   */
  stateDir?: string;
  runtimeHandler: string;
  runtimePath: string;
  /** Signal for StopContainer: config, else the image's StopSignal, else SIGTERM. */
  stopSignal: string;
  tty: boolean;
  stdin: boolean;
  stdinOnce: boolean;
  /** Nanoseconds since the epoch, decimal string. */
  createdAt: string;
}

export interface ContainerExit {
  code: number;
  /** Nanoseconds since the epoch, decimal string. */
  at: string;
  /** Completed, Error, OOMKilled, StartError, or Unknown (gone while the daemon was down, no exit file). */
  reason: string;
  message: string;
}

export interface ContainerInput {
  id: string;
  spec: ContainerSpecRecord;
  // Restored fields.
  pid?: number | null;
  pidStartTime?: string | null;
  startedAt?: string | null;
  exit?: ContainerExit | null;
  stopTimeoutSec?: number;
  lastError?: LastError | null;
  resources?: Record<string, unknown> | null;
  podReady?: boolean;
}

/**
 * What a container tells its pod on entering each state (the pod's stop and removal wait on it):
 * `busy` while an effect runs, `running` while its process runs and it takes STOP, `failed` when
 * its removal failed, `idle` otherwise.
 */
export type ContainerPhase = 'idle' | 'busy' | 'running' | 'failed';

export interface ContainerContext {
  id: string;
  spec: ContainerSpecRecord;
  pid: number | null;
  pidStartTime: string | null;
  startedAt: string | null;
  exit: ContainerExit | null;
  stopTimeoutSec: number;
  lastError: LastError | null;
  /** Resources as last applied by UpdateContainerResources (CRI LinuxContainerResources JSON). */
  resources: Record<string, unknown> | null;
  /** Whether its pod is RUNNING, as the pod last said (POD_READY): START is taken only then. */
  podReady: boolean;
}

export interface Started {
  pid: number;
  pidStartTime: string;
  startedAt: string;
}

/** The exit code reported when a process is gone and no exit file says how it ended. */
export const UNKNOWN_EXIT_CODE = 255;

export type ContainerEvent =
  | { type: 'CREATE' }
  | { type: 'START' }
  | { type: 'STOP'; timeoutSec: number }
  | { type: 'EXIT'; exit: ContainerExit }
  | { type: 'REMOVE' }
  | { type: 'UPDATE'; resources: Record<string, unknown> }
  /** conmon exited while the process still runs: no exit file will come, no output is logged. */
  | { type: 'CONMON_LOST'; message: string }
  // Observed on restore:
  | { type: 'OBSERVED_CREATED' }
  | { type: 'OBSERVED_RUNNING'; pid: number; pidStartTime: string }
  /** From the pod: whether it is RUNNING (its pause's namespaces can be joined). */
  | { type: 'POD_READY'; ready: boolean }
  | { type: 'ABANDON' };

export const CONTAINER_EVENT_TYPES = ['CREATE', 'START', 'STOP', 'EXIT', 'REMOVE', 'UPDATE', 'CONMON_LOST', 'OBSERVED_CREATED', 'OBSERVED_RUNNING', 'ABANDON', 'POD_READY'] as const;
