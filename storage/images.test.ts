import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from './store.js';

const ID1 = `sha256:${'a1'.repeat(32)}`;
const ID2 = `sha256:${'a2'.repeat(32)}`;
const layer = { digest: `sha256:${'0'.repeat(64)}`, diffId: `sha256:${'1'.repeat(64)}`, size: 10, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };

function withStore(fn: (store: Store) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'podchart-images-'));
  const store = new Store(join(dir, 'db'));
  try {
    fn(store);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function image(id: string) {
  return { id, manifestDigest: `sha256:${'m'.repeat(0)}${'9'.repeat(64)}`, size: 42, config: '{}', layers: [layer], pulledAt: 1 };
}

test('an image is found by tag, by digest, by id and by id prefix', () => {
  withStore((store) => {
    store.images.put(image(ID1), { tag: 'docker.io/library/busybox:1', repoDigest: `docker.io/library/busybox@sha256:${'d'.repeat(64)}` });
    assert.equal(store.images.byRef('docker.io/library/busybox:1')?.id, ID1);
    assert.equal(store.images.byRef(`docker.io/library/busybox@sha256:${'d'.repeat(64)}`)?.id, ID1);
    assert.deepEqual(store.images.get(ID1)?.layers, [layer]);
    assert.deepEqual(store.images.idsWithPrefix('a1a1'), [ID1]);
    assert.deepEqual(store.images.idsWithPrefix('sha256:a1'), [ID1]);
    assert.deepEqual(store.images.idsWithPrefix('ff'), []);
  });
});

test('a tag moves to the newer image; untagging and delete forget refs', () => {
  withStore((store) => {
    store.images.put(image(ID1), { tag: 'r/app:v', repoDigest: 'r/app@sha256:1' });
    store.images.put(image(ID2), { tag: 'r/app:v', repoDigest: 'r/app@sha256:2' });
    assert.equal(store.images.byRef('r/app:v')?.id, ID2);
    assert.deepEqual(store.images.get(ID1)?.repoTags, []);
    assert.deepEqual(store.images.get(ID1)?.repoDigests, ['r/app@sha256:1']);
    assert.equal(store.images.removeRef('r/app:v'), 1, 'ID2 keeps its digest ref');
    store.images.delete(ID2);
    assert.equal(store.images.get(ID2), null);
    assert.equal(store.images.byRef('r/app@sha256:2'), null);
    assert.equal(store.images.list().length, 1);
  });
});
