/**
 * One exec or attach session, whatever protocol carries it (SPDY or WebSocket): the client's
 * channels on one side, the process (runc exec, or conmon's attach socket) on the other. stdin and
 * resizes flow in, stdout and stderr flow out; at the end every output channel is closed, then
 * the result goes on the error channel (client-go waits for the output before it reads it), then
 * the connection closes. A client that goes away aborts the process: an exec is killed with
 * everything it started, an attach lets go of the container.
 */
import type { Logger } from 'pino';
import type { Readable, Writable } from 'node:stream';
import type { TerminalSize } from '../runtime/exec-stream.js';

/** A running exec or attach. */
export interface StreamedProcess {
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
  resize(size: TerminalSize): void | Promise<void>;
  /** The exit code (exec), or null when there is none to report (attach). */
  done: Promise<number | null>;
  abort(): Promise<void>;
}

export type SessionResult = { exitCode: number | null } | { error: string };

/** The client's side of a session, as its protocol presents it. */
export interface ClientChannels {
  stdin: Readable | null;
  stdout: Writable | null;
  stderr: Writable | null;
  /** Terminal sizes, one JSON object `{"Width":…,"Height":…}` per message. */
  resize: Readable | null;
  /** Resolves once the connection is gone (nothing reaches the client after that). */
  gone: Promise<void>;
  /** Sends the result on the error channel and closes the connection. */
  finish(result: SessionResult): Promise<void>;
}

/** Runs a session to its end; never rejects (a failure to start is the client's result). */
export async function runSession(client: ClientChannels, start: () => Promise<StreamedProcess>, logger: Logger): Promise<SessionResult> {
  let proc: StreamedProcess;
  try {
    proc = await start();
  } catch (err) {
    const result = { error: err instanceof Error ? err.message : String(err) };
    // Nothing will come on the output channels: they end before the result, as after a run.
    await Promise.race([Promise.all([copyOut(null, client.stdout), copyOut(null, client.stderr)]), client.gone]);
    await client.finish(result);
    return result;
  }
  let over = false;
  void client.gone.then(() => {
    if (!over) proc.abort().catch((err: unknown) => logger.error({ err }, 'ending an abandoned session failed'));
  });
  if (client.stdin && proc.stdin) client.stdin.pipe(proc.stdin);
  else proc.stdin?.end();
  if (client.resize) readResizes(client.resize, (size) => proc.resize(size), logger);
  const copies = [copyOut(proc.stdout, client.stdout), copyOut(proc.stderr, client.stderr)];
  const exitCode = await proc.done;
  await Promise.race([Promise.all(copies), client.gone]);
  over = true;
  if (client.stdin && proc.stdin) client.stdin.unpipe(proc.stdin);
  const result = { exitCode };
  await client.finish(result);
  return result;
}

/**
 * Copies the process's output to the client's channel and closes the channel when the output
 * ends; resolves once everything is handed to the protocol. A source without a channel is
 * drained; a channel without a source is closed at once.
 */
export function copyOut(from: Readable | null, to: Writable | null): Promise<void> {
  if (!from) return to ? new Promise<void>((resolve) => to.end(resolve)) : Promise.resolve();
  if (!to) {
    from.resume();
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    from.on('data', (chunk: Buffer) => {
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
    const done = (): void => void to.end(() => resolve());
    from.once('end', done);
    from.once('error', done);
  });
}

/** Longest resize message kept while waiting for its end; anything longer is not a resize. */
const MAX_RESIZE_MESSAGE = 4096;

/**
 * The resize channel: client-go's json.Encoder writes one object per line. A message that is not a
 * size is logged and skipped; the session goes on (kubelet does the same).
 */
export function readResizes(from: Readable, onSize: (size: TerminalSize) => void | Promise<void>, logger: Logger): void {
  let pending = '';
  from.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      handle(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
    // A sender without newlines: a whole object in one message is still taken.
    if (pending.trim().endsWith('}') && parseSize(pending)) {
      handle(pending);
      pending = '';
    }
    if (pending.length > MAX_RESIZE_MESSAGE) {
      logger.warn({ bytes: pending.length }, 'resize message too long, dropped');
      pending = '';
    }
  });
  const handle = (line: string): void => {
    if (!line.trim()) return;
    const size = parseSize(line);
    if (!size) {
      logger.warn({ message: line.slice(0, 200) }, 'resize message is not {"Width":n,"Height":n}, ignored');
      return;
    }
    Promise.resolve(onSize(size)).catch((err: unknown) => logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'resize failed'));
  };
}

export function parseSize(text: string): TerminalSize | null {
  try {
    const v = JSON.parse(text) as { Width?: unknown; Height?: unknown };
    const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffff;
    return v && ok(v.Width) && ok(v.Height) ? { width: v.Width, height: v.Height } : null;
  } catch {
    return null;
  }
}
