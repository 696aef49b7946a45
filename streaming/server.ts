/**
 * The streaming server (issue 10): loopback HTTP on `streamingAddress`, serving the URLs that the
 * Exec, Attach and PortForward RPCs answer with. `POST /<kind>/<token>` with an Upgrade to SPDY/3.1 takes the
 * request parked under the one-time token (streaming/request-cache.ts) and runs it; an unknown,
 * used or expired token, or one used under another kind's path, gets 404 and nothing runs.
 * Both SPDY/3.1 (kubelet and crictl 1.26) and WebSocket (kubectl 1.30+) carry the sessions;
 * port-forward is streaming/portforward.ts (SPDY) and streaming/portforward-ws.ts.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { RequestCache } from './request-cache.js';
import { acceptSpdy, isSpdyUpgrade, negotiate, offeredProtocols, refuse } from './spdy.js';
import { collectStreams, EXEC_PROTOCOLS, expectedStreams, spdyChannels } from './remotecommand.js';
import { runSession, type ClientChannels, type StreamedProcess } from './session.js';
import { isWebSocketUpgrade, offeredWsProtocols, WS_EXEC_PROTOCOLS, wsChannels } from './websocket.js';
import type { WebSocketServer, WebSocket } from 'ws';
import { startExec, type ExecTarget } from '../runtime/exec-stream.js';
import { attachContainer, type AttachTarget } from '../runtime/attach.js';
import { parseAddress } from '../config/address.js';
import { PORTFORWARD_PROTOCOLS, servePortForward, type PortForwardTarget } from './portforward.js';
import { serveWsPortForward, WS_PORTFORWARD_PROTOCOLS, wsPorts } from './portforward-ws.js';

interface Streams {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/** An Exec RPC's request, validated, with where it runs. */
export interface ExecRequest extends Streams {
  kind: 'exec';
  target: ExecTarget;
  cmd: string[];
}

/** An Attach RPC's request, validated, with the container's conmon. */
export interface AttachRequest extends Streams {
  kind: 'attach';
  containerId: string;
  target: AttachTarget;
}

/** A PortForward RPC's request, validated, with the pod's network namespace. */
export interface PortForwardRequest {
  kind: 'portforward';
  target: PortForwardTarget;
}

export type StreamingRequest = ExecRequest | AttachRequest | PortForwardRequest;

/** An open session, as the inspector shows it on its container (exec, attach) or pod (port-forward). */
export interface SessionInfo {
  kind: StreamingRequest['kind'];
  actorId: string;
  /** The client's address (kubelet, crictl: always loopback here, the server binds only that). */
  peer: string;
  protocol: string;
  since: string;
  /** An exec's command name (not its arguments, which may carry secrets). */
  command?: string;
  tty: boolean;
  ports?: number[];
}

const KINDS: readonly string[] = ['exec', 'attach', 'portforward'];
/** Largest WebSocket message taken from a client (stdin arrives in chunks far below this). */
const MAX_WS_MESSAGE = 1 << 20;

export class StreamingServer {
  private readonly requests: RequestCache<StreamingRequest>;
  private readonly http: Server;
  private readonly sockets = new Set<Duplex>();
  private readonly running = new Map<Promise<void>, SessionInfo>();
  private readonly listeners = new Set<(actorId: string) => void>();
  /**
   * WebSocket framing for upgrades we have already accepted (noServer: routing stays ours). Made
   * on the first WebSocket session, with `ws` loaded then, not at start (issue 14: idle memory).
   */
  private ws: Promise<WebSocketServer> | null = null;
  private base = '';

  /** `tokenTtlMs`: how long a URL stays usable (a minute, as kubelet's; tests shorten it). */
  constructor(private readonly logger: Logger, options: { tokenTtlMs?: number } = {}) {
    this.requests = new RequestCache<StreamingRequest>(undefined, undefined, options.tokenTtlMs);
    this.http = createServer((req, res) => {
      // Every streaming URL needs an upgrade; a plain request is refused as kubelet's server does.
      const known = KINDS.includes((req.url ?? '').split('/')[1] ?? '');
      res.writeHead(known ? 400 : 404, { 'Content-Type': 'text/plain' }).end(known ? 'an Upgrade to SPDY/3.1 or websocket is required\n' : 'not found\n');
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

  /** Parks a validated request; its URL (RESOURCE_EXHAUSTED when 1000 wait). */
  url(request: StreamingRequest): string {
    return `${this.base}/${request.kind}/${this.requests.insert(request)}`;
  }

  /** The sessions open now, oldest first. */
  sessions(): SessionInfo[] {
    return [...this.running.values()];
  }

  /** Calls `listener` with the actor's id whenever a session on it opens or ends; returns the unsubscribe. */
  onSessionsChanged(listener: (actorId: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(actorId: string): void {
    for (const l of this.listeners) l(actorId);
  }

  /** Stops listening and ends every session (execs killed, attaches let go). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await Promise.allSettled([...this.running.keys()]);
    await closed;
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err) => this.logger.debug({ err: err.message }, 'streaming socket error'));
    const m = /^\/([a-z]+)\/([A-Za-z0-9_-]+)(?:\?.*)?$/.exec(req.url ?? '');
    const request = m?.[1] && m[2] && KINDS.includes(m[1]) ? this.requests.consume(m[2]) : null;
    if (!request || request.kind !== m?.[1]) {
      this.logger.info({ path: (req.url ?? '').replace(/\?.*$/, '').replace(/[^/]*$/, '<token>') }, 'streaming request with an unknown, used or expired token refused');
      refuse(socket, 404, 'Not Found', 'unknown, used or expired streaming token');
      return;
    }
    if (isSpdyUpgrade(req)) {
      const supported = request.kind === 'portforward' ? PORTFORWARD_PROTOCOLS : EXEC_PROTOCOLS;
      const protocol = negotiate(offeredProtocols(req), supported);
      if (!protocol) return refuseProtocol(socket, offeredProtocols(req), supported);
      this.track(req, socket, request, protocol, (logger) => this.serveSpdy(socket, head, protocol, request, logger));
    } else if (isWebSocketUpgrade(req)) {
      if (req.method !== 'GET' || !req.headers['sec-websocket-key']) return refuse(socket, 400, 'Bad Request', 'a WebSocket upgrade is a GET with Sec-WebSocket-Key');
      if (request.kind === 'portforward') {
        const ports = wsPorts(req.url ?? '', request.target);
        if (typeof ports === 'string') return refuse(socket, 400, 'Bad Request', ports);
        const protocol = negotiate(offeredWsProtocols(req), WS_PORTFORWARD_PROTOCOLS);
        if (!protocol) return refuseProtocol(socket, offeredWsProtocols(req), WS_PORTFORWARD_PROTOCOLS);
        this.track(req, socket, request, protocol, async (logger) => {
          const ws = await this.acceptWebSocket(req, socket, head, logger);
          logger.info({ ports }, 'port-forward session started');
          await serveWsPortForward(ws, request.target, ports, logger);
          logger.info('port-forward session ended');
        });
        return;
      }
      const protocol = negotiate(offeredWsProtocols(req), WS_EXEC_PROTOCOLS);
      if (!protocol) return refuseProtocol(socket, offeredWsProtocols(req), WS_EXEC_PROTOCOLS);
      this.track(req, socket, request, protocol, (logger) => this.serveWebSocket(req, socket, head, protocol, request, logger));
    } else {
      refuse(socket, 400, 'Bad Request', `an Upgrade to SPDY/3.1 or websocket is required (got ${JSON.stringify(req.headers.upgrade ?? '')})`);
    }
  }

  /** Runs a session, listed in sessions() while it lasts; its socket is destroyed at close(). */
  private track(req: IncomingMessage, socket: Duplex, request: StreamingRequest, protocol: string, serve: (logger: Logger) => Promise<void>): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const info: SessionInfo = {
      kind: request.kind,
      actorId: actorOf(request),
      peer: `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`,
      protocol,
      since: new Date().toISOString(),
      tty: request.kind !== 'portforward' && request.tty,
      ...(request.kind === 'exec' && request.cmd[0] !== undefined ? { command: request.cmd[0] } : {}),
      ...(request.kind === 'portforward' ? { ports: request.target.ports } : {}),
    };
    const logger = this.logger.child({ [request.kind]: info.actorId, protocol });
    const session = serve(logger).catch((err: unknown) => {
      logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'streaming session failed');
      socket.destroy();
    });
    this.running.set(session, info);
    this.changed(info.actorId);
    void session.finally(() => {
      this.running.delete(session);
      this.changed(info.actorId);
    });
  }

  private async serveSpdy(socket: Duplex, head: Buffer, protocol: string, req: StreamingRequest, logger: Logger): Promise<void> {
    const conn = await acceptSpdy(socket, head, protocol);
    // A protocol error (malformed or oversized frames) ends the connection, and with it the session.
    conn.on('error', (err: Error) => {
      logger.warn({ err: err.message }, 'spdy connection error, closing it');
      socket.destroy();
    });
    if (req.kind === 'portforward') {
      logger.info({ ports: req.target.ports }, 'port-forward session started');
      await servePortForward(conn, req.target, logger);
      logger.info('port-forward session ended');
      return;
    }
    const streams = await collectStreams(conn, expectedStreams(protocol, req), logger);
    const client = spdyChannels(conn, socket, streams, protocol, req.kind === 'exec' ? req.cmd : []);
    await this.run(client, req, { stdin: streams.has('stdin'), stdout: streams.has('stdout'), stderr: streams.has('stderr'), tty: req.tty }, logger);
  }

  private async acceptWebSocket(httpReq: IncomingMessage, socket: Duplex, head: Buffer, logger: Logger): Promise<WebSocket> {
    // ws answers a handshake it refuses itself and never calls back: the socket's close ends the wait.
    const server = await (this.ws ??= import('ws').then(({ WebSocketServer }) => new WebSocketServer({
      noServer: true,
      maxPayload: MAX_WS_MESSAGE,
      handleProtocols: (offered) => negotiate([...offered], [...WS_EXEC_PROTOCOLS, ...WS_PORTFORWARD_PROTOCOLS]) ?? false,
    })));
    // A socket closed while `ws` loaded would never see its handshake answered, nor close again.
    if (socket.destroyed) throw new Error('the client closed the connection before the WebSocket handshake');
    const ws = await new Promise<WebSocket>((resolve, reject) => {
      const closed = (): void => reject(new Error('the WebSocket handshake failed'));
      socket.once('close', closed);
      server.handleUpgrade(httpReq, socket, head, (accepted) => {
        socket.off('close', closed);
        resolve(accepted);
      });
    });
    ws.on('error', (err: Error) => logger.debug({ err: err.message }, 'websocket error'));
    return ws;
  }

  private async serveWebSocket(httpReq: IncomingMessage, socket: Duplex, head: Buffer, protocol: string, req: ExecRequest | AttachRequest, logger: Logger): Promise<void> {
    const ws = await this.acceptWebSocket(httpReq, socket, head, logger);
    const want = { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr && !req.tty, tty: req.tty };
    await this.run(wsChannels(ws, protocol, want, req.kind === 'exec' ? req.cmd : []), req, want, logger);
  }

  private async run(client: ClientChannels, req: ExecRequest | AttachRequest, want: Streams, logger: Logger): Promise<void> {
    // Only the command's name: its arguments may carry secrets (issue 11).
    logger.info({ ...(req.kind === 'exec' ? { command: req.cmd[0] } : {}), ...want }, `${req.kind} session started`);
    const result = await runSession(client, () => startProcess(req, want), logger);
    logger.info({ result }, `${req.kind} session ended`);
  }
}

function actorOf(request: StreamingRequest): string {
  if (request.kind === 'exec') return request.target.id;
  if (request.kind === 'attach') return request.containerId;
  return request.target.podId;
}

function refuseProtocol(socket: Duplex, offered: readonly string[], supported: readonly string[]): void {
  refuse(socket, 403, 'Forbidden', `unable to negotiate protocol: client offered ${JSON.stringify(offered)}, server supports ${JSON.stringify(supported)}`,
    { 'X-Accepted-Stream-Protocol-Versions': supported.join(',') });
}

async function startProcess(req: ExecRequest | AttachRequest, want: Streams): Promise<StreamedProcess> {
  if (req.kind === 'exec') {
    try {
      return await startExec(req.target, req.cmd, want);
    } catch (err) {
      throw new Error(`exec in ${req.target.id} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return attachContainer(req.target, want);
}
