/** PodSandboxStatus: NOT_FOUND for an unknown id; verbose adds the actor's own account. */
import { NotFound } from '../errors/catalogue.js';
import type { CriContext } from './context.js';
import { toPodSandboxStatus } from './sandbox-view.js';
import { requireId } from './validate.js';

export async function podSandboxStatus(req: { podSandboxId: string; verbose: boolean }, ctx: CriContext) {
  const ref = requireId(req.podSandboxId, 'pod_sandbox_id');
  const id = ctx.supervisor.findSandbox(ref);
  const view = id ? ctx.supervisor.view(id) : null;
  if (!id || !view) throw new NotFound(`pod sandbox "${ref}" not found`);
  const info: Record<string, string> = {};
  if (req.verbose) {
    const c = view.context;
    info['info'] = JSON.stringify({
      pid: c.pid,
      netnsPath: c.spec.netnsPath,
      runtimeHandler: c.spec.runtimeHandler,
      runtimePath: c.spec.runtimePath,
      actorState: view.state,
      exit: c.exit,
      resources: c.resources,
      lastError: c.lastError?.message ?? null,
      rootDir: c.spec.rootDir,
      stateDir: c.spec.stateDir,
      transitions: ctx.supervisor.history(id, 20),
    });
  }
  return {
    status: toPodSandboxStatus(view),
    info,
    containersStatuses: [],
    timestamp: (BigInt(Date.now()) * 1_000_000n).toString(),
  };
}
