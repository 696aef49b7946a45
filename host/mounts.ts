/** Mount points, as the kernel lists them for this process (/proc/self/mountinfo). */
import { realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The path as mountinfo spells it: /var/run is often a symlink to /run. */
function canonical(path: string): string {
  try {
    return join(realpathSync(dirname(path)), basename(path));
  } catch {
    return path;
  }
}

export async function isMounted(path: string): Promise<boolean> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  const target = canonical(path).replace(/ /g, '\\040');
  return mountinfo.split('\n').some((line) => line.split(' ')[4] === target);
}
