/**
 * The streaming server (issue 10): loopback HTTP on `streamingAddress`, serving the URLs that the
 * Exec RPC answers with. `POST /exec/<token>` with an Upgrade to SPDY/3.1 takes the request parked
 * under the one-time token (streaming/request-cache.ts) and runs it; an unknown, used or expired
 * token gets 404 and nothing runs. `POST /portforward/<token>` likewise serves a PortForward
 * (streaming/portforward.ts). Not built yet: tty exec, attach, WebSocket.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { RequestCache } from './request-cache.js';
import { acceptSpdy, isSpdyUpgrade, negotiate, offeredProtocols, refuse } from './spdy.js';
import { collectStreams, errorStatus, EXEC_PROTOCOLS, exitStatus, expectedStreams, pipeToStream } from './remotecommand.js';
import { startExec, type ExecTarget } from '../runtime/exec-stream.js';
import { parseAddress } from '../config/address.js';
import { PORTFORWARD_PROTOCOLS, servePortForward, type PortForwardTarget } from './portforward.js';

/** An Exec RPC's request, validated, with where it runs. */
export interface ExecRequest {
  target: ExecTarget;
  cmd: string[];
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

export class StreamingServer {
  private readonly execs = new RequestCache<ExecRequest>();
  private readonly portForwards = new RequestCache<PortForwardTarget>();
  private readonly http: Server;
  private readonly sockets = new Set<Duplex>();
  private readonly sessions = new Set<Promise<void>>();
  private base = '';

  constructor(private readonly logger: Logger) {
    this.http = createServer((req, res) => {
      // Every streaming URL needs an upgrade; a plain request is refused as kubelet's server does.
      const known = /^\/(exec|portforward)\//.test(req.url ?? '');
      res.writeHead(known ? 400 : 404, { 'Content-Type': 'text/plain' }).end(known ? 'an Upgrade to SPDY/3.1 is required\n' : 'not found\n');
    });
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
  }

  /** Binds `address` (port 0: any free one); the URLs carry the bound port. */
  async listen(address: string): Promise<string> {
    const { host, port } = parseAddress(address, 'streamingAddress');
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => resolve());
    });
    const bound = this.http.address() as AddressInfo;
    this.base = `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
    return this.base;
  }

  /** Parks a validated Exec request; its URL (RESOURCE_EXHAUSTED when 1000 wait). */
  execUrl(request: ExecRequest): string {
    return `${this.base}/exec/${this.execs.insert(request)}`;
  }

  /** Parks a validated PortForward request; its URL (RESOURCE_EXHAUSTED when 1000 wait). */
  portForwardUrl(request: PortForwardTarget): string {
    return `${this.base}/portforward/${this.portForwards.insert(request)}`;
  }

  /** Stops listening and ends every session (their commands killed). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await Promise.allSettled([...this.sessions]);
    await closed;
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err) => this.logger.debug({ err: err.message }, 'streaming socket error'));
    if (req.url?.startsWith('/portforward/')) {
      this.onPortForwardUpgrade(req, socket, head);
      return;
    }
    const m = /^\/exec\/([A-Za-z0-9_-]+)$/.exec(req.url ?? '');
    const request = m?.[1] ? this.execs.consume(m[1]) : null;
    if (!request) {
      this.logger.info({ path: (req.url ?? '').replace(/[^/]*$/, '<token>') }, 'streaming request with an unknown, used or expired token refused');
      refuse(socket, 404, 'Not Found', 'unknown, used or expired streaming token');
      return;
    }
    if (!isSpdyUpgrade(req)) {
      refuse(socket, 400, 'Bad Request', `an Upgrade to SPDY/3.1 is required (got ${JSON.stringify(req.headers.upgrade ?? '')})`);
      return;
    }
    const protocol = negotiate(offeredProtocols(req), EXEC_PROTOCOLS);
    if (!protocol) {
      refuse(socket, 403, 'Forbidden', `unable to negotiate protocol: client offered ${JSON.stringify(offeredProtocols(req))}, server supports ${JSON.stringify(EXEC_PROTOCOLS)}`,
        { 'X-Accepted-Stream-Protocol-Versions': EXEC_PROTOCOLS.join(',') });
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const session = this.runExec(socket, head, protocol, request).catch((err: unknown) => {
      this.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'exec session failed');
      socket.destroy();
    });
    this.sessions.add(session);
    void session.finally(() => this.sessions.delete(session));
  }

  /** `/portforward/<token>`: the exec route's checks and answers, then a port-forward session. */
  private onPortForwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const token = /^\/portforward\/([A-Za-z0-9_-]+)$/.exec(req.url ?? '')?.[1];
    const target = token ? this.portForwards.consume(token) : null;
    if (!target) {
      this.logger.info({ path: '/portforward/<token>' }, 'streaming request with an unknown, used or expired token refused');
      refuse(socket, 404, 'Not Found', 'unknown, used or expired streaming token');
      return;
    }
    if (!isSpdyUpgrade(req)) {
      refuse(socket, 400, 'Bad Request', `an Upgrade to SPDY/3.1 is required (got ${JSON.stringify(req.headers.upgrade ?? '')})`);
      return;
    }
    const protocol = negotiate(offeredProtocols(req), PORTFORWARD_PROTOCOLS);
    if (!protocol) {
      refuse(socket, 403, 'Forbidden', `unable to negotiate protocol: client offered ${JSON.stringify(offeredProtocols(req))}, server supports ${JSON.stringify(PORTFORWARD_PROTOCOLS)}`,
        { 'X-Accepted-Stream-Protocol-Versions': PORTFORWARD_PROTOCOLS.join(',') });
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const logger = this.logger.child({ portForward: target.podId });
    const conn = acceptSpdy(socket, head, protocol);
    conn.on('error', (err: Error) => logger.debug({ err: err.message }, 'spdy connection error'));
    logger.info({ ports: target.ports }, 'port-forward session started');
    const session = servePortForward(conn, target, logger).then(() => logger.info('port-forward session ended'));
    this.sessions.add(session);
    void session.finally(() => this.sessions.delete(session));
  }

  private async runExec(socket: Duplex, head: Buffer, protocol: string, req: ExecRequest): Promise<void> {
    const logger = this.logger.child({ exec: req.target.id, protocol });
    const conn = acceptSpdy(socket, head, protocol);
    conn.on('error', (err: Error) => logger.debug({ err: err.message }, 'spdy connection error'));
    const streams = await collectStreams(conn, expectedStreams(req), logger);
    const errorStream = streams.get('error');
    if (!errorStream) throw new Error('no error stream'); // expectedStreams always names it
    logger.info({ cmd: req.cmd, streams: [...streams.keys()] }, 'exec session started');
    let exec;
    try {
      exec = await startExec(req.target, req.cmd, { stdin: streams.has('stdin'), stdout: streams.has('stdout'), stderr: streams.has('stderr') });
    } catch (err) {
      const message = errorStatus(protocol, `exec in ${req.target.id} failed: ${err instanceof Error ? err.message : String(err)}`);
      await Promise.race([new Promise<void>((resolve) => errorStream.end(message, resolve)), new Promise((resolve) => socket.once('close', resolve))]);
      conn.end();
      return;
    }
    // The client going away mid-exec kills the command and everything it started.
    // Once the socket is gone no stream callback fires again: every wait below also ends then.
    const gone = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const onGone = (): void => void exec.kill().catch((err: unknown) => logger.error({ err }, 'killing an abandoned exec failed'));
    socket.once('close', onGone);
    const stdin = streams.get('stdin');
    if (stdin && exec.stdin) stdin.pipe(exec.stdin);
    const copies: Promise<void>[] = [];
    const stdout = streams.get('stdout');
    const stderr = streams.get('stderr');
    if (stdout && exec.stdout) copies.push(pipeToStream(exec.stdout, stdout));
    if (stderr && exec.stderr) copies.push(pipeToStream(exec.stderr, stderr));
    const exitCode = await exec.exited;
    await Promise.race([Promise.all(copies), gone]);
    socket.off('close', onGone);
    logger.info({ exitCode }, 'exec session ended');
    // Output first, then the result: client-go waits for both, and reads the error stream to its end.
    // Gotcha: conn.end() sends GOAWAY straight to the framer, ahead of DATA still queued in a
    // stream's writable buffer; the Go client then drops the error stream's last frame (and with
    // it the exit code). So GOAWAY goes only once the error stream has handed everything over.
    await Promise.race([new Promise<void>((resolve) => errorStream.end(exitStatus(protocol, exitCode, req.cmd), resolve)), gone]);
    stdin?.unpipe();
    conn.end();
  }
}
