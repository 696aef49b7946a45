/** ListImages, optionally filtered to the images one image spec names. */
import type { CriContext } from './context.js';
import { toCriImage } from './image-view.js';

export async function listImages(req: { filter: { image: { image: string } | null } | null }, ctx: CriContext) {
  const wanted = req.filter?.image?.image ?? '';
  if (wanted) {
    const image = ctx.images.find(wanted);
    return { images: image ? [toCriImage(image)] : [] };
  }
  return { images: ctx.images.list().map(toCriImage) };
}
