/** ListPodSandbox with CRI's filters: id (full or prefix), state, label selector (all must match). */
import type { SandboxView } from '../actors/supervisor.js';
import type { CriContext } from './context.js';
import { listItemEncodings } from './list-encoding.js';
import { criState, toPodSandbox } from './sandbox-view.js';
import type { PodSandboxFilter } from './types.js';

const encodings = listItemEncodings<SandboxView>('ListPodSandbox', 'items', toPodSandbox, (view) => view.context.spec, criState);

export async function listPodSandbox(req: { filter: PodSandboxFilter | null }, ctx: CriContext) {
  const f = req.filter;
  const items = ctx.supervisor.views().filter((view) => {
    if (!f) return true;
    if (f.id && !view.id.startsWith(f.id)) return false;
    if (f.state && criState(view) !== f.state.state) return false;
    const labels = view.context.spec.labels;
    return Object.entries(f.labelSelector ?? {}).every(([k, v]) => labels[k] === v);
  });
  return encodings.reply(items);
}
