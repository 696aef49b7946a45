/**
 * ReopenContainerLog through conmon: kubelet has renamed the log file and expects a new one at the
 * same path when the call returns (critest checks at once). conmon reopens on a control-fifo
 * message, asynchronously, so the call waits for the new file to appear, as CRI-O does with a
 * file watcher, within a deadline.
 */
import { constants, watch, existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { Refused } from '../errors/catalogue.js';
import { logFilePath, secureLogFile, type LogFile } from './log-path.js';

/** conmon's control message: "<type> <height> <width>\n"; type 2 reopens the log. */
const REOPEN_LOG = '2 0 0\n';

/**
 * Writes the message without ever blocking: a blocking open of a fifo with no reader (conmon
 * dead) waits for ever in libuv's thread pool, and four such calls stall every file operation of
 * the daemon [issue 12 item 5]. O_NONBLOCK makes that open fail at once with ENXIO; a full fifo
 * (conmon alive but not reading) fails the write with EAGAIN rather than waiting.
 */
export async function sendControl(ctlFifo: string, message: string): Promise<void> {
  let handle;
  try {
    handle = await open(ctlFifo, constants.O_WRONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENXIO' || code === 'ENOENT') throw new Refused(`conmon is not running: nothing reads its control fifo ${ctlFifo}`);
    throw err;
  }
  try {
    await handle.write(message);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EAGAIN') throw new Refused(`conmon is not reading its control fifo ${ctlFifo}`);
    throw err;
  } finally {
    await handle.close();
  }
}

/**
 * `file` null: the log is in the container's own dir, which only the daemon writes. Otherwise
 * conmon will open `<path>.tmp` and rename it over `<path>`, following links on the way, so both
 * and the directories above them are checked first (runtime/log-path.ts); a refusal leaves conmon
 * writing to the file it has.
 */
export async function reopenLog(ctlFifo: string, file: LogFile | null, timeoutMs: number): Promise<void> {
  if (!file) {
    await sendControl(ctlFifo, REOPEN_LOG);
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
    await sendControl(ctlFifo, REOPEN_LOG);
    if (!existsSync(logPath)) await created;
  } finally {
    controller.abort();
  }
}
