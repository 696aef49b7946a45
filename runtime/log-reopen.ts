/**
 * ReopenContainerLog through conmon: kubelet has renamed the log file and expects a new one at the
 * same path when the call returns (critest checks at once). conmon reopens on a control-fifo
 * message, asynchronously, so the call waits for the new file to appear, as CRI-O does with a
 * file watcher, within a deadline.
 */
import { watch, existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { logFilePath, secureLogFile, type LogFile } from './log-path.js';

/** conmon's control message: "<type> <height> <width>\n"; type 2 reopens the log. */
const REOPEN_LOG = '2 0 0\n';

/**
 * `file` null: the log is in the container's own dir, which only the daemon writes. Otherwise
 * conmon will open `<path>.tmp` and rename it over `<path>`, following links on the way, so both
 * and the directories above them are checked first (runtime/log-path.ts); a refusal leaves conmon
 * writing to the file it has.
 */
export async function reopenLog(ctlFifo: string, file: LogFile | null, timeoutMs: number): Promise<void> {
  if (!file) {
    await writeFile(ctlFifo, REOPEN_LOG, { flag: 'a' });
    return;
  }
  await secureLogFile(file, 'reopen');
  const logPath = logFilePath(file);
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
