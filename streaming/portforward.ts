/**
 * The portforward.k8s.io subprotocol over SPDY, as kubelet's pkg/kubelet/cri/streaming/portforward
 * (httpstream.go) serves it. For each connection it forwards, the client opens two streams, `error`
 * then `data`, both carrying the headers `port` and `requestid`; once both of a request id are open
 * we dial the port on the pod's loopback (runtime/port-dial.ts) and copy bytes both ways, passing
 * each side's FIN on as a half-close. The error stream stays empty on success; a failure (bad port,
 * a port the RPC did not name, a refused connect) is written to it as text, and both streams end.
 * Either way the error stream ends when the pod's side does: client-go waits for its end before it
 * closes the local connection.
 *
 * Once one direction has ended, the other gets HALF_CLOSE_GRACE_MS, then the pod connection is
 * closed (containerd's portForward does the same), so a pair one side has left cannot linger.
 *
 * Known client-side limit, not ours to fix: when client-go's local connection breaks mid-download
 * it stops reading that data stream, and spdystream hands each DATA frame to the stream's reader
 * synchronously, so frames already sent there stall its whole connection: later forwarded
 * connections time out ("error creating error stream ... Timeout occurred": kubernetes#74551, the
 * same against kubelet's own server; later client-go resets such streams, kubernetes#128319). Only
 * closing the connection (the client's ^C) clears it.
 *
 * One connection carries any number of ports and forwarded connections at once, and one pair's
 * failure never touches another (client-go 1.26 itself drops the whole connection on any error
 * message; other clients need not). The session ends when the client closes the connection: every
 * forwarded connection is destroyed, and servePortForward resolves once each socat has exited.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Connection, SpdyStream } from 'spdy-transport';
import { dialPodPort } from '../runtime/port-dial.js';
import { STREAM_CREATION_TIMEOUT_MS } from './remotecommand.js';

export const PORTFORWARD_PROTOCOLS = ['portforward.k8s.io'] as const;

/** How long one direction may go on after the other ended (containerd's 1 s). */
export const HALF_CLOSE_GRACE_MS = 1000;

/** A PortForward RPC's request, validated, with where the pod's ports are. */
export interface PortForwardTarget {
  podId: string;
  /** The pod's network namespace; null for a host-network pod (the node's loopback). */
  netnsPath: string | null;
  /** The ports the RPC named: only these may be forwarded. Empty: any port. */
  ports: number[];
}

export type Dial = (netnsPath: string | null, port: number) => Promise<Duplex>;

interface Pair {
  error?: SpdyStream;
  data?: SpdyStream;
  timer: NodeJS.Timeout;
}

/** kubelet's wording for a connection that could not be forwarded (uid empty, as its CRI streaming server passes it). */
export function forwardFailure(podId: string, port: string, reason: string): string {
  return `error forwarding port ${port} to pod ${podId}, uid : ${reason}`;
}

/** Serves `conn` until the client closes it; resolves once every forwarded connection is gone. */
export function servePortForward(conn: Connection, target: PortForwardTarget, logger: Logger, dial: Dial = dialPodPort): Promise<void> {
  const pairs = new Map<string, Pair>();
  const sockets = new Set<Duplex>();
  const forwards = new Set<Promise<void>>();
  let closed = false;

  const failure = (port: string, reason: string): string => forwardFailure(target.podId, port, reason);

  const forward = async (error: SpdyStream, data: SpdyStream, log: Logger): Promise<void> => {
    // Both streams end once, here. (spdy-transport's streams are readable-stream 3's: no
    // readableEnded/writableEnded to ask, and a second end(message) would be a write after end.)
    let ended = false;
    const end = (message?: string): void => {
      if (ended) return;
      ended = true;
      data.end();
      if (message) error.end(message);
      else error.end();
    };
    const refuse = (message: string): void => {
      log.info({ err: message }, 'port-forward connection refused');
      data.resume(); // whatever the client still sends is dropped, so its window never fills
      end(message);
    };
    const raw = data.headers['port'] ?? '';
    const port = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
    if (!(port >= 1 && port <= 65535)) return refuse(`unable to parse ${JSON.stringify(raw)} as a port: must be 1-65535`);
    if (target.ports.length > 0 && !target.ports.includes(port)) {
      return refuse(failure(raw, `port ${port} is not one of the ports the PortForward request named (${target.ports.join(', ')})`));
    }
    let socket: Duplex;
    try {
      socket = await dial(target.netnsPath, port);
    } catch (err) {
      return refuse(failure(raw, err instanceof Error ? err.message : String(err)));
    }
    sockets.add(socket);
    const gone = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', (err: Error) => log.debug({ err: err.message }, 'port-forward pod connection error'));
    let grace: NodeJS.Timeout | undefined;
    const halfClosed = (): void => {
      grace ??= setTimeout(() => socket.destroy(), HALF_CLOSE_GRACE_MS);
    };
    if (closed) {
      socket.destroy(); // the session ended while we dialled
    } else {
      log.debug('port-forward connection open');
      socket.pipe(data, { end: false }); // pod → client; its FIN is end() below
      data.pipe(socket); // client → pod: the client's FIN half-closes the pod connection
      socket.once('end', () => {
        end();
        halfClosed();
      });
      data.once('end', halfClosed);
      // spdy-transport's abort (an RST from the client, or the connection gone) emits 'close' with
      // an error; a stream closed by FIN both ways emits it with none.
      data.once('close', (aborted?: Error) => {
        if (aborted) socket.destroy();
      });
    }
    await gone;
    clearTimeout(grace);
    sockets.delete(socket);
    data.unpipe(socket);
    data.resume();
    end();
    log.debug('port-forward connection closed');
  };

  const complete = (id: string, pair: Pair): void => {
    const { error, data } = pair;
    if (!error || !data) return;
    clearTimeout(pair.timer);
    pairs.delete(id);
    const log = logger.child({ requestId: id, port: data.headers['port'] });
    const done: Promise<void> = forward(error, data, log)
      .catch((err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'port-forward connection failed'))
      .finally(() => forwards.delete(done));
    forwards.add(done);
  };

  const onStream = (stream: SpdyStream): void => {
    // A stream reset by the client (or by its connection closing) must not become an uncaught 'error'.
    stream.on('error', (err: Error) => logger.debug({ err: err.message, stream: stream.headers['streamtype'] }, 'spdy stream error'));
    const type = stream.headers['streamtype'];
    if (type !== 'error' && type !== 'data') {
      logger.warn({ streamtype: type }, 'port-forward stream of unknown type refused');
      stream.abort();
      return;
    }
    stream.respond(200, {}); // client-go waits for the reply before it uses a stream
    const id = requestId(stream, type);
    let pair = pairs.get(id);
    if (!pair) {
      const created: Pair = {
        timer: setTimeout(() => {
          pairs.delete(id);
          created.data?.end();
          created.error?.end(`timed out waiting for the error and data streams of request ${id}`);
        }, STREAM_CREATION_TIMEOUT_MS),
      };
      pair = created;
      pairs.set(id, pair);
    }
    if (pair[type]) {
      pair.error?.write(`error processing stream for request ${id}: ${type} stream already assigned`);
      stream.abort();
      return;
    }
    pair[type] = stream;
    if (type === 'error') stream.resume(); // we only write to it
    complete(id, pair);
  };

  conn.on('stream', onStream);
  return new Promise((resolve) => {
    conn.once('close', () => {
      closed = true;
      conn.off('stream', onStream);
      for (const pair of pairs.values()) clearTimeout(pair.timer);
      pairs.clear();
      for (const socket of sockets) socket.destroy();
      void Promise.allSettled([...forwards]).then(() => resolve());
    });
  });
}

/**
 * The stream's `requestid`; clients older than that header get kubelet's guess: a connection's
 * two streams have consecutive odd ids, error first.
 */
function requestId(stream: SpdyStream, type: 'error' | 'data'): string {
  const id = stream.headers['requestid'];
  if (id) return id;
  return String(type === 'error' ? stream.id : stream.id - 2);
}
