/** /proc/net/dev as the kernel writes it: per interface, loopback left out. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseNetDev } from './net-dev.js';

const SAMPLE = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0: 1036066    1210    3    4    0     0          0         0   472181     988    5    6    0     0       0          0
`;

test("each interface's receive and transmit counters, by column", () => {
  assert.deepEqual(parseNetDev(SAMPLE), [{
    name: 'eth0', rxBytes: 1036066n, rxPackets: 1210n, rxErrors: 3n, rxDropped: 4n, txBytes: 472181n, txPackets: 988n, txErrors: 5n, txDropped: 6n,
  }]);
  assert.deepEqual(parseNetDev('garbage\n  x: 1 2\n'), [], 'short or malformed lines are skipped');
});

test("this host's own file parses, every interface but lo", () => {
  const text = readFileSync('/proc/net/dev', 'utf8');
  const names = text.split('\n').slice(2).map((l) => l.split(':')[0]?.trim()).filter((n): n is string => !!n && n !== 'lo');
  assert.deepEqual(parseNetDev(text).map((c) => c.name), names);
});
