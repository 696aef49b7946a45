/**
 * SPDY/3.1 over an HTTP/1.1 Upgrade, as k8s.io/apimachinery/pkg/util/httpstream/spdy's upgrader
 * answers it: the client offers its subprotocols in `X-Stream-Protocol-Version` (one header per
 * protocol, newest first), we pick one and answer 101 with `Connection: Upgrade`,
 * `Upgrade: SPDY/3.1` and the chosen `X-Stream-Protocol-Version`; from then on the raw socket
 * carries SPDY frames, the client opening every stream.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Connection } from 'spdy-transport';

export const SPDY_31 = 'SPDY/3.1';
export const PROTOCOL_HEADER = 'x-stream-protocol-version';
/**
 * Largest control frame (SYN_STREAM with its compressed headers) taken: Go's clients send a few
 * hundred bytes, and zlib's ratio bounds the inflated headers to about a thousand times this.
 */
export const MAX_CONTROL_FRAME_BYTES = 16 * 1024;
/** Streams one connection may open: exec needs five; port-forward two per connection it forwards. */
const MAX_STREAMS = 1000;

/** Lines of a bare HTTP/1.1 reply on a socket node's http server handed over with 'upgrade'. */
export function refuse(socket: Duplex, status: number, reason: string, message: string, headers: Record<string, string> = {}): void {
  const body = `${message}\n`;
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`);
}

/** The client's offered subprotocols (node joins repeated headers with ", "). */
export function offeredProtocols(req: IncomingMessage): string[] {
  const raw = req.headers[PROTOCOL_HEADER];
  const values = Array.isArray(raw) ? raw : raw === undefined ? [] : [raw];
  return values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
}

/** Our most preferred protocol that the client offers, or null. */
export function negotiate(offered: readonly string[], supported: readonly string[]): string | null {
  return supported.find((p) => offered.includes(p)) ?? null;
}

export function isSpdyUpgrade(req: IncomingMessage): boolean {
  return (req.headers.upgrade ?? '').toLowerCase() === SPDY_31.toLowerCase();
}

/**
 * Answers 101 and starts spdy-transport as the server on the socket.
 *
 * Gotcha: spdy-transport's parser refuses a SYN_STREAM without `:method` and `:path` (it assumes
 * HTTP over SPDY), but Go's spdystream (every kubelet-generation client) sends only its own headers
 * (`streamtype`, `port`, `requestid`). We fill the two in before that check, on this connection's
 * parser only; nothing reads them.
 *
 * Gotcha: spdystream does no flow control either. It never sends WINDOW_UPDATE, so spdy-transport,
 * honouring SPDY/3.1's 64 KiB initial windows (the session's and each stream's), would stop sending
 * after 64 KiB on a stream: an exec's output or a port-forward's download would hang there. Our send
 * windows are unbounded instead, as kubelet's own spdystream server sends; TCP's backpressure (the
 * client reads the socket only as fast as its streams are read) is what paces us.
 */
export async function acceptSpdy(socket: Duplex, head: Buffer, protocol: string): Promise<Connection> {
  // Loaded on the first SPDY session, not at start (issue 14: idle memory); before the 101, so the
  // client sends no frame until the connection that parses them exists.
  const { default: transport } = await import('spdy-transport');
  if (socket.destroyed) throw new Error('the client closed the connection before the SPDY upgrade');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${SPDY_31}\r\nX-Stream-Protocol-Version: ${protocol}\r\n\r\n`);
  if (head.length > 0) socket.unshift(head);
  const conn = transport.connection.create(socket, { protocol: 'spdy', isServer: true, windowSize: 1 << 20, maxStreams: MAX_STREAMS });
  const parser = conn._spdyState.parser;
  // spdy-transport buffers a control frame whole (up to 16 MiB) and inflates its header block
  // without a limit: a frame longer than any real client's is refused from its head alone.
  const onFrameHead = parser.onFrameHead.bind(parser);
  parser.onFrameHead = (buffer, callback) =>
    onFrameHead(buffer, (err, frame) => {
      const head = parser.pendingHeader;
      if (!err && head?.control && head.length > MAX_CONTROL_FRAME_BYTES) {
        return callback(new Error(`a SPDY control frame of ${head.length} bytes was refused (at most ${MAX_CONTROL_FRAME_BYTES})`), null);
      }
      callback(err, frame);
    });
  const parseKVs = parser.parseKVs.bind(parser);
  parser.parseKVs = (body, callback) =>
    parseKVs(body, (err, headers) => {
      if (!err) {
        headers[':method'] ??= 'POST';
        headers[':path'] ??= '/';
      }
      callback(err, headers);
    });
  const { window: session, streamWindow } = conn._spdyState;
  for (const side of [session.send, streamWindow.send]) Object.assign(side, { current: Infinity, max: Infinity, limit: Infinity, lowWaterMark: 0 });
  conn.start(3.1);
  return conn;
}
