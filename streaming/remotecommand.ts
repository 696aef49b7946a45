/**
 * The remotecommand subprotocols over SPDY for exec (kubelet's pkg/cri/streaming/remotecommand,
 * httpstream.go): the client opens one SPDY stream per channel, named by its `streamtype` header
 * (error, stdin, stdout, stderr, resize); we answer each with SYN_REPLY (the Go client waits for
 * the reply before it uses a stream), wait until every stream the request asked for is there, run
 * the command, end stdout/stderr, then write the result on the error stream and end it.
 *
 * The result: v4.channel.k8s.io writes a metav1.Status as JSON (Success, or Failure with reason
 * NonZeroExitCode and a cause {reason: "ExitCode", message: "<code>"}, which client-go turns into
 * an exec.CodeExitError); the older protocols write the message as plain text, nothing on success.
 */
import type { Connection, SpdyStream } from 'spdy-transport';
import type { Logger } from 'pino';
import type { Readable } from 'node:stream';

export const V4 = 'v4.channel.k8s.io';
/** Ours, most preferred first. */
export const EXEC_PROTOCOLS = [V4, 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'] as const;

/** How long the client gets to open its streams (kubelet's streamCreationTimeout). */
export const STREAM_CREATION_TIMEOUT_MS = 30_000;

export type StreamType = 'error' | 'stdin' | 'stdout' | 'stderr' | 'resize';
const STREAM_TYPES: readonly string[] = ['error', 'stdin', 'stdout', 'stderr', 'resize'];

/** The streams a request expects: error always, the rest as asked (stderr never with a tty). */
export function expectedStreams(want: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }): Set<StreamType> {
  const s = new Set<StreamType>(['error']);
  if (want.stdin) s.add('stdin');
  if (want.stdout) s.add('stdout');
  if (want.stderr && !want.tty) s.add('stderr');
  if (want.tty) s.add('resize');
  return s;
}

/** Accepts the client's streams until `expected` are all there; rejects at the timeout or on close. */
export function collectStreams(conn: Connection, expected: ReadonlySet<StreamType>, logger: Logger, timeoutMs = STREAM_CREATION_TIMEOUT_MS): Promise<Map<StreamType, SpdyStream>> {
  return new Promise((resolve, reject) => {
    const got = new Map<StreamType, SpdyStream>();
    const timer = setTimeout(() => finish(new Error(`the client opened ${[...got.keys()].join(', ') || 'no streams'} of ${[...expected].join(', ')} within ${timeoutMs} ms`)), timeoutMs);
    const onClose = (): void => finish(new Error('the connection closed before every stream was opened'));
    const finish = (err: Error | null): void => {
      clearTimeout(timer);
      conn.off('stream', onStream);
      conn.off('close', onClose);
      if (err) reject(err);
      else resolve(got);
    };
    const onStream = (stream: SpdyStream): void => {
      // A stream reset by the client (or by its connection closing) must not become an uncaught 'error'.
      stream.on('error', (err: Error) => logger.debug({ err: err.message, stream: stream.headers['streamtype'] }, 'spdy stream error'));
      const type = stream.headers['streamtype'] ?? '';
      if (!STREAM_TYPES.includes(type) || got.has(type as StreamType)) {
        logger.warn({ streamtype: type }, 'unexpected or repeated stream refused');
        stream.abort();
        return;
      }
      stream.respond(200, {});
      // Streams we only write to: drain whatever the client sends, so its window never fills.
      if (type !== 'stdin' && type !== 'resize') stream.resume();
      got.set(type as StreamType, stream);
      if ([...expected].every((t) => got.has(t))) finish(null);
    };
    conn.on('stream', onStream);
    conn.on('close', onClose);
  });
}

/** Copies `from` into a SPDY stream and ends it (FIN) once `from` ends; resolves when all is handed to the framer. */
export function pipeToStream(from: Readable, to: SpdyStream): Promise<void> {
  return new Promise((resolve) => {
    from.on('data', (chunk: Buffer) => {
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
    const done = (): void => {
      to.end(() => resolve());
    };
    from.once('end', done);
    from.once('error', done);
  });
}

/** What the error stream says for an exit code, in the negotiated protocol; "" says nothing. */
export function exitStatus(protocol: string, exitCode: number, cmd: readonly string[]): string {
  const message = `command terminated with non-zero exit code: error executing command ${JSON.stringify(cmd)}, exit code ${exitCode}`;
  if (protocol !== V4) return exitCode === 0 ? '' : message;
  if (exitCode === 0) return JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success' });
  return JSON.stringify({
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  });
}

/** A failure that is not the command's exit code (runc could not start it). */
export function errorStatus(protocol: string, message: string): string {
  if (protocol !== V4) return message;
  return JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: 'InternalError', code: 500 });
}
