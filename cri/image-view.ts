/** Maps an image record to CRI's Image message. */
import type { ImageRecord } from '../storage/images.js';
import type { ImageConfigFile } from '../images/types.js';

export function imageConfig(image: ImageRecord): ImageConfigFile {
  return JSON.parse(image.config) as ImageConfigFile;
}

export function toCriImage(image: ImageRecord) {
  const user = imageConfig(image).config?.User ?? '';
  // CRI splits the image's user: a numeric uid goes to `uid`, a name to `username`.
  const userPart = user.split(':')[0] ?? '';
  const numeric = /^\d+$/.test(userPart);
  return {
    id: image.id,
    repoTags: image.repoTags,
    repoDigests: image.repoDigests,
    size: String(image.size),
    uid: numeric ? { value: userPart } : null,
    username: numeric ? '' : userPart,
    spec: { image: image.id, annotations: {} },
    pinned: false,
  };
}
