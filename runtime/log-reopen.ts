/**
 * ReopenContainerLog through conmon: kubelet has renamed the log file and expects a new one at the
 * same path when the call returns (critest checks at once). conmon reopens on a control-fifo
 * message, asynchronously, so the call waits for the new file to appear, as CRI-O does with a
 * file watcher, within a deadline.
 */
import { watch, existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

/** conmon's control message: "<type> <height> <width>\n"; type 2 reopens the log. */
const REOPEN_LOG = '2 0 0\n';

export async function reopenLog(ctlFifo: string, logPath: string, timeoutMs: number): Promise<void> {
  if (!logPath) {
    await writeFile(ctlFifo, REOPEN_LOG, { flag: 'a' });
    return;
  }
  const controller = new AbortController();
  try {
    // The watch starts before the message is sent, so the creation cannot be missed.
    const created = new Promise<void>((resolve, reject) => {
      const watcher = watch(dirname(logPath), { signal: controller.signal }, (_event, name) => {
        if (name === basename(logPath) && existsSync(logPath)) resolve();
      });
      watcher.on('error', (err) => {
        if (err.name !== 'AbortError') reject(err);
      });
      const timer = setTimeout(() => reject(new Error(`conmon did not reopen ${logPath} within ${timeoutMs} ms`)), timeoutMs);
      controller.signal.addEventListener('abort', () => clearTimeout(timer));
    });
    await writeFile(ctlFifo, REOPEN_LOG, { flag: 'a' });
    if (!existsSync(logPath)) await created;
  } finally {
    controller.abort();
  }
}
