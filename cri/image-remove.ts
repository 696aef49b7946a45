/** RemoveImage: idempotent (an absent image succeeds). */
import type { CriContext } from './context.js';
import { requireString } from './validate.js';

export async function removeImage(req: { image: { image: string } | null }, ctx: CriContext) {
  await ctx.images.remove(requireString(req.image?.image, 'image.image'));
  return {};
}
