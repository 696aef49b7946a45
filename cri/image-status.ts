/** ImageStatus: an absent image answers with no image (not an error), as CRI requires. */
import type { CriContext } from './context.js';
import { imageConfig, toCriImage } from './image-view.js';
import { requireImageRef } from './validate.js';

export async function imageStatus(req: { image: { image: string } | null; verbose: boolean }, ctx: CriContext) {
  const image = ctx.images.find(requireImageRef(req.image?.image, 'image.image'));
  if (!image) return { image: null, info: {} };
  const info: Record<string, string> = {};
  if (req.verbose) {
    info['info'] = JSON.stringify({ imageSpec: imageConfig(image), manifestDigest: image.manifestDigest, layers: image.layers });
  }
  return { image: toCriImage(image), info };
}
