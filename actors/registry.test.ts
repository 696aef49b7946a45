import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from './registry.js';

const A = 'abc1'.padEnd(64, '0');
const B = 'abc2'.padEnd(64, '0');
const C = 'def0'.padEnd(64, '0');

function registry(): Registry {
  const r = new Registry();
  r.load([
    { id: A, name: 'k8s_POD_a_ns_u1_0', kind: 'sandbox' },
    { id: B, name: 'k8s_POD_b_ns_u2_0', kind: 'sandbox' },
    { id: C, name: 'k8s_app_a_ns_u1_0', kind: 'container' },
  ]);
  return r;
}

test('lookup by full id, by name and by unique prefix, per kind', () => {
  const r = registry();
  assert.equal(r.resolve(A, 'sandbox'), A);
  assert.equal(r.resolve('k8s_POD_b_ns_u2_0', 'sandbox'), B);
  assert.equal(r.resolve('abc2', 'sandbox'), B);
  assert.equal(r.resolve('def', 'sandbox'), null, 'a container id is not a sandbox');
  assert.equal(r.resolve('def', 'container'), C);
  assert.equal(r.resolve('ffff', 'sandbox'), null);
  assert.equal(r.resolve('not-hex', 'sandbox'), null);
});

test('an ambiguous prefix is an error that says so', () => {
  assert.throws(() => registry().resolve('abc', 'sandbox'), /ambiguous: it matches 2 pod sandboxes/);
});

test('new ids are 64 hex and fresh; removal frees the name', () => {
  const r = registry();
  const id = r.newId();
  assert.match(id, /^[0-9a-f]{64}$/);
  assert.ok(![A, B, C].includes(id));
  r.remove(A);
  assert.equal(r.holderOf('k8s_POD_a_ns_u1_0'), undefined);
  assert.equal(r.resolve('abc', 'sandbox'), B, 'the prefix is unique again');
});
