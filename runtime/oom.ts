/**
 * oom_score_adj the host lets us set. Without CAP_SYS_RESOURCE in the bounding set, runc fails to
 * set a score below the caller's own, so clamp there (containerd's restrict_oom_score_adj).
 */
import { readFileSync } from 'node:fs';

const CAP_SYS_RESOURCE = 24n;

export function hasCapSysResource(status = readFileSync('/proc/self/status', 'utf8')): boolean {
  const line = status.split('\n').find((l) => l.startsWith('CapBnd:'));
  if (!line) return true;
  const mask = BigInt(`0x${line.split(/\s+/)[1] ?? '0'}`);
  return (mask & (1n << CAP_SYS_RESOURCE)) !== 0n;
}

export function ownOomScoreAdj(): number {
  return Number.parseInt(readFileSync('/proc/self/oom_score_adj', 'utf8').trim(), 10) || 0;
}

/** The floor below which we may not go: -1000 with the capability, our own score without it. */
export function oomScoreFloor(): number {
  return hasCapSysResource() ? -1000 : ownOomScoreAdj();
}

export function clampOomScoreAdj(requested: number, floor: number): number {
  return Math.min(1000, Math.max(requested, floor));
}
