/**
 * Whether each running container's conmon is still there. Node has no pidfd, and conmon's only
 * pipe to us (the sync pipe) is gone after a daemon restart, so one timer polls every watched
 * conmon's /proc/<pid>/stat, its start time guarding against a reused pid: cheap (one small
 * read per container per tick) and the same after restore as after start [issue 12 item 5].
 */
import { processStartTime, readPidFile } from '../host/process.js';

/** Often enough that kubelet sees CONTAINER_UNKNOWN within its own 1 s poll or two. */
export const CONMON_POLL_MS = 1_000;

interface Watched {
  pid: number | null;
  startTime: string | null;
  onGone: (pid: number) => void;
}

export class ConmonWatches {
  private readonly watched = new Map<string, Watched>();
  private timer: NodeJS.Timeout | null = null;
  private polling = false;

  constructor(private readonly pollMs = CONMON_POLL_MS) {}

  /** Watches the conmon named in `pidFile` under `key` unless already watched; `onGone` fires once. */
  follow(key: string, pidFile: string, onGone: (pid: number) => void): void {
    if (this.watched.has(key)) return;
    const entry: Watched = { pid: null, startTime: null, onGone };
    this.watched.set(key, entry);
    this.arm();
    void (async () => {
      const pid = await readPidFile(pidFile);
      if (this.watched.get(key) !== entry) return;
      // No pid file: nothing was launched that we could watch (an old record, a dir gone).
      if (pid === null) return this.stop(key);
      const startTime = await processStartTime(pid);
      if (this.watched.get(key) !== entry) return;
      if (startTime === null) {
        this.stop(key);
        return onGone(pid); // gone already
      }
      entry.startTime = startTime;
      entry.pid = pid;
    })();
  }

  stop(key: string): void {
    this.watched.delete(key);
    if (this.watched.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  stopAll(): void {
    for (const key of [...this.watched.keys()]) this.stop(key);
  }

  private arm(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.poll(), this.pollMs);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    if (this.polling) return; // a slow /proc never piles reads up
    this.polling = true;
    try {
      await Promise.all([...this.watched].map(async ([key, entry]) => {
        if (entry.pid === null) return;
        const now = await processStartTime(entry.pid);
        if (now !== null && now === entry.startTime) return;
        if (this.watched.get(key) !== entry) return;
        this.stop(key);
        entry.onGone(entry.pid);
      }));
    } finally {
      this.polling = false;
    }
  }
}
