/**
 * The literal-only HPACK encoder against a real decoder (hpack.js): any headers come back as they
 * went in, "never indexed" survives, and the decoder's dynamic table stays empty.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import hpack from 'hpack.js';
import { decodeHeaderBlock } from './h2-authority.js';
import { encodeLiteralBlock, type LiteralHeader } from './hpack-literal.js';

const decode = decodeHeaderBlock;

const latin1 = fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: 400 });
const header: fc.Arbitrary<LiteralHeader> = fc.record({
  name: fc.stringMatching(/^:?[a-z0-9-]{1,200}$/),
  value: latin1,
  neverIndex: fc.boolean(),
});

test('any headers decode as they were encoded, lengths past every prefix limit included', () => {
  fc.assert(
    fc.property(fc.array(header, { maxLength: 12 }), (headers) => {
      const decoded = decode(hpack.decompressor.create({ table: { maxSize: 4096 } }), encodeLiteralBlock(headers));
      assert.deepEqual(
        decoded.map((h) => ({ name: h.name, value: h.value, neverIndex: h.neverIndex })),
        headers.map((h) => ({ name: h.name, value: h.value, neverIndex: h.neverIndex === true })),
      );
    }),
  );
});

test('a 20 000-byte value needs a three-byte length and still decodes', () => {
  const value = 'x'.repeat(20_000);
  const block = encodeLiteralBlock([{ name: 'big', value }]);
  const decoded = decode(hpack.decompressor.create({ table: { maxSize: 4096 } }), block);
  assert.equal(decoded[0]?.value, value);
});

test('nothing enters the dynamic table: a reference to its first entry fails afterwards', () => {
  const decoder = hpack.decompressor.create({ table: { maxSize: 4096 } });
  decode(decoder, encodeLiteralBlock([{ name: ':authority', value: 'localhost' }, { name: 'x-a', value: 'b' }]));
  // 0xbe is "indexed field 62", the first dynamic entry (RFC 7541 §2.3.3).
  assert.throws(() => decode(decoder, Buffer.from([0xbe])));
});
