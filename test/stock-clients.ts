/**
 * Where the stock cri-tools (crictl, critest v1.26.1: kubelet 1.26's Go client code) are: the
 * workplace kit beside the repository (`../shared`), or `$PODCHART_KIT`. Tests that need them skip,
 * saying why, where neither exists.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { REPO } from './daemon.js';

const candidates = [process.env['PODCHART_KIT'], resolve(REPO, '..', 'shared'), '/work/shared'].filter((d): d is string => !!d);

/** The kit folder holding cri-tools/ and critest/, or null. */
export const KIT_DIR: string | null = candidates.find((d) => existsSync(join(d, 'cri-tools', 'crictl'))) ?? null;

export const CRICTL: string | null = KIT_DIR ? join(KIT_DIR, 'cri-tools', 'crictl') : null;

/** node:test's skip option: false when crictl is here, else the reason. */
export const needsCrictl: false | string = CRICTL ? false : `stock crictl not found (looked in ${candidates.map((d) => join(d, 'cri-tools')).join(', ')}; set PODCHART_KIT)`;
