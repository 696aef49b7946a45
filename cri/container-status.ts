/** ContainerStatus (verbose: pid, OCI spec, actor state, transitions) and ListContainers with CRI's filters. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NotFound } from '../errors/catalogue.js';
import type { CriContext } from './context.js';
import { criContainerState, toCriContainer, toCriContainerStatus, type CriContainerState } from './container-view.js';
import { listItemEncodings } from './list-encoding.js';
import type { ContainerView } from '../actors/supervisor.js';
import { requireId } from './validate.js';

export async function containerStatus(req: { containerId: string; verbose: boolean }, ctx: CriContext) {
  const ref = requireId(req.containerId, 'container_id');
  const id = ctx.supervisor.findContainer(ref);
  const view = id ? ctx.supervisor.containerView(id) : null;
  if (!id || !view) throw new NotFound(`container "${ref}" not found`);
  const info: Record<string, string> = {};
  if (req.verbose) {
    const spec = await readFile(join(view.context.spec.dir, 'bundle', 'config.json'), 'utf8').then((t) => JSON.parse(t) as unknown, () => null);
    info['info'] = JSON.stringify({
      pid: view.context.pid,
      actorState: view.state,
      lastError: view.context.lastError?.message ?? null,
      runtimeSpec: spec,
      transitions: ctx.supervisor.history(id, 20),
    });
  }
  return { status: toCriContainerStatus(view), info };
}

interface ContainerFilter {
  id: string;
  state: { state: CriContainerState } | null;
  podSandboxId: string;
  labelSelector: Record<string, string>;
}

const encodings = listItemEncodings<ContainerView>('ListContainers', 'containers', toCriContainer, (view) => view.context.spec, criContainerState);

export async function listContainers(req: { filter: ContainerFilter | null }, ctx: CriContext) {
  const f = req.filter;
  const views = ctx.supervisor.containerViews().filter((v) => {
    if (!f) return true;
    if (f.id && !v.id.startsWith(f.id)) return false;
    if (f.podSandboxId && !v.context.spec.sandboxId.startsWith(f.podSandboxId)) return false;
    if (f.state && criContainerState(v) !== f.state.state) return false;
    return Object.entries(f.labelSelector ?? {}).every(([k, val]) => v.context.spec.labels[k] === val);
  });
  return encodings.reply(views);
}
