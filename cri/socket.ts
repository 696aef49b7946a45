/**
 * The CRI unix socket. podchart accepts each connection itself and hands grpc-js a Duplex whose
 * client→server bytes went through the AuthorityRewriter (see h2-authority.ts for why: stock Go
 * clients send the socket path as `:authority`, which Node's HTTP/2 layer refuses). grpc-js takes
 * such connections through `Server.createConnectionInjector()`. No second process, no extra hop:
 * the rewrite happens in this process, on the bytes as they arrive.
 */
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { AuthorityRewriter, Http2FramingError } from './h2-authority.js';

/** A client connection seen through the rewriter; server→client bytes go straight to the socket. */
class RewritingConnection extends Duplex {
  private readonly rewriter = new AuthorityRewriter();

  constructor(private readonly socket: Socket, private readonly logger: Logger) {
    super({ allowHalfOpen: false });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.push(null));
    socket.on('close', () => this.destroy());
    socket.on('error', (err) => this.destroy(err));
  }

  private onData(chunk: Buffer): void {
    let out: Buffer[];
    try {
      out = this.rewriter.push(chunk);
    } catch (err) {
      // Broken framing or HPACK from the client: nghttp2 would close the connection too.
      this.logger.warn({ err: err instanceof Http2FramingError ? err.message : String(err) }, 'CRI connection closed: malformed HTTP/2 from the client');
      this.socket.destroy();
      return;
    }
    let more = true;
    for (const buf of out) more = this.push(buf) && more;
    if (!more) this.socket.pause();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.socket.write(chunk)) callback();
    else this.socket.once('drain', () => callback());
  }

  /**
   * Everything nghttp2 hands over at once (JSStreamSocket corks this stream around each batch of
   * frames) goes out in one writev. Written chunk by chunk, a unary call cost 4 write syscalls;
   * now 2 (headers and message, then the trailers, which Node's HTTP/2 sends in a batch of their
   * own), measured with strace over 6000 Version calls (issue 14).
   */
  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.socket.cork();
    let more = true;
    for (const { chunk } of chunks) more = this.socket.write(chunk) && more;
    this.socket.uncork();
    if (more) callback();
    else this.socket.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(() => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(error);
  }
}

export interface CriSocket {
  /** Stops accepting; open connections are closed by the gRPC server's shutdown. */
  close(): Promise<void>;
}

/** Serves `server` on a unix socket at `socketPath`, accepting any `:authority`. */
export function listenUnix(server: grpc.Server, socketPath: string, logger: Logger): Promise<CriSocket> {
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const net: NetServer = createServer((socket) => {
    socket.on('error', (err) => logger.debug({ err: err.message }, 'CRI connection error'));
    injector.injectConnection(new RewritingConnection(socket, logger));
  });
  return new Promise((resolve, reject) => {
    net.once('error', reject);
    net.listen(socketPath, () => {
      net.removeListener('error', reject);
      net.on('error', (err) => logger.error({ err }, 'CRI socket error'));
      resolve({
        close: () => new Promise<void>((done) => {
          injector.destroy();
          net.close(() => done());
        }),
      });
    });
  });
}
