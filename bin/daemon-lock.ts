/**
 * One daemon per state root: a pid file under the run dir. A live podchartd holding it makes a
 * second one refuse to start; a pid file left by a crash (its pid dead or reused) is taken over.
 */
import { readFileSync, writeFileSync, rmSync } from 'node:fs';

function isPodchartd(pid: number): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('podchartd');
  } catch {
    return false;
  }
}

export function acquireDaemonLock(path: string): () => void {
  let holder: number | null = null;
  try {
    holder = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
  } catch {
    holder = null;
  }
  if (holder && holder !== process.pid && isPodchartd(holder)) {
    throw new Error(
      `another podchartd (pid ${holder}) is already running on this state (lock ${path}); ` +
        'stop it first, or give this one its own --root, --run and --socket',
    );
  }
  writeFileSync(path, `${process.pid}\n`, { mode: 0o600 });
  return () => {
    try {
      if (Number.parseInt(readFileSync(path, 'utf8'), 10) === process.pid) rmSync(path, { force: true });
    } catch {
      // already gone
    }
  };
}
