/**
 * PortForward: validated here, served by the streaming server when the client opens the URL (CRI:
 * "PortForward prepares a streaming endpoint to forward ports from a PodSandbox"). The request is
 * parked under a one-time token with where the pod's ports are; nothing is dialled until a
 * forwarded connection asks.
 */
import { InvalidArgument, NotFound, NotImplemented, Refused } from '../errors/catalogue.js';
import type { CriContext } from './context.js';
import { criState } from './sandbox-view.js';
import { requireId } from './validate.js';

export async function portForward(req: { podSandboxId: string; port: number[] }, ctx: CriContext) {
  const ref = requireId(req.podSandboxId, 'pod_sandbox_id');
  const ports = req.port ?? [];
  const bad = ports.find((p) => !Number.isInteger(p) || p < 1 || p > 65535);
  if (bad !== undefined) throw new InvalidArgument(`PortForwardRequest.port ${bad} is not a TCP port (1-65535)`);
  if (!ctx.streaming) throw new NotImplemented('PortForward');
  const id = ctx.supervisor.findSandbox(ref);
  const view = id ? ctx.supervisor.view(id) : null;
  if (!view) throw new NotFound(`pod sandbox "${ref}" not found`);
  if (criState(view) !== 'SANDBOX_READY') throw new Refused(`cannot forward ports of pod sandbox ${view.id}: it is not ready (${view.state})`);
  const url = ctx.streaming.url({ kind: 'portforward', target: { podId: view.id, netnsPath: view.context.spec.netnsPath, ports: [...new Set(ports)] } });
  return { url };
}
