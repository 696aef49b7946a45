/** GetContainerEvents: a server stream of the container actors' lifecycle transitions. */
import { Metadata, type ServerWritableStream } from '@grpc/grpc-js';
import type { ContainerLifecycleEvent, Supervisor } from '../actors/supervisor.js';
import { toCriContainerStatus } from './container-view.js';
import { toPodSandboxStatus } from './sandbox-view.js';

export function containerEventResponse(supervisor: Supervisor, e: ContainerLifecycleEvent) {
  const pod = supervisor.view(e.sandboxId);
  const statuses = (pod?.context.containerIds ?? []).flatMap((id) => {
    const view = supervisor.containerView(id);
    return view ? [toCriContainerStatus(view)] : [];
  });
  return {
    containerId: e.containerId,
    containerEventType: e.type,
    createdAt: e.at,
    podSandboxStatus: pod ? toPodSandboxStatus(pod) : null,
    containersStatuses: statuses,
  };
}

/** Streams until the client goes away; no buffering of past events (as containerd). */
export function getContainerEvents(call: ServerWritableStream<unknown, unknown>, supervisor: Supervisor): void {
  const off = supervisor.onContainerEvent((e) => {
    if (!call.cancelled) call.write(containerEventResponse(supervisor, e));
  });
  // Response headers now, not with the first event: the client learns the stream is established.
  call.sendMetadata(new Metadata());
  const stop = (): void => {
    off();
  };
  call.on('cancelled', stop);
  call.on('close', stop);
  call.on('error', stop);
}
