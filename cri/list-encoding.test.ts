/** A reply concatenated from cached one-item encodings decodes as the reply encoded whole. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadCri } from '../proto/load.js';
import { acceptingEncoded, Encoded, ItemEncodings } from './list-encoding.js';

interface Item { spec: { id: string; name: string; labels: Record<string, string> }; state: string }

const def = loadCri().runtimeService.ListPodSandbox;
assert.ok(def);
const toPod = (item: Item) => ({ id: item.spec.id, metadata: { name: item.spec.name, uid: 'u', namespace: 'default', attempt: 1 }, state: item.state, createdAt: '17', labels: item.spec.labels, annotations: {}, runtimeHandler: '' });

test('N one-item replies concatenated are the N-item reply; an item is encoded again only when its version or owner changes', () => {
  let encoded = 0;
  const encodings = new ItemEncodings<Item>(
    (item) => {
      encoded++;
      return def.responseSerialize({ items: [toPod(item)] });
    },
    (item) => item.spec,
    (item) => item.state,
  );
  const items: Item[] = Array.from({ length: 5 }, (_, i) => ({ spec: { id: `p${i}`, name: `pod-${i}`, labels: { app: `a${i}`, 'ü': '\u0000' } }, state: 'SANDBOX_READY' }));
  const whole = def.responseSerialize({ items: items.map(toPod) });
  const reply = encodings.reply(items);
  assert.deepEqual(def.responseDeserialize(reply.bytes), def.responseDeserialize(whole));
  assert.equal(encoded, 5);

  encodings.reply(items);
  assert.equal(encoded, 5, 'unchanged items come from the cache');
  const changed = items.map((item, i) => (i === 2 ? { ...item, state: 'SANDBOX_NOTREADY' } : item));
  const again = def.responseDeserialize(encodings.reply(changed).bytes) as { items: { id: string; state: string }[] };
  assert.equal(encoded, 6, 'only the item whose state changed');
  assert.deepEqual(again.items.map((p) => p.state), ['SANDBOX_READY', 'SANDBOX_READY', 'SANDBOX_NOTREADY', 'SANDBOX_READY', 'SANDBOX_READY']);
  assert.deepEqual(def.responseDeserialize(encodings.reply([]).bytes), def.responseDeserialize(def.responseSerialize({ items: [] })), 'an empty list');
  const fresh = items.map((item) => ({ ...item, spec: { ...item.spec } }));
  encodings.warm(fresh);
  assert.equal(encoded, 11, 'warm encodes the new items');
  encodings.reply(fresh);
  assert.equal(encoded, 11, 'and the reply that holds them encodes none again');
});

test('the wrapped serializer sends Encoded bytes as they are and encodes anything else as before', () => {
  const wrapped = acceptingEncoded(loadCri().runtimeService).ListPodSandbox;
  assert.ok(wrapped);
  const bytes = Buffer.from([1, 2, 3]);
  assert.equal(wrapped.responseSerialize(new Encoded(bytes)), bytes);
  const plain = { items: [toPod({ spec: { id: 'x', name: 'x', labels: {} }, state: 'SANDBOX_READY' })] };
  assert.deepEqual(wrapped.responseSerialize(plain), def.responseSerialize(plain));
});
