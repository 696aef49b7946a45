/**
 * Clients of the streaming server for the end-to-end tests: the stock crictl on a test daemon's
 * socket, a bare upgrade request (to see the status line and nothing more), and a small SPDY
 * client (spdy-transport as the client side) for a StreamingServer no crictl can be pointed at.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import transport, { type Connection, type SpdyStream } from 'spdy-transport';
import { CRICTL } from './stock-clients.js';
import type { DaemonPaths } from './daemon.js';
import { untilEvent } from './until-event.js';

// The client half of spdy-transport, which podchart itself never uses (streaming/spdy-transport.d.ts).
declare module 'spdy-transport' {
  interface Connection {
    request(uri: { method: string; path: string; host: string; headers: Record<string, string> }, callback: (err: Error | null, stream: SpdyStream) => void): SpdyStream;
  }
}

export interface CrictlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** crictl's arguments for this daemon's socket only (an empty config, so no /etc/crictl.yaml). */
export function crictlArgs(paths: DaemonPaths, args: readonly string[]): string[] {
  const socket = `unix://${paths.socket}`;
  const config = join(paths.base, 'crictl.yaml');
  if (!existsSync(config)) writeFileSync(config, '');
  return ['--config', config, '--runtime-endpoint', socket, '--image-endpoint', socket, '--timeout', '30s', ...args];
}

/** crictl as a shell command line (for tmux), every word single-quoted. */
export function crictlCommandLine(paths: DaemonPaths, args: readonly string[]): string {
  return [CRICTL ?? 'crictl', ...crictlArgs(paths, args)].map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
}

export function spawnCrictl(paths: DaemonPaths, args: readonly string[]): ChildProcessWithoutNullStreams {
  return spawn(CRICTL ?? 'crictl', crictlArgs(paths, args), { stdio: ['pipe', 'pipe', 'pipe'] });
}

/** crictl to its end, stdin given or closed. */
export function crictl(paths: DaemonPaths, args: readonly string[], stdin = '', timeoutMs = 60_000): Promise<CrictlResult> {
  const child = spawnCrictl(paths, args);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(stdin);
  return untilEvent<CrictlResult>(`crictl ${args.join(' ')}`, timeoutMs, (done) => {
    child.once('close', (code) => done({ code, stdout, stderr }));
    return () => child.kill('SIGKILL');
  });
}

/** A running crictl whose output is collected; `until` waits for a pattern in its stdout. */
export class CrictlSession {
  readonly child: ChildProcessWithoutNullStreams;
  stdout = '';
  stderr = '';
  readonly closed: Promise<number | null>;

  constructor(paths: DaemonPaths, readonly args: readonly string[]) {
    this.child = spawnCrictl(paths, args);
    this.child.stdout.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.child.stdin.on('error', () => undefined); // a write after crictl exited: its end is asserted on instead
    this.closed = new Promise((resolve) => this.child.once('close', resolve));
  }

  /** Resolves once stdout matches `pattern`; fails if crictl ends first or at the deadline. */
  until(pattern: RegExp, timeoutMs = 20_000): Promise<void> {
    return untilEvent<void>(`crictl ${this.args.join(' ')} to print ${String(pattern)}`, timeoutMs, (done, fail) => {
      const onData = (): void => {
        if (pattern.test(this.stdout)) done();
      };
      const onClose = (code: number | null): void => fail(new Error(`crictl exited (${code}) before printing ${String(pattern)}; stdout ${JSON.stringify(this.stdout)}, stderr ${JSON.stringify(this.stderr)}`));
      this.child.stdout.on('data', onData);
      this.child.once('close', onClose);
      onData();
      return () => {
        this.child.stdout.off('data', onData);
        this.child.off('close', onClose);
      };
    });
  }

  /** Resolves with crictl's exit code. */
  exit(timeoutMs = 20_000): Promise<number | null> {
    return untilEvent<number | null>(`crictl ${this.args.join(' ')} to exit`, timeoutMs, (done) => {
      void this.closed.then(done);
      return () => undefined;
    });
  }
}

export const SPDY_V4_HEADERS: Readonly<Record<string, string>> = { Connection: 'Upgrade', Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': 'v4.channel.k8s.io' };

/** Opens `url` as client-go does (POST, Upgrade to SPDY/3.1, v4 offered): the status line's code. */
export function upgrade(url: string, headers: Readonly<Record<string, string>> = SPDY_V4_HEADERS, method = 'POST'): Promise<{ status: number; socket: Socket | null }> {
  return untilEvent('the streaming server to answer', 10_000, (done, fail) => {
    const req = request(url, { method, headers });
    req.on('upgrade', (res: IncomingMessage, socket: Socket) => done({ status: res.statusCode ?? 0, socket }));
    req.on('response', (res: IncomingMessage) => {
      res.resume();
      done({ status: res.statusCode ?? 0, socket: null });
    });
    req.on('error', fail);
    req.end();
    return () => undefined;
  });
}

export type StreamType = 'error' | 'stdin' | 'stdout' | 'stderr' | 'resize';

/**
 * A session over SPDY v4 opened as client-go opens it: the error stream, then one stream per
 * channel asked for (resize with a tty). What the server writes is collected per stream; `ended`
 * resolves once the server has ended the error stream and every output stream.
 */
export class SpdySession {
  readonly output: Record<'stdout' | 'stderr' | 'error', string> = { stdout: '', stderr: '', error: '' };
  readonly streams = new Map<StreamType, SpdyStream>();
  readonly ended: Promise<void>;

  /** Resolves once every stream's SYN_STREAM has gone out (data written before that is lost). */
  private readonly sent: Promise<void>;

  private constructor(readonly socket: Socket, conn: Connection, types: StreamType[]) {
    const ends: Promise<void>[] = [];
    const sent: Promise<void>[] = [];
    for (const type of types) {
      let onSent: () => void = () => undefined;
      sent.push(new Promise<void>((resolve) => (onSent = resolve)));
      const stream = conn.request({ method: 'POST', path: '/', host: 'localhost', headers: { streamtype: type } }, () => onSent());
      stream.on('error', () => undefined); // reset when the connection goes: `ended` or the caller's deadline tells
      this.streams.set(type, stream);
      if (type === 'stdout' || type === 'stderr' || type === 'error') {
        stream.on('data', (d: Buffer) => (this.output[type] += d.toString()));
        ends.push(new Promise<void>((resolve) => stream.once('end', resolve)));
      }
    }
    this.sent = Promise.all(sent).then(() => undefined);
    this.ended = Promise.all(ends).then(() => undefined);
  }

  /** Upgrades `url` (101 expected) and opens the streams `want` asks for. */
  static async open(url: string, want: { stdin?: boolean; stdout?: boolean; stderr?: boolean; tty?: boolean }): Promise<SpdySession> {
    const { status, socket } = await upgrade(url);
    if (status !== 101 || !socket) throw new Error(`expected 101 Switching Protocols from ${url}, got ${status}`);
    const conn = transport.connection.create(socket, { protocol: 'spdy', isServer: false });
    conn.start(3.1);
    const types: StreamType[] = ['error'];
    if (want.stdin) types.push('stdin');
    if (want.stdout) types.push('stdout');
    if (want.stderr && !want.tty) types.push('stderr');
    if (want.tty) types.push('resize');
    const session = new SpdySession(socket, conn, types);
    await untilEvent<void>(`the streams of ${url} to be opened`, 10_000, (done, fail) => {
      session.sent.then(done, fail);
      return () => undefined;
    });
    // As client-go: the terminal's size first thing on the resize stream.
    if (want.tty) session.streams.get('resize')?.write('{"Width":80,"Height":24}\n');
    return session;
  }

  /** Resolves once the stream `type` has received text matching `pattern`. */
  until(type: 'stdout' | 'stderr' | 'error', pattern: RegExp, timeoutMs = 20_000): Promise<void> {
    const stream = this.streams.get(type);
    if (!stream) throw new Error(`no ${type} stream was opened`);
    return untilEvent<void>(`${type} to show ${String(pattern)}`, timeoutMs, (done) => {
      const check = (): void => {
        if (pattern.test(this.output[type])) done();
      };
      stream.on('data', check);
      check();
      return () => stream.off('data', check);
    });
  }

  /** The whole session: the streams ended by the server, the connection closed by us after. */
  async finish(timeoutMs = 20_000): Promise<Record<'stdout' | 'stderr' | 'error', string>> {
    try {
      await untilEvent<void>('the server to end the session', timeoutMs, (done, fail) => {
        this.ended.then(done, fail);
        return () => undefined;
      });
      return this.output;
    } finally {
      this.socket.destroy();
    }
  }

  /** The client goes away (no GOAWAY, the socket just closes). */
  drop(): void {
    this.socket.destroy();
  }
}

/** A whole no-tty session with stdout: what the command printed and the error stream's Status. */
export async function spdyExec(url: string, timeoutMs = 20_000): Promise<{ stdout: string; error: string }> {
  const session = await SpdySession.open(url, { stdout: true });
  const { stdout, error } = await session.finish(timeoutMs);
  return { stdout, error };
}
