/** The part of spdy-transport (indutny's SPDY/3.1 and HTTP/2 framing) that podchart uses. */
declare module 'spdy-transport' {
  import type { Duplex } from 'node:stream';
  import type { EventEmitter } from 'node:events';

  /** One SPDY stream: a Duplex of its DATA frames; `end()` sends FIN. */
  export interface SpdyStream extends Duplex {
    id: number;
    /** The SYN_STREAM's headers, names lowercased. */
    headers: Record<string, string>;
    /** Sends SYN_REPLY (spdy-transport adds `:status` and `:version`). */
    respond(status: number, headers: Record<string, string>, callback?: (err?: Error) => void): void;
    /** RST_STREAM. */
    abort(code?: string, callback?: () => void): void;
  }
  /** One direction of a flow-control window: bytes we may still send, its size, its ceiling. */
  interface WindowSide {
    current: number;
    max: number;
    limit: number;
    lowWaterMark: number;
  }
  type KvCallback = (err: Error | null, headers: Record<string, string>) => void;
  type FrameCallback = (err: Error | null, frame: unknown) => void;
  /** Internal: spdy-transport's frame parser. */
  interface SpdyParser {
    parseKVs(body: unknown, callback: KvCallback): void;
    /** Reads a frame's 8-byte head; sets `pendingHeader` before calling back. */
    onFrameHead(buffer: unknown, callback: FrameCallback): void;
    pendingHeader: { control: boolean; length: number } | null;
  }
  export interface Connection extends EventEmitter {
    /** Fixes the protocol version (3.1) instead of waiting to detect it from the first frame. */
    start(version: number): void;
    /** GOAWAY, then close once the streams are done. */
    end(callback?: () => void): void;
    destroyStreams(err?: Error): void;
    /** Client side: opens a stream (SYN_STREAM with `headers`); the tests' raw client uses it. */
    request(uri: { method: string; path: string; host: string; headers: Record<string, string> }): SpdyStream;
    /** Internal: the frame parser and the send windows (see streaming/spdy.ts for why we reach them). */
    _spdyState: {
      parser: SpdyParser;
      /** The session's flow-control window, and the template every stream's window is cloned from. */
      window: { send: WindowSide };
      streamWindow: { send: WindowSide };
    };
  }
  interface ConnectionOptions {
    protocol: 'spdy' | 'http2';
    isServer: boolean;
    /** Receive window of the connection and of each stream. */
    windowSize?: number;
    maxStreams?: number;
    /** Largest DATA frame we send. */
    maxChunk?: number;
  }
  const transport: { connection: { create(socket: Duplex, options: ConnectionOptions): Connection } };
  export default transport;
}
