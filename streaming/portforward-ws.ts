/**
 * Port-forward over WebSocket, `v4.portforward.k8s.io`, as kubelet's portforward/websocket.go
 * serves it. The ports come in the URL (`?port=80&port=8080`, or `?port=80,8080`), one connection
 * each. Port i has two channels, data 2i and error 2i+1; every binary message starts with its
 * channel byte. The server first sends, on each channel, the port as two little-endian bytes;
 * then the client's data channel messages go to the pod's port, the pod's bytes come back on it,
 * and a failure (a refused connect) is text on the error channel. The other ports go on.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import { dialPodPort } from '../runtime/port-dial.js';
import { forwardFailure, type Dial, type PortForwardTarget } from './portforward.js';

export const WS_PORTFORWARD_PROTOCOLS = ['v4.portforward.k8s.io'] as const;

/** The ports a WebSocket port-forward asks for in its URL, or why they cannot be forwarded. */
export function wsPorts(url: string, target: PortForwardTarget): number[] | string {
  const values = new URL(url, 'http://streaming').searchParams.getAll('port');
  if (values.length === 0) return 'query parameter "port" is required';
  const ports: number[] = [];
  for (const raw of values.flatMap((v) => v.split(','))) {
    const port = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
    if (!(port >= 1 && port <= 65535)) return `unable to parse ${JSON.stringify(raw)} as a port: must be 1-65535`;
    if (target.ports.length > 0 && !target.ports.includes(port)) return `port ${port} is not one of the ports the PortForward request named (${target.ports.join(', ')})`;
    ports.push(port);
  }
  return ports;
}

/** Serves `ws` until the client closes it; resolves once every pod connection is closed. */
export async function serveWsPortForward(ws: WebSocket, target: PortForwardTarget, ports: number[], logger: Logger, dial: Dial = dialPodPort): Promise<void> {
  const gone = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  const send = (channel: number, body: Buffer): Promise<void> =>
    new Promise((resolve) => {
      if (ws.readyState !== ws.OPEN) return resolve();
      ws.send(Buffer.concat([Buffer.from([channel]), body]), { binary: true }, () => resolve());
    });
  // Until its connection is up, what the client sends for a port waits here.
  const pending: Buffer[][] = ports.map(() => []);
  const sockets: (Duplex | null)[] = ports.map(() => null);
  ws.on('message', (data: RawData, isBinary: boolean) => {
    const message = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    const channel = message[0];
    if (!isBinary || channel === undefined || channel % 2 !== 0 || channel / 2 >= ports.length) return; // not data for a port we serve
    const i = channel / 2;
    const body = message.subarray(1);
    const socket = sockets[i];
    if (socket) socket.write(body);
    else pending[i]?.push(body);
  });
  const forward = async (port: number, i: number): Promise<void> => {
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16LE(port);
    await send(2 * i, prefix);
    await send(2 * i + 1, prefix);
    let socket: Duplex;
    try {
      socket = await dial(target.netnsPath, port);
    } catch (err) {
      await send(2 * i + 1, Buffer.from(forwardFailure(target.podId, String(port), err instanceof Error ? err.message : String(err))));
      return;
    }
    if (ws.readyState !== ws.OPEN) {
      socket.destroy();
      return;
    }
    sockets[i] = socket;
    for (const body of pending[i]?.splice(0) ?? []) socket.write(body);
    socket.on('error', (err: Error) => logger.debug({ err: err.message, port }, 'port-forward pod connection error'));
    // The pod's bytes go out one message at a time: the socket waits for each send (backpressure).
    socket.on('data', (chunk: Buffer) => {
      socket.pause();
      void send(2 * i, chunk).then(() => socket.resume());
    });
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  };
  const forwards = ports.map((port, i) => forward(port, i).catch((err: unknown) => logger.warn({ err: err instanceof Error ? err.message : String(err), port }, 'port-forward connection failed')));
  await gone;
  for (const socket of sockets) socket?.destroy();
  await Promise.allSettled(forwards);
}
