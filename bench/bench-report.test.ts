/** The bench's median from histogram buckets reads as Prometheus's histogram_quantile would. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bucketQuantile } from './bench-report.js';

test('a median inside a bucket is interpolated; past the last bound it is unknown', () => {
  // 10 calls: 4 at or under 0.25 ms, 8 at or under 0.5 ms, all 10 at or under 1 ms.
  const buckets = new Map([[0.0001, 0], [0.00025, 4], [0.0005, 8], [0.001, 10]]);
  assert.equal(bucketQuantile(buckets, 10, 0.5), 0.00025 + (0.00025 * 1) / 4, 'rank 5 is the first of the four calls in (0.25, 0.5] ms');
  assert.equal(bucketQuantile(buckets, 10, 0.4), 0.00025, 'rank 4 is the top of its bucket');
  assert.ok(Number.isNaN(bucketQuantile(new Map([[0.001, 2]]), 10, 0.5)), 'most calls above every bound');
  assert.ok(bucketQuantile(new Map([[0.001, 10]]), 10, 0.5) <= 0.001, 'within the first bucket, from zero');
});
