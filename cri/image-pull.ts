/** PullImage: the image spec's reference, with the CRI AuthConfig when kubelet sends one. */
import type { Credentials } from '../images/types.js';
import type { CriContext } from './context.js';
import { requireString } from './validate.js';

interface AuthConfig {
  username: string;
  password: string;
  auth: string;
  identityToken: string;
  registryToken: string;
}

export function credentialsFrom(auth: AuthConfig | null | undefined): Credentials | null {
  if (!auth) return null;
  const creds: Credentials = {};
  if (auth.username) creds.username = auth.username;
  if (auth.password) creds.password = auth.password;
  if (auth.auth) creds.auth = auth.auth;
  if (auth.identityToken) creds.identityToken = auth.identityToken;
  if (auth.registryToken) creds.registryToken = auth.registryToken;
  return Object.keys(creds).length ? creds : null;
}

export async function pullImage(req: { image: { image: string } | null; auth: AuthConfig | null }, ctx: CriContext) {
  const ref = requireString(req.image?.image, 'image.image');
  const image = await ctx.images.pull(ref, credentialsFrom(req.auth));
  return { imageRef: image.id };
}
