import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { foldCarriageReturns } from './tty-output.js';

/** Runs `chunks` through the fold and returns what comes out. */
async function fold(chunks: Buffer[]): Promise<string> {
  const t = foldCarriageReturns();
  const out: Buffer[] = [];
  t.on('data', (d: Buffer) => out.push(d));
  const ended = new Promise((resolve) => t.on('end', resolve));
  for (const c of chunks) t.write(c);
  t.end();
  await ended;
  return Buffer.concat(out).toString('latin1');
}

test('runs of \\r before \\n fold into one; other \\r are kept', async () => {
  assert.equal(await fold([Buffer.from('hello\r\r\nx\r\ny\nz\r\rw\r')]), 'hello\r\nx\r\ny\nz\r\rw\r');
});

test('a run split across chunks folds the same', async () => {
  assert.equal(await fold([Buffer.from('a\r'), Buffer.from('\r'), Buffer.from('\nb')]), 'a\r\nb');
});

test('the same bytes however the input is chunked, and equal to folding the whole', async () => {
  const bytes = fc.array(fc.constantFrom(0x0d, 0x0a, 0x41, 0xe2, 0x82, 0xac), { maxLength: 60 });
  await fc.assert(
    fc.asyncProperty(bytes, fc.array(fc.nat(60), { maxLength: 5 }), async (data, cuts) => {
      const buf = Buffer.from(data);
      const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
      const chunks = [0, ...points, buf.length].slice(1).map((end, i, all) => buf.subarray(i === 0 ? 0 : (all[i - 1] ?? 0), end));
      const expected = buf.toString('latin1').replace(/\r+\n/g, '\r\n');
      return (await fold(chunks)) === expected && (await fold([buf])) === expected;
    }),
  );
});
