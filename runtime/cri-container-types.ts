/**
 * The parts of CRI's ContainerConfig the container spec reads, as @grpc/proto-loader hands them over
 * (keepCase false → camelCase; enums as their names; int64 as decimal strings; bytes as Buffer;
 * unset messages null, repeated [], maps {}). Declared here rather than imported from cri/ because
 * imports flow cri → actors → runtime, never back. proto/api.proto is the full contract.
 */

export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';

export type MountPropagation = 'PROPAGATION_PRIVATE' | 'PROPAGATION_HOST_TO_CONTAINER' | 'PROPAGATION_BIDIRECTIONAL';

/** CRI's own signal numbering, by name: 'SIGNAL_SIGTERM', 'SIGNAL_RUNTIME_DEFAULT', … */
export type CriSignal = `SIGNAL_${string}`;

/** int64 fields arrive as decimal strings (LOADER_OPTIONS.longs = String). */
export type Int64String = string;

export interface Int64Value {
  value: Int64String;
}

export interface ContainerMetadata {
  name: string;
  attempt: number;
}

export interface ImageSpec {
  image: string;
  userSpecifiedImage: string;
}

/** `bytes value` in this proto (upstream has string): proto-loader gives a Buffer. */
export interface KeyValue {
  key: string;
  value: Buffer;
}

export interface Mount {
  containerPath: string;
  hostPath: string;
  readonly: boolean;
  selinuxRelabel: boolean;
  propagation: MountPropagation;
  recursiveReadOnly: boolean;
  /** An image volume; podchart does not support them (null when unset). */
  image: ImageSpec | null;
}

export interface Device {
  containerPath: string;
  hostPath: string;
  /** cgroup device permissions, a subset of "rwm". */
  permissions: string;
}

export interface Capability {
  addCapabilities: string[];
  dropCapabilities: string[];
  addAmbientCapabilities: string[];
}

export interface SecurityProfile {
  profileType: 'RuntimeDefault' | 'Unconfined' | 'Localhost';
  localhostRef: string;
}

export interface NamespaceOption {
  network: NamespaceMode;
  pid: NamespaceMode;
  ipc: NamespaceMode;
  targetId: string;
  /** The user namespace: absent or NODE, the host's; POD, one of the pod's own (refused: runtime/userns.ts). */
  usernsOptions?: { mode: NamespaceMode; uids: IdMapping[]; gids: IdMapping[] } | null;
}

export interface IdMapping {
  hostId: number;
  containerId: number;
  length: number;
}

export interface LinuxContainerSecurityContext {
  capabilities: Capability | null;
  privileged: boolean;
  namespaceOptions: NamespaceOption | null;
  runAsUser: Int64Value | null;
  runAsGroup: Int64Value | null;
  runAsUsername: string;
  readonlyRootfs: boolean;
  supplementalGroups: Int64String[];
  supplementalGroupsPolicy: 'Merge' | 'Strict';
  noNewPrivs: boolean;
  maskedPaths: string[];
  readonlyPaths: string[];
  seccomp: SecurityProfile | null;
  apparmor: SecurityProfile | null;
  /** Deprecated spellings, still sent by old kubelets: "runtime/default", "localhost/<path>", "unconfined". */
  seccompProfilePath: string;
  apparmorProfile: string;
}

export interface HugepageLimit {
  /** "2MB", "1GB", … */
  pageSize: string;
  /** uint64, decimal string. */
  limit: Int64String;
}

export interface LinuxContainerResources {
  cpuPeriod: Int64String;
  cpuQuota: Int64String;
  cpuShares: Int64String;
  memoryLimitInBytes: Int64String;
  oomScoreAdj: Int64String;
  cpusetCpus: string;
  cpusetMems: string;
  hugepageLimits: HugepageLimit[];
  unified: Record<string, string>;
  memorySwapLimitInBytes: Int64String;
}

export interface LinuxContainerConfig {
  resources: LinuxContainerResources | null;
  securityContext: LinuxContainerSecurityContext | null;
}

export interface ContainerConfig {
  metadata: ContainerMetadata | null;
  image: ImageSpec | null;
  command: string[];
  args: string[];
  workingDir: string;
  envs: KeyValue[];
  mounts: Mount[];
  devices: Device[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Relative to the pod's log_directory. */
  logPath: string;
  stdin: boolean;
  stdinOnce: boolean;
  tty: boolean;
  linux: LinuxContainerConfig | null;
  stopSignal: CriSignal;
}
