/** StopPodSandbox: idempotent; an unknown id succeeds, as CRI requires. */
import type { CriContext } from './context.js';
import { requireId } from './validate.js';

export async function stopPodSandbox(req: { podSandboxId: string }, ctx: CriContext) {
  const ref = requireId(req.podSandboxId, 'pod_sandbox_id');
  const id = ctx.supervisor.findSandbox(ref);
  if (!id) return {};
  await ctx.sandboxes.stop(id, ctx.timeoutMs, ctx.config.sandboxStopGraceSeconds);
  return {};
}
