/** The part of hpack.js (indutny's HPACK, RFC 7541, the codec spdy-transport uses) that podchart uses. */
declare module 'hpack.js' {
  import type { Duplex } from 'node:stream';

  /** Names and values are binary strings: one char per octet (latin1). */
  export interface HpackHeader {
    name: string;
    value: string;
    /** Decoded from (or to be encoded as) a "never indexed" literal. */
    neverIndex?: boolean;
    /** false: encode as a literal without indexing, so the peer's dynamic table is never touched. */
    incremental?: boolean;
    huffman?: boolean;
  }
  interface TableOptions { table: { maxSize: number } }
  interface Decompressor extends Duplex {
    /** Decodes everything written so far; errors go to the callback (next tick) or to 'error'. */
    execute(cb?: (err: Error | null) => void): void;
    read(): HpackHeader | null;
  }
  interface Compressor extends Duplex {
    write(headers: HpackHeader[]): boolean;
    read(): Buffer | null;
  }
  const hpack: {
    decompressor: { create(options: TableOptions): Decompressor };
    compressor: { create(options: TableOptions): Compressor };
  };
  export default hpack;
}
