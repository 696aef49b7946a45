/**
 * The CRI messages the handlers read and write, as @grpc/proto-loader hands them over
 * (camelCase fields, enums as their names, int64 as decimal strings, defaults filled in).
 * Only the fields podchart uses are typed; the proto in proto/api.proto is the full contract.
 */
import type { NamespaceOption } from '../runtime/cri-container-types.js';

export type { NamespaceMode, NamespaceOption } from '../runtime/cri-container-types.js';

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
}

export interface PodSandboxConfig {
  metadata: PodSandboxMetadata | null;
  hostname: string;
  logDirectory: string;
  dnsConfig: { servers: string[]; searches: string[]; options: string[] } | null;
  portMappings: { protocol: string; containerPort: number; hostPort: number; hostIp: string }[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  linux: {
    cgroupParent: string;
    securityContext: { namespaceOptions: NamespaceOption | null } | null;
    sysctls: Record<string, string>;
    overhead?: unknown;
    resources?: unknown;
  } | null;
}

export interface RunPodSandboxRequest {
  config: PodSandboxConfig | null;
  runtimeHandler: string;
}

export type PodSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';

export interface PodSandboxFilter {
  id: string;
  state: { state: PodSandboxState } | null;
  labelSelector: Record<string, string>;
}

export interface PodSandbox {
  id: string;
  metadata: PodSandboxMetadata;
  state: PodSandboxState;
  createdAt: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  runtimeHandler: string;
}

export interface PodSandboxStatus {
  id: string;
  metadata: PodSandboxMetadata;
  state: PodSandboxState;
  createdAt: string;
  network: { ip: string; additionalIps: { ip: string }[] };
  linux: { namespaces: { options: NamespaceOption } };
  labels: Record<string, string>;
  annotations: Record<string, string>;
  runtimeHandler: string;
}
