/** RemovePodSandbox: stops a running pod first; idempotent (an unknown id succeeds). */
import type { CriContext } from './context.js';
import { requireId } from './validate.js';

export async function removePodSandbox(req: { podSandboxId: string }, ctx: CriContext) {
  const ref = requireId(req.podSandboxId, 'pod_sandbox_id');
  const id = ctx.supervisor.findSandbox(ref);
  if (!id) return {};
  await ctx.sandboxes.remove(id, ctx.timeoutMs);
  return {};
}
