/** StartContainer, StopContainer (idempotent), RemoveContainer (idempotent, forced when running). */
import { NotFound } from '../errors/catalogue.js';
import type { CriContext } from './context.js';
import { requireId } from './validate.js';

function find(ctx: CriContext, ref: string): string | null {
  return ctx.supervisor.findContainer(requireId(ref, 'container_id'));
}

export async function startContainer(req: { containerId: string }, ctx: CriContext) {
  const id = find(ctx, req.containerId);
  if (!id) throw new NotFound(`container "${req.containerId}" not found`);
  await ctx.containers.start(id, ctx.timeoutMs);
  return {};
}

export async function stopContainer(req: { containerId: string; timeout: string }, ctx: CriContext) {
  const id = find(ctx, req.containerId);
  if (!id) return {}; // CRI: stopping an unknown container succeeds
  await ctx.containers.stop(id, Math.max(0, Number(req.timeout ?? 0)), ctx.timeoutMs);
  return {};
}

export async function removeContainer(req: { containerId: string }, ctx: CriContext) {
  const id = find(ctx, req.containerId);
  if (!id) return {};
  await ctx.containers.remove(id, ctx.timeoutMs);
  return {};
}
