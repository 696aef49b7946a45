/** Context, input and events of the sandbox chart. Plain JSON: the context is what storage/ persists. */
import type { ContainerInput, ContainerPhase } from './container.types.js';
import type { LastError } from './last-error.js';

/** What CRI asked for, fixed at RunPodSandbox and never changed by the chart. */
export interface SandboxSpec {
  name: string; // the registry name: k8s_POD_<name>_<namespace>_<uid>_<attempt>
  metadata: { name: string; uid: string; namespace: string; attempt: number };
  hostname: string;
  logDirectory: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  runtimeHandler: string;
  /** The handler's binary (runc or crun), resolved from config when the pod was created. */
  runtimePath: string;
  dns: { servers: string[]; searches: string[]; options: string[] } | null;
  portMappings: { protocol: string; containerPort: number; hostPort: number; hostIp: string }[];
  cgroupParent: string;
  /** NODE / POD / CONTAINER / TARGET, as CRI names them. */
  namespaces: { network: string; pid: string; ipc: string };
  sysctls: Record<string, string>;
  oomScoreAdj: number;
  shmSizeBytes: number;
  /** Where the pod's files live (root: persistent; state: tmpfs under /run). */
  rootDir: string;
  stateDir: string;
  /** Bind-mounted network namespace; null for host-network pods. */
  netnsPath: string | null;
  /**
   * false: the pod has no pause process (config dropInfraContainer, for a pod that shares no pid
   * namespace): its ipc and uts namespaces are made and pinned without one. Absent (pods made
   * before this existed) means it has one.
   */
  pauseProcess?: boolean;
  /** created_at in nanoseconds since the epoch, as a decimal string (int64 does not fit a JS number). */
  createdAt: string;
}

/** The pod's network as CNI configured it (seed 003's network settings). */
export interface PodNetworkStatus {
  /** Primary IP (the first IPv4, else the first IPv6), without prefix length. */
  ip: string;
  additionalIps: string[];
  /** The CNI result, verbatim, for the inspector and for DEL. */
  result: unknown;
}

export interface ExitInfo {
  code: number;
  /** Nanoseconds since the epoch, decimal string. */
  at: string;
}

/**
 * Pod-level resources (UpdatePodSandboxResources) as CRI sent them: LinuxContainerResources JSON,
 * the pod's own and its overhead; the pod's cgroup gets their sum.
 */
export interface PodResources {
  resources: Record<string, unknown> | null;
  overhead: Record<string, unknown> | null;
}

export interface SandboxInput {
  id: string;
  spec: SandboxSpec;
  // Restored fields (absent for a new pod).
  pid?: number | null;
  pidStartTime?: string | null;
  exit?: ExitInfo | null;
  tornDown?: boolean;
  stopTimeoutSec?: number;
  lastError?: LastError | null;
  containerIds?: string[];
  containerPhases?: Record<string, ContainerReport>;
  network?: PodNetworkStatus | null;
  resources?: PodResources | null;
  resourcesRequested?: PodResources | null;
}

/** A container's last report to its pod: its phase, and its error when it failed. */
export interface ContainerReport {
  phase: ContainerPhase;
  error: string | null;
}

export interface SandboxContext {
  id: string;
  spec: SandboxSpec;
  /** The pause process, with its start time (from /proc/<pid>/stat) to guard against pid reuse. */
  pid: number | null;
  pidStartTime: string | null;
  exit: ExitInfo | null;
  /** True once the pause container is deleted and the netns and /dev/shm are unmounted. */
  tornDown: boolean;
  stopTimeoutSec: number;
  /** The last effect failure, shown in status and the inspector. */
  lastError: LastError | null;
  /** This pod's containers: each is a child actor `container:<id>`. */
  containerIds: string[];
  /** What each container last reported (CONTAINER_STATE): what the pod's stop and removal wait for. */
  containerPhases: Record<string, ContainerReport>;
  /** Set once CNI ADD succeeded; kept after stop for status, cleared by nothing (the pod goes). */
  network: PodNetworkStatus | null;
  /** What UpdatePodSandboxResources last applied to the pod's cgroup (null: what kubelet set up). */
  resources: PodResources | null;
  /** What an update in flight applies: persisted first, so that a restore finishes it. */
  resourcesRequested: PodResources | null;
}

/** Results of the effects. */
export interface Created {
  /** The pause process; null for a pod without one (SandboxSpec.pauseProcess). */
  pid: number | null;
  pidStartTime: string | null;
  network: PodNetworkStatus | null;
}
export interface Stopped {
  exit: ExitInfo | null;
}

export type SandboxEvent =
  | { type: 'CREATE' }
  | { type: 'READY'; pid: number | null; pidStartTime: string | null }
  | { type: 'PENDING' }
  | { type: 'EXIT'; code: number; at: string }
  | { type: 'STOP'; timeoutSec: number }
  | { type: 'REMOVE' }
  | { type: 'ADD_CONTAINER'; id: string; input: ContainerInput }
  | { type: 'CONTAINER_REMOVED'; id: string }
  | { type: 'CONTAINER_STATE'; id: string; phase: ContainerPhase; error: string | null }
  | { type: 'UPDATE_RESOURCES'; resources: PodResources };

export const SANDBOX_EVENT_TYPES = ['CREATE', 'READY', 'PENDING', 'EXIT', 'STOP', 'REMOVE', 'ADD_CONTAINER', 'CONTAINER_REMOVED', 'CONTAINER_STATE', 'UPDATE_RESOURCES'] as const;
