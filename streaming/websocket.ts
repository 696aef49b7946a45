/**
 * The remotecommand subprotocols over WebSocket (k8s.io/apimachinery's wsstream, and client-go's
 * WebSocket executor that kubectl 1.30+ uses): one connection, every binary message starting with
 * a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize. `v5.channel.k8s.io` adds a
 * close signal: a message on channel 255 whose second byte names the channel that is done (the
 * client's stdin; our stdout and stderr). The result is a metav1.Status on the error channel, as
 * over SPDY with v4, then a normal close.
 */
import { PassThrough, Writable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { WebSocket, RawData } from 'ws';
import type { ClientChannels } from './session.js';
import { resultText, V4 } from './remotecommand.js';

export const WS_V5 = 'v5.channel.k8s.io';
/** Ours, most preferred first. The base64 text variants are not served (no client needs them now). */
export const WS_EXEC_PROTOCOLS = [WS_V5, V4] as const;

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;
const CLOSE = 255;

export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  return (req.headers.upgrade ?? '').toLowerCase() === 'websocket';
}

/** The subprotocols a WebSocket client offers (`Sec-WebSocket-Protocol`, comma separated). */
export function offeredWsProtocols(req: IncomingMessage): string[] {
  return (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter(Boolean);
}

/** The session's view of a WebSocket connection; `want` says which output channels the request has. */
export function wsChannels(ws: WebSocket, protocol: string, want: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }, cmd: readonly string[]): ClientChannels {
  const v5 = protocol === WS_V5;
  const stdin = want.stdin ? new PassThrough() : null;
  const resize = want.tty ? new PassThrough() : null;
  const gone = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  void gone.then(() => {
    stdin?.end();
    resize?.end();
  });
  ws.on('message', (data: RawData, isBinary: boolean) => {
    const message = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    if (!isBinary || message.length === 0) return; // not this protocol's framing: ignored, as wsstream does
    const channel = message[0];
    const body = message.subarray(1);
    if (channel === STDIN && stdin && !stdin.writableEnded) stdin.write(body);
    // One message is one size: a newline lets the resize reader take it whole.
    else if (channel === RESIZE && resize && !resize.writableEnded) resize.write(Buffer.concat([body, Buffer.from('\n')]));
    else if (v5 && channel === CLOSE && body[0] === STDIN) stdin?.end();
  });
  const output = (channel: number, enabled: boolean): Writable | null =>
    enabled
      ? new Writable({
          write(chunk: Buffer, _enc, callback) {
            if (ws.readyState !== ws.OPEN) return callback();
            ws.send(Buffer.concat([Buffer.from([channel]), chunk]), { binary: true }, () => callback());
          },
          final(callback) {
            if (v5 && ws.readyState === ws.OPEN) ws.send(Buffer.from([CLOSE, channel]), { binary: true }, () => callback());
            else callback();
          },
        })
      : null;
  return {
    stdin,
    stdout: output(STDOUT, want.stdout),
    stderr: output(STDERR, want.stderr && !want.tty),
    resize,
    gone,
    finish: async (result) => {
      // Both WebSocket protocols report the result as v4 does: a Status.
      const text = resultText(V4, result, cmd);
      if (ws.readyState === ws.OPEN) {
        await new Promise<void>((resolve) => ws.send(Buffer.concat([Buffer.from([ERROR]), Buffer.from(text)]), { binary: true }, () => resolve()));
        ws.close(1000);
      }
    },
  };
}
