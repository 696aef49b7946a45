/**
 * CRIU, which container checkpoints need (runc checkpoint drives it): whether it can run on this
 * host, asked once (`criu check`, its own test of the kernel's features) and kept, so a refusal
 * can say exactly why. On this project's machines it cannot: Debian 12's criu 3.17.1 stops at
 * "vdso: Unexpected rt vDSO area bounds" on Linux 6.13 and newer (checkpoint-restore/criu#2532).
 */
import { release } from 'node:os';
import { run } from '../host/exec.js';

let probe: Promise<string | null> | null = null;

/** Why CRIU cannot checkpoint here, in words; null when `criu check` passes. */
export function criuUnusable(): Promise<string | null> {
  probe ??= (async () => {
    const version = await run('criu', ['--version'], { allowFailure: () => true }).catch(() => null);
    if (!version || version.exitCode !== 0) return 'criu is not installed (Debian\'s package "criu")';
    const v = /Version:\s*(\S+)/.exec(version.stdout)?.[1] ?? 'unknown';
    const check = await run('criu', ['check'], { allowFailure: () => true });
    if (check.exitCode === 0) return null;
    const error = (check.stderr + check.stdout).split('\n').map((l) => l.trim()).find((l) => l.startsWith('Error')) ?? `exit code ${check.exitCode}`;
    return `\`criu check\` fails on this host (criu ${v}, Linux ${release()}): ${error.replace(/^Error \([^)]*\):\s*/, '')}`;
  })();
  return probe;
}
