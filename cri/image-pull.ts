/** PullImage: the image spec's reference, with the CRI AuthConfig when kubelet sends one. */
import type { Credentials } from '../images/types.js';
import type { CriContext } from './context.js';
import { requireImageRef } from './validate.js';

interface AuthConfig {
  username: string;
  password: string;
  auth: string;
  /** The host the credentials are for; empty: the image's registry (images/registry/credentials.ts). */
  serverAddress: string;
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
  if (Object.keys(creds).length === 0) return null;
  if (auth.serverAddress) creds.serverAddress = auth.serverAddress;
  return creds;
}

export async function pullImage(req: { image: { image: string } | null; auth: AuthConfig | null }, ctx: CriContext) {
  const ref = requireImageRef(req.image?.image, 'image.image');
  const image = await ctx.images.pull(ref, credentialsFrom(req.auth));
  return { imageRef: image.id };
}
