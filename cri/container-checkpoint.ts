/**
 * CheckpointContainer, CheckpointPod, RestorePod (issue 16, item 2): refused with UNIMPLEMENTED
 * and the reason. A checkpoint is CRIU's dump of the container's processes, and CRIU cannot run
 * on this host (runtime/criu.ts says why, as `criu check` does), so the archive CRI-O and
 * containerd write could neither be written nor tested here. Nothing is changed by a refusal:
 * the container keeps running.
 */
import { NotFound, Unsupported } from '../errors/catalogue.js';
import { criuUnusable } from '../runtime/criu.js';
import type { CriContext } from './context.js';
import { quote, requireId } from './validate.js';

async function why(): Promise<string> {
  const unusable = await criuUnusable();
  return unusable ? `CRIU cannot run here: ${unusable}` : 'podchart does not write checkpoint archives yet';
}

export async function checkpointContainer(req: { containerId: string; location: string }, ctx: CriContext) {
  const ref = requireId(req.containerId, 'container_id');
  const id = ctx.supervisor.findContainer(ref);
  if (!id || !ctx.supervisor.containerView(id)) throw new NotFound(`container ${quote(ref)} not found`);
  throw new Unsupported(`CheckpointContainer of ${id} is not supported on this node: ${await why()}. The container was not touched`);
}

export async function checkpointPod(req: { podSandboxId: string }, ctx: CriContext) {
  const ref = requireId(req.podSandboxId, 'pod_sandbox_id');
  if (!ctx.supervisor.findSandbox(ref)) throw new NotFound(`pod sandbox ${quote(ref)} not found`);
  throw new Unsupported(`CheckpointPod is not supported on this node: a pod checkpoint is its containers' checkpoints, and ${await why()}`);
}

export async function restorePod() {
  throw new Unsupported(`RestorePod is not supported on this node: it restores a CheckpointPod archive, which this node cannot make, and ${await why()}`);
}
