/**
 * Pulls the registry should never be able to turn into an outage (issue 12, items 2 and 14): zstd
 * and gzip bombs, a 10 000-layer manifest, a config that is not JSON, layers that are not gzip or
 * not tar. A real podchartd pulls them from a real docker-registry on loopback. Its root is a
 * 128 MiB tmpfs of its own with imageFsReserveBytes at 96 MiB, so the disk budget of a pull is
 * about 32 MiB whatever the host's disk holds. After every refusal: the daemon's peak RSS stayed
 * near where it was, it still serves, nothing of the pull is left on disk, and a normal image pulls.
 * Layers go three at a time, seen through a proxy that holds each blob until the test lets it go.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { status as grpcStatus } from '@grpc/grpc-js';
import { rejects } from './grpc-assert.js';
import { Daemon, eventually, tempPaths } from './daemon.js';
import { startGatedProxy, startRegistry, type RegistryFixture } from './registry-fixture.js';
import { buildImage, pushImage, sha256, type BuiltImage, type BuiltLayer } from './image-builder.js';

const MiB = 1024 * 1024;
/** Uncompressed size of each bomb: ten times the disk budget, five times the RSS bound. */
const BOMB_BYTES = 320 * MiB;
/** What the daemon's peak RSS may grow by during a refused pull; decoding the bomb in memory takes 320 MiB. */
const RSS_BOUND = 64 * MiB;

const paths = tempPaths('pc-lim-');
const daemon = new Daemon(paths, [], {}, 'none');
let registry: RegistryFixture;
let normal: BuiltImage;
let mounted = false;

const pull = (image: string): Promise<{ imageRef: string }> => daemon.cri.callImage('PullImage', { image: { image } }, 120_000);
const imageStatus = (image: string): Promise<{ image: { id: string } | null }> => daemon.cri.callImage('ImageStatus', { image: { image } });
const contentDir = (): string => join(paths.root, 'images', 'content');
const layersDir = (): string => join(paths.root, 'images', 'layers');
const ls = (dir: string): string[] => {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
};
const freeBytes = (): number => {
  const st = statfsSync(paths.root);
  return st.bavail * st.bsize;
};

/** VmRSS or VmHWM of the daemon, in bytes, from /proc/<pid>/status. */
function memory(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${daemon.pid()}/status`, 'utf8'));
  assert.ok(m?.[1] !== undefined, `${field} in /proc/<pid>/status`);
  return Number(m[1]) * 1024;
}

/**
 * Runs a pull that must be refused, then checks what every refusal must leave: the daemon's peak
 * RSS (reset before the pull: "5" to clear_refs) within RSS_BOUND of where it was, the daemon up,
 * no image, no temp file or stage dir, no new layer, the disk as free as before.
 */
async function refused(ref: string, code: grpcStatus, pattern: RegExp): Promise<void> {
  const layersBefore = ls(layersDir()).filter((n) => !n.startsWith('.'));
  const freeBefore = freeBytes();
  writeFileSync(`/proc/${daemon.pid()}/clear_refs`, '5');
  const rssBefore = memory('VmRSS');
  await rejects(pull(ref), code, pattern);
  const grown = memory('VmHWM') - rssBefore;
  assert.ok(grown < RSS_BOUND, `peak RSS grew by ${Math.round(grown / MiB)} MiB during the pull`);
  assert.equal(daemon.exitCode, null, 'the daemon is up');
  assert.equal((await daemon.cri.call<{ runtimeName: string }>('Version', {})).runtimeName, 'podchart');
  assert.equal((await imageStatus(ref)).image, null, 'no image recorded');
  assert.deepEqual(ls(join(contentDir(), 'ingest')), [], 'no partial blob');
  assert.deepEqual(ls(layersDir()), layersBefore, 'no stage dir, no new layer');
  // Blobs that were refused whole (a few KiB each) may stay; nothing the size of an unpack may.
  assert.ok(freeBytes() > freeBefore - MiB, `${Math.round((freeBefore - freeBytes()) / MiB)} MiB of the disk still used`);
  await normalPull();
}

/** A normal image pulls in full (and is removed again, so each check unpacks it afresh). */
async function normalPull(): Promise<void> {
  const ref = `${registry.host}/team/normal:v1`;
  assert.equal((await pull(ref)).imageRef, normal.configDigest);
  await daemon.cri.callImage('RemoveImage', { image: { image: ref } });
}

/** A ustar header for one regular file of `size` bytes. */
function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\x0000', 257);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/** A layer whose tar holds one file of `size` zero bytes, compressed without ever being in memory whole. */
async function bombLayer(compression: 'gzip' | 'zstd', size: number): Promise<BuiltLayer> {
  const diff = createHash('sha256');
  async function* tar(): AsyncGenerator<Buffer> {
    const zeros = Buffer.alloc(MiB);
    const emit = (b: Buffer): Buffer => (diff.update(b), b);
    yield emit(tarHeader('bomb', size));
    for (let left = size; left > 0; left -= zeros.length) yield emit(zeros.subarray(0, Math.min(left, zeros.length)));
    yield emit(Buffer.alloc(1024)); // end of archive (size is a multiple of 512: no padding)
  }
  const parts: Buffer[] = [];
  if (compression === 'gzip') {
    await pipeline(Readable.from(tar()), createGzip(), async (out: AsyncIterable<Buffer>) => {
      for await (const b of out) parts.push(b);
    });
  } else {
    const zstd = spawn('zstd', ['-q', '-c', '-'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const collected = (async () => {
      for await (const b of zstd.stdout) parts.push(b as Buffer);
    })();
    await pipeline(Readable.from(tar()), zstd.stdin);
    await collected;
  }
  const bytes = Buffer.concat(parts);
  const mediaType = `application/vnd.oci.image.layer.v1.tar+${compression}`;
  return { mediaType, digest: sha256(bytes), size: bytes.length, diffId: `sha256:${diff.digest('hex')}`, bytes, tar: Buffer.alloc(0) };
}

/** `base` with its layers and config replaced, manifest and digests rebuilt to match. */
function variant(base: BuiltImage, layers: BuiltLayer[], configBytes?: Buffer): BuiltImage {
  const config = { ...base.config, rootfs: { type: 'layers' as const, diff_ids: layers.map((l) => l.diffId) } };
  const cfg = configBytes ?? Buffer.from(JSON.stringify(config));
  const manifest = {
    ...base.manifest,
    config: { ...base.manifest.config, digest: sha256(cfg), size: cfg.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return { ...base, config, configBytes: cfg, configDigest: sha256(cfg), manifest, manifestBytes, manifestDigest: sha256(manifestBytes), layers };
}

/** A layer of raw bytes under a media type: what a broken push leaves in a registry. */
function rawLayer(bytes: Buffer, mediaType: string): BuiltLayer {
  return { mediaType, digest: sha256(bytes), size: bytes.length, diffId: sha256(bytes), bytes, tar: bytes };
}

before(async () => {
  mkdirSync(paths.root, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=128m,mode=0700', 'tmpfs', paths.root]);
  mounted = true;
  registry = await startRegistry();
  normal = await buildImage({ layers: [{ compression: 'gzip', entries: [{ path: '/hello', type: 'file', content: `normal ${process.pid}\n` }] }] });
  await pushImage(registry, 'team/normal', 'v1', normal);
  const configPath = join(paths.base, 'config.json');
  writeFileSync(configPath, JSON.stringify({ imageFsReserveBytes: 96 * MiB }));
  await daemon.start({ PODCHART_CONFIG: configPath });
});

after(async () => {
  await daemon.stop();
  await registry?.stop();
  if (mounted) execFileSync('umount', [paths.root]);
  rmSync(paths.base, { recursive: true, force: true });
});

describe('bombs and unbounded pulls', () => {
  test('a normal image pulls within the budget', async () => {
    await normalPull();
  });

  for (const compression of ['zstd', 'gzip'] as const) {
    test(`a ${compression} bomb (${BOMB_BYTES / MiB} MiB from a few KiB) is RESOURCE_EXHAUSTED at the disk budget, in bounded memory`, async () => {
      const bomb = await bombLayer(compression, BOMB_BYTES);
      assert.ok(bomb.size < 400 * 1024, `the bomb is ${bomb.size} bytes compressed`);
      await pushImage(registry, `bombs/${compression}`, 'v1', variant(normal, [bomb]));
      await refused(`${registry.host}/bombs/${compression}:v1`, grpcStatus.RESOURCE_EXHAUSTED, /unpacks to more than the \d+ bytes left for it on .* must stay free.*lower imageFsReserveBytes/);
    });
  }

  test('layers download and unpack at most 3 at once (pullLayerConcurrency), the next starting as one finishes', async () => {
    const six = await buildImage({
      layers: Array.from({ length: 6 }, (_, i) => ({ compression: 'gzip' as const, entries: [{ path: `/layer${i}`, type: 'file' as const, content: `${i} ${process.pid}\n` }] })),
    });
    await pushImage(registry, 'team/six', 'v1', six);
    const gate = await startGatedProxy(registry.url);
    try {
      const pulled = pull(`${gate.host}/team/six:v1`);
      await eventually('the config blob to be asked for', () => gate.held() === 1);
      gate.release();
      // Every slot waits on a held blob before each release, so nothing else can start meanwhile.
      for (let done = 0; done < 6; done++) {
        const open = Math.min(3, 6 - done);
        await eventually(`${open} layer blobs to be asked for at once`, () => gate.held() === open);
        assert.equal(gate.requested(), 1 + Math.min(6, 3 + done), `layers asked for after ${done} finished`);
        gate.release();
      }
      assert.equal((await pulled).imageRef, six.configDigest);
    } finally {
      await gate.stop();
    }
  });

  test('a 10 000-layer manifest is RESOURCE_EXHAUSTED before any layer or the manifest is stored', async () => {
    const layer = rawLayer(execFileSync('tar', ['-c', '-f', '-', '--files-from', '/dev/null']), 'application/vnd.oci.image.layer.v1.tar');
    const image = variant(normal, Array.from({ length: 10_000 }, () => ({ ...layer, diffId: sha256(`${process.pid} many`) })));
    assert.ok(image.manifestBytes.length < 4 * MiB);
    await pushImage(registry, 'bombs/many', 'v1', { ...image, layers: [layer] }); // the one blob, then the 10 000-layer manifest
    const blobsBefore = ls(join(contentDir(), 'blobs', 'sha256'));
    await refused(`${registry.host}/bombs/many:v1`, grpcStatus.RESOURCE_EXHAUSTED, /has 10000 layers, more than the 128 allowed \(maxImageLayers\): flatten the image, or raise maxImageLayers/);
    assert.deepEqual(ls(join(contentDir(), 'blobs', 'sha256')).filter((n) => !blobsBefore.includes(n)), [], 'nothing was downloaded');
  });
});

describe('registry content that is not valid is DATA_LOSS', () => {
  test('a config that is not JSON', async () => {
    await pushImage(registry, 'broken/config', 'v1', variant(normal, normal.layers, Buffer.from('this is not { json')));
    await refused(`${registry.host}/broken/config:v1`, grpcStatus.DATA_LOSS, /^the config sha256:[0-9a-f]{64} of image .*broken\/config:v1 is not JSON: the registry holds a broken image; push it again$/);
  });

  test('a gzip layer that is not gzip inside, and a plain layer that is not a tar', async () => {
    const gzipHeaderThenJunk = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3]), Buffer.from('definitely not deflate data '.repeat(40))]);
    await pushImage(registry, 'broken/gzip', 'v1', variant(normal, [rawLayer(gzipHeaderThenJunk, 'application/vnd.oci.image.layer.v1.tar+gzip')]));
    await refused(`${registry.host}/broken/gzip:v1`, grpcStatus.DATA_LOSS, /^layer sha256:[0-9a-f]{64} of image .*broken\/gzip:v1 is not a valid gzip stream \(.+\): the registry holds a broken image; push it again$/);
    await pushImage(registry, 'broken/tar', 'v1', variant(normal, [rawLayer(Buffer.from('just some text, no tar\n'.repeat(100)), 'application/vnd.oci.image.layer.v1.tar')]));
    await refused(`${registry.host}/broken/tar:v1`, grpcStatus.DATA_LOSS, /^layer sha256:[0-9a-f]{64} of image .*broken\/tar:v1 is not a valid tar archive \(.+\): the registry holds a broken image; push it again$/);
  });
});
