/** RemoveImage: idempotent (an absent image succeeds). */
import type { CriContext } from './context.js';
import { requireImageRef } from './validate.js';

export async function removeImage(req: { image: { image: string } | null }, ctx: CriContext) {
  await ctx.images.remove(requireImageRef(req.image?.image, 'image.image'), ctx.supervisor.imagesInUse());
  return {};
}
