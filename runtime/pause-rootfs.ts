/** The pause container's rootfs: built by podchart from the host's catatonit, no image pull. */
import { chmod, copyFile, mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EffectFailed } from '../errors/catalogue.js';
import { PAUSE_BINARY_IN_ROOTFS } from './pause-spec.js';
import { PRIVATE_DIR } from '../host/private-modes.js';

/** Creates (or refreshes) `<dir>/rootfs` and returns its path. Shared read-only by every pod. */
export async function ensurePauseRootfs(dir: string, catatonitPath: string): Promise<string> {
  const rootfs = join(dir, 'rootfs');
  try {
    await stat(catatonitPath);
  } catch {
    throw new EffectFailed(`the pause binary ${catatonitPath} is missing: install catatonit (apt-get install catatonit)`);
  }
  // `<dir>` is ours (0700); rootfs/ is the pause container's `/`, with an image's modes.
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR });
  // Mount points must exist up front: the rootfs is read-only inside every pod.
  for (const sub of ['proc', 'dev', 'sys', 'etc', 'tmp']) await mkdir(join(rootfs, sub), { recursive: true });
  const target = join(rootfs, PAUSE_BINARY_IN_ROOTFS);
  await copyFile(catatonitPath, `${target}.new`);
  await chmod(`${target}.new`, 0o755);
  await rename(`${target}.new`, target);
  for (const f of ['hostname', 'hosts', 'resolv.conf']) {
    await writeFile(join(rootfs, 'etc', f), '', { flag: 'a' });
  }
  return rootfs;
}
