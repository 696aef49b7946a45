/** Maps a container actor's view to the CRI Container and ContainerStatus messages. */
import type { ContainerView } from '../actors/supervisor.js';
import type { CriContainerState } from '../machines/container.machine.js';

export type { CriContainerState } from '../machines/container.machine.js';

/** The CRI state the chart tags the container's state with (machines/container.machine.ts). */
export function criContainerState(view: ContainerView): CriContainerState {
  if (view.criState) return view.criState;
  // A failed removal: exited only if an exit was observed; otherwise the process may still run.
  return view.context.exit ? 'CONTAINER_EXITED' : 'CONTAINER_UNKNOWN';
}

export function toCriContainer(view: ContainerView) {
  const s = view.context.spec;
  return {
    id: view.id,
    podSandboxId: s.sandboxId,
    metadata: s.metadata,
    image: { image: s.image, annotations: {} },
    imageRef: s.imageRef,
    imageId: s.imageId,
    state: criContainerState(view),
    createdAt: s.createdAt,
    labels: s.labels,
    annotations: s.annotations,
  };
}

interface CriMountIn {
  containerPath: string;
  hostPath: string;
  readonly: boolean;
  selinuxRelabel: boolean;
  propagation: string;
}

export function toCriContainerStatus(view: ContainerView) {
  const c = view.context;
  const s = c.spec;
  const exited = criContainerState(view) === 'CONTAINER_EXITED';
  // What failed is said, never hidden behind an exit code that was not observed.
  const removeFailed = view.state === 'REMOVE_FAILED' ? `removal failed: ${c.lastError?.message ?? 'unknown error'}` : '';
  // LOST (conmon died under a running process): CONTAINER_UNKNOWN, and the status says why.
  const lost = view.state === 'LOST';
  const mounts = ((s.config['mounts'] as CriMountIn[] | undefined) ?? []).map((m) => ({
    containerPath: m.containerPath, hostPath: m.hostPath, readonly: m.readonly, selinuxRelabel: m.selinuxRelabel, propagation: m.propagation,
  }));
  const linux = (s.config['linux'] as { resources?: Record<string, unknown> } | null | undefined)?.resources ?? null;
  return {
    ...toCriContainer(view),
    startedAt: c.startedAt ?? '0',
    finishedAt: exited ? (c.exit?.at ?? '0') : '0',
    exitCode: exited ? (c.exit?.code ?? 0) : 0,
    reason: exited ? (c.exit?.reason ?? '') : removeFailed ? 'RemoveFailed' : lost ? 'ConmonExited' : '',
    message: removeFailed || (exited ? (c.exit?.message || c.lastError?.message || '') : lost ? (c.lastError?.message ?? '') : ''),
    mounts,
    logPath: s.logPath,
    resources: { linux: c.resources ?? linux },
  };
}
