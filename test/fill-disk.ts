/** Fills a filesystem to its last block, as a runaway log would (the full-disk tests). */
import { closeSync, openSync, writeSync } from 'node:fs';

/** Writes zeros to `file` until the filesystem under it has no block left (ENOSPC). */
export function fillDisk(file: string): void {
  const fd = openSync(file, 'w');
  try {
    for (const size of [1 << 20, 4096]) {
      const chunk = Buffer.alloc(size);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
}
