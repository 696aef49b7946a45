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
import type { Duplex } from 'node:stream';
import type { ClientChannels, SessionResult } from './session.js';

export const V4 = 'v4.channel.k8s.io';
export const V3 = 'v3.channel.k8s.io';
/** Ours, most preferred first. */
export const EXEC_PROTOCOLS = [V4, V3, 'v2.channel.k8s.io', 'channel.k8s.io'] as const;

/** How long a client may keep the connection after the result was sent. */
const CLIENT_CLOSE_GRACE_MS = 5_000;

/** How long the client gets to open its streams (kubelet's streamCreationTimeout). */
export const STREAM_CREATION_TIMEOUT_MS = 30_000;

export type StreamType = 'error' | 'stdin' | 'stdout' | 'stderr' | 'resize';
const STREAM_TYPES: readonly string[] = ['error', 'stdin', 'stdout', 'stderr', 'resize'];

/**
 * The streams a request expects: error always, the rest as asked (stderr never with a tty), and
 * resize with a tty from v3 on (the older protocols have no resize stream).
 */
export function expectedStreams(protocol: string, want: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }): Set<StreamType> {
  const s = new Set<StreamType>(['error']);
  if (want.stdin) s.add('stdin');
  if (want.stdout) s.add('stdout');
  if (want.stderr && !want.tty) s.add('stderr');
  if (want.tty && (protocol === V4 || protocol === V3)) s.add('resize');
  return s;
}

/**
 * The session's view of the client's SPDY streams. The end: the result on the error stream, and
 * only once that stream has handed everything over, GOAWAY. Gotcha: conn.end() sends GOAWAY
 * straight to the framer, ahead of DATA still queued in a stream's writable buffer; the Go client
 * then drops the error stream's last frame (and with it the exit code).
 */
export function spdyChannels(conn: Connection, socket: Duplex, streams: Map<StreamType, SpdyStream>, protocol: string, cmd: readonly string[]): ClientChannels {
  const gone = new Promise<void>((resolve) => {
    if (socket.destroyed) resolve();
    socket.once('close', () => resolve());
  });
  const errorStream = streams.get('error');
  return {
    stdin: streams.get('stdin') ?? null,
    stdout: streams.get('stdout') ?? null,
    stderr: streams.get('stderr') ?? null,
    resize: streams.get('resize') ?? null,
    gone,
    finish: async (result) => {
      const text = resultText(protocol, result, cmd);
      if (errorStream) {
        await Promise.race([new Promise<void>((resolve) => (text ? errorStream.end(text, () => resolve()) : errorStream.end(() => resolve()))), gone]);
      }
      conn.end();
      // The client closes the connection once it has read the result; one that does not is
      // closed for it (kubelet closes it too), so its socket cannot outlive the session.
      const timer = setTimeout(() => socket.destroy(), CLIENT_CLOSE_GRACE_MS);
      socket.once('close', () => clearTimeout(timer));
    },
  };
}

/** The error stream's text for a session's result, in the negotiated protocol. */
export function resultText(protocol: string, result: SessionResult, cmd: readonly string[]): string {
  if ('error' in result) return errorStatus(protocol, result.error);
  return exitStatus(protocol, result.exitCode ?? 0, cmd);
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
