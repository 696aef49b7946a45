/**
 * A long pull's progress lines and the pull-progress timeout (issue 16, item 5), on a real daemon
 * pulling from the real registry through FAKE proxies (test/registry-fixture.ts): one that sends a
 * blob slowly, one that stops sending mid-blob.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { rejects } from './grpc-assert.js';
import { Daemon, tempPaths } from './daemon.js';
import { startRegistry, startTamperingProxy, type RegistryFixture } from './registry-fixture.js';
import { buildImage, pushImage, type BuiltImage } from './image-builder.js';

const paths = tempPaths('pc-pp-');
const daemon = new Daemon(paths, [], {}, 'none');
/** The progress timeout here: far below the registry request timeout, so only it can fire. */
const PROGRESS_TIMEOUT_MS = 1500;
let registry: RegistryFixture;
let slow: BuiltImage;
let stuck: BuiltImage;
const stops: (() => Promise<void>)[] = [];

before(async () => {
  registry = await startRegistry();
  // Random bytes do not compress: each layer is as big on the wire as on disk.
  slow = await buildImage({ layers: [{ compression: 'gzip', entries: [{ path: '/data/a', type: 'file', content: randomBytes(1_200_000) }] }, { compression: 'gzip', entries: [{ path: '/data/b', type: 'file', content: randomBytes(300_000) }] }] });
  stuck = await buildImage({ layers: [{ compression: 'gzip', entries: [{ path: '/data/c', type: 'file', content: randomBytes(500_000) }] }] });
  await pushImage(registry, 'team/slow', 'v1', slow);
  await pushImage(registry, 'team/stuck', 'v1', stuck);
  const configPath = join(paths.base, 'config.json');
  writeFileSync(configPath, JSON.stringify({ registries: { requestTimeoutMs: 20_000 }, imagePullProgressTimeoutMs: PROGRESS_TIMEOUT_MS }));
  await daemon.start({ PODCHART_CONFIG: configPath });
});

after(async () => {
  for (const stop of stops) await stop();
  await daemon.dispose();
  await registry?.stop();
});

const pull = (image: string) => daemon.cri.callImage<{ imageRef: string }>('PullImage', { image: { image } }, 120_000);
const progressLines = (): Record<string, unknown>[] =>
  daemon.logs().split('\n').filter((l) => l.includes('"msg":"pulling: ')).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('PullImage progress', () => {
  test('a slow pull logs its progress every few seconds, per layer and with a rate, and is not cut off while it moves', async () => {
    const proxy = await startTamperingProxy(registry.url, 'trickle-blobs'); // a fake: a slow registry
    stops.push(() => proxy.stop());
    const started = Date.now();
    const { imageRef } = await pull(`${proxy.host}/team/slow:v1`);
    assert.equal(imageRef, slow.configDigest);
    assert.ok(Date.now() - started > 2 * PROGRESS_TIMEOUT_MS, 'the pull outlasted the progress timeout: moving, it is not cancelled');
    const lines = progressLines();
    assert.ok(lines.length >= 1, 'at least one progress line');
    const line = lines[0]!;
    assert.match(String(line['msg']), /^pulling: [\d.]+ of 1\.5 MB \(\d+%\) at [\d.]+ MB\/s, \d of 2 layers done/);
    assert.equal(line['image'], `${proxy.host}/team/slow:v1`);
    assert.equal(line['total'], slow.layers.reduce((n, l) => n + l.size, 0));
    assert.ok(Number(line['bytesPerSecond']) > 0, 'a rate');
    const layers = line['layers'] as { layer: string; bytes: number; total: number }[];
    assert.deepEqual(layers.map((l) => l.total), slow.layers.map((l) => l.size), 'each layer with its total');
    assert.ok(layers.every((l) => l.bytes <= l.total));
  });

  test('a pull that stops moving is cancelled after the progress timeout, with DEADLINE_EXCEEDED saying why; nothing is left and the daemon serves', async () => {
    const proxy = await startTamperingProxy(registry.url, 'stall-blobs'); // a fake: a registry that stalls
    stops.push(() => proxy.stop());
    const started = Date.now();
    await rejects(pull(`${proxy.host}/team/stuck:v1`), grpcStatus.DEADLINE_EXCEEDED, /made no progress for 1\.\d s \(imagePullProgressTimeoutMs is 1500 ms\), at 0\.0 of 0\.5 MB: cancelled/);
    const took = Date.now() - started;
    assert.ok(took < 10_000, `cancelled by the progress timeout (${took} ms), not the 20 s request timeout`);
    assert.equal(readdirSync(join(paths.root, 'images', 'content', 'ingest')).length, 0, 'no temp file left');
    const status = await daemon.cri.callImage<{ image: unknown }>('ImageStatus', { image: { image: `${proxy.host}/team/stuck:v1` } });
    assert.equal(status.image, null, 'no half image');
    assert.equal((await pull(`${registry.host}/team/stuck:v1`)).imageRef, stuck.configDigest, 'from a registry that answers, the same pull completes');
  });
});
