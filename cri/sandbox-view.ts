/** Maps a sandbox actor's view to the CRI messages List and Status return. */
import type { SandboxView } from '../actors/supervisor.js';
import type { PodSandbox, PodSandboxState, PodSandboxStatus } from './types.js';

/** Only a RUNNING actor is READY; everything else (being created, stopped, removing) is NOTREADY. */
export function criState(view: SandboxView): PodSandboxState {
  return view.ready ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY';
}

export function toPodSandbox(view: SandboxView): PodSandbox {
  const { spec } = view.context;
  return {
    id: view.id,
    metadata: spec.metadata,
    state: criState(view),
    createdAt: spec.createdAt,
    labels: spec.labels,
    annotations: spec.annotations,
    runtimeHandler: spec.runtimeHandler,
  };
}

export function toPodSandboxStatus(view: SandboxView): PodSandboxStatus {
  const { spec } = view.context;
  return {
    ...toPodSandbox(view),
    network: {
      ip: view.context.network?.ip ?? '',
      additionalIps: (view.context.network?.additionalIps ?? []).map((ip) => ({ ip })),
    },
    linux: {
      namespaces: {
        options: { network: spec.namespaces.network as never, pid: spec.namespaces.pid as never, ipc: spec.namespaces.ipc as never, targetId: '' },
      },
    },
  };
}
