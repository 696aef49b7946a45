/** Client input quoted in an error message, cut short: a reply stays small whatever was sent. */

/** Bytes of client input quoted in a message at most. */
export const MAX_QUOTED_BYTES = 128;

/** `value` as JSON for a message, cut to MAX_QUOTED_BYTES with how much was left out. */
export function quote(value: string): string {
  const bytes = Buffer.from(value);
  if (bytes.length <= MAX_QUOTED_BYTES) return JSON.stringify(value);
  // Cut on a character boundary: decoding a prefix may end in a partial character, dropped here.
  const head = bytes.subarray(0, MAX_QUOTED_BYTES).toString('utf8').replace(/\uFFFD$/, '');
  return `${JSON.stringify(head)}… (${bytes.length - Buffer.byteLength(head)} more bytes)`;
}
