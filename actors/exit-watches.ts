/** One inotify watch per live process (pause or container): its exit file becomes an EXIT event. */
import { watchExitFile } from '../runtime/exit-file.js';
import type { ExitInfo } from '../machines/sandbox.types.js';

export class ExitWatches {
  private readonly watches = new Map<string, () => void>();

  /** Watches `<exitDir>/<id>` under `key` unless already watched; `onExit` fires once. */
  follow(key: string, exitDir: string, id: string, onExit: (exit: ExitInfo) => void): void {
    if (this.watches.has(key)) return;
    const stop = watchExitFile(exitDir, id, (exit) => {
      this.watches.delete(key);
      onExit(exit);
    });
    this.watches.set(key, stop);
  }

  stop(key: string): void {
    this.watches.get(key)?.();
    this.watches.delete(key);
  }

  stopAll(): void {
    for (const stop of this.watches.values()) stop();
    this.watches.clear();
  }
}
