/**
 * Where the workplace's shared material is: the stock cri-tools (crictl, critest v1.26.1: kubelet
 * 1.26's Go client code), the upstream CRI descriptor. It is looked for in `$PODCHART_KIT`, then
 * `../shared` beside the repository, then `/work/shared` (where CI's clean clone sits elsewhere).
 * Tests that need it skip, saying why, where none has it.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The repository root from dist/test/ (not from ./daemon.js: unit tests import this too).
const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const candidates = [process.env['PODCHART_KIT'], resolve(REPO, '..', 'shared'), '/work/shared'].filter((d): d is string => !!d);

/** The first shared folder holding `relative`, as an absolute path, or null. */
export function sharedFile(relative: string): string | null {
  const dir = candidates.find((d) => existsSync(join(d, relative)));
  return dir ? join(dir, relative) : null;
}

/** Where a shared file was looked for, for skip messages. */
export function lookedFor(relative: string): string {
  return `${candidates.map((d) => join(d, relative)).join(', ')} (set PODCHART_KIT)`;
}

export const CRICTL: string | null = sharedFile(join('cri-tools', 'crictl'));

/** node:test's skip option: false when crictl is here, else the reason. */
export const needsCrictl: false | string = CRICTL ? false : `stock crictl not found: looked for ${lookedFor(join('cri-tools', 'crictl'))}`;
