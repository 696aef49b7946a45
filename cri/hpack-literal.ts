/**
 * HPACK encoding with literals only (RFC 7541 §6.2.2 and §6.2.3, names and values as raw string
 * literals, §5.2 with H=0): what the authority rewriter sends to nghttp2. It never adds to the
 * server's dynamic table, so the server's HPACK state stays empty whatever the client did.
 *
 * Why not hpack.js's compressor: it allocates through the deprecated `Buffer()` constructor (wbuf),
 * whose deprecation check captures a stack on every call, about 55 µs of every CRI request; and a
 * literal-only encoder is these twenty lines.
 */
export interface LiteralHeader {
  name: string;
  value: string;
  /** Sent as "never indexed" (§6.2.3): intermediaries must not index it either. */
  neverIndex?: boolean;
}

const WITHOUT_INDEXING = 0x00;
const NEVER_INDEXED = 0x10;

/** An HPACK integer with an N-bit prefix (§5.1), its first byte carrying `flags` above the prefix. */
function pushInteger(out: number[], value: number, prefixBits: number, flags: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(flags | value);
    return;
  }
  out.push(flags | max);
  let rest = value - max;
  while (rest >= 0x80) {
    out.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
}

function pushString(out: number[], parts: Buffer[], text: string): void {
  const bytes = Buffer.from(text, 'latin1');
  pushInteger(out, bytes.length, 7, 0x00);
  parts.push(Buffer.from(out.splice(0)), bytes);
}

/** One header block: every field a literal with a literal name, none indexed. */
export function encodeLiteralBlock(headers: readonly LiteralHeader[]): Buffer {
  const parts: Buffer[] = [];
  const prefix: number[] = [];
  for (const h of headers) {
    // Index 0 in the 4-bit prefix: the name follows as a literal.
    prefix.push(h.neverIndex === true ? NEVER_INDEXED : WITHOUT_INDEXING);
    pushString(prefix, parts, h.name);
    pushString(prefix, parts, h.value);
  }
  return Buffer.concat(parts);
}
