/**
 * One daemon per state root (issue 12, item 9): an exclusive flock(2) on `<runDir>/podchartd.lock`,
 * held for the daemon's whole life. The kernel drops it when the last descriptor of the open file
 * goes, so a daemon killed with -9 frees it with no clean-up and no pid to judge; two daemons
 * starting together cannot both win, as they could with the old pid file checked by substring.
 *
 * Node has no flock. The choices were: `fs-ext` (a native addon: a build against each Node ABI,
 * and its upkeep, for one syscall), `proper-lockfile` (a mkdir lock refreshed by a timer: stale
 * after a kill -9 until its timeout, so not what is asked), or util-linux's `flock(1)`, which
 * setup.sh already installs. This uses the last: the daemon opens the lock file and hands the
 * descriptor to `flock --nonblock --exclusive 3` as the child's fd 3. flock(2) locks the open file
 * description, which the daemon and the child share, so the lock outlives the child (which exits at
 * once) and lasts exactly as long as the daemon keeps its descriptor open. libuv opens every file
 * O_CLOEXEC: runc and conmon, which outlive the daemon, never inherit the descriptor, so they
 * cannot keep the lock after it dies (test/daemon-lock.e2e.test.ts checks with a pod running).
 *
 * The file is never unlinked: deleting a flock file while another process waits on it lets two
 * processes hold "the" lock on two inodes. Its content (the holder's pid) is only for messages.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';

export const LOCK_FILE = 'podchartd.lock';

/** flock's exit status when the lock is held (its -E): told apart from flock failing to run. */
const CONFLICT_EXIT = 75;

export class DaemonLocked extends Error {}

/** Takes the lock or throws; returns the release (for a graceful stop; dying releases it too). */
export function acquireDaemonLock(path: string, flockPath = 'flock'): () => void {
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  const result = spawnSync(flockPath, ['--nonblock', '--exclusive', '--conflict-exit-code', String(CONFLICT_EXIT), '3'], {
    stdio: ['ignore', 'ignore', 'pipe', fd],
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (result.status !== 0) {
    closeSync(fd);
    if (result.status === CONFLICT_EXIT) {
      const holder = readHolder(path);
      throw new DaemonLocked(
        `another podchartd${holder ? ` (pid ${holder})` : ''} is already running on this state (lock ${path}); ` +
          'stop it first, or give this one its own --root, --run and --socket',
      );
    }
    const why = result.error?.message ?? (result.stderr.trim() || `exit status ${String(result.status ?? result.signal)}`);
    throw new Error(`cannot take the daemon lock ${path} with ${flockPath} (util-linux): ${why}`);
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`, 0);
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    ftruncateSync(fd, 0); // no pid names a daemon that is gone
    closeSync(fd); // the last descriptor: the kernel drops the lock
  };
}

function readHolder(path: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}
