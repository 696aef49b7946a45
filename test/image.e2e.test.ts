/**
 * The image service end to end: a real podchartd pulling from real docker-registry instances on
 * loopback (anonymous, htpasswd, bearer token), with mirrors configured, through the CRI socket.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { rejects } from './grpc-assert.js';
import { Daemon, tempPaths } from './daemon.js';
import { startRegistry, startTamperingProxy, type RegistryFixture } from './registry-fixture.js';
import { busyboxLayer, buildImage, pushImage, pushIndex, type BuiltImage } from './image-builder.js';
import { Store } from '../storage/store.js';
import { LayerStore } from '../images/layer-store.js';
import { mountRootfs, removeRootfs } from '../images/rootfs.js';

interface CriImage { id: string; repoTags: string[]; repoDigests: string[]; size: string; username: string; uid: { value: string } | null }

const paths = tempPaths('pc-img-');
const daemon = new Daemon(paths);
let plain: RegistryFixture;
let basic: RegistryFixture;
let token: RegistryFixture;
let busybox: BuiltImage;
let app: BuiltImage;
let arm: BuiltImage;
let fresh1: BuiltImage;
let fresh2: BuiltImage;
let fresh3: BuiltImage;
let layered: BuiltImage;
let evil: BuiltImage;
let configPath = '';
const stops: (() => Promise<void>)[] = [];

const pull = (image: string, auth?: object): Promise<{ imageRef: string }> =>
  daemon.cri.callImage('PullImage', { image: { image }, ...(auth ? { auth } : {}) }, 120_000);
const imageStatus = (image: string, verbose = false): Promise<{ image: CriImage | null; info: Record<string, string> }> =>
  daemon.cri.callImage('ImageStatus', { image: { image }, verbose });
const listImages = async (filter?: string): Promise<CriImage[]> =>
  (await daemon.cri.callImage<{ images: CriImage[] }>('ListImages', filter ? { filter: { image: { image: filter } } } : {})).images;
const removeImage = (image: string): Promise<unknown> => daemon.cri.callImage('RemoveImage', { image: { image } });

before(async () => {
  plain = await startRegistry();
  basic = await startRegistry({ auth: 'htpasswd', users: [{ user: 'puller', password: 'pa55' }] });
  token = await startRegistry({ auth: 'token', users: [{ user: 'tok', password: 'tokpass' }] });
  // busybox: the host's dynamic busybox and its libraries (gzip), plus a small zstd layer.
  busybox = await buildImage({
    layers: [
      { compression: 'gzip', entries: busyboxLayer() },
      { compression: 'zstd', entries: [{ path: '/etc/motd', type: 'file', content: 'podchart\n' }] },
    ],
    config: { Cmd: ['/bin/sh'], User: 'app' },
    format: 'docker',
  });
  // app shares busybox's first layer and adds one of its own (uncompressed).
  app = await buildImage({
    layers: [
      { compression: 'gzip', entries: busyboxLayer() },
      { compression: 'none', entries: [{ path: '/app.txt', type: 'file', content: 'app\n' }] },
    ],
    config: { Entrypoint: ['/bin/cat'], Cmd: ['/app.txt'], User: '1000:1000' },
  });
  arm = await buildImage({ layers: [{ compression: 'gzip', entries: [{ path: '/arch', type: 'file', content: 'arm64\n' }] }], architecture: 'arm64', variant: 'v8' });
  // Images only the broken-registry tests pull, so none of their blobs is already stored.
  fresh1 = await buildImage({ layers: [{ compression: 'gzip', entries: [{ path: '/f', type: 'file', content: `one ${process.pid}\n`.repeat(5000) }] }] });
  fresh2 = await buildImage({ layers: [{ compression: 'zstd', entries: [{ path: '/f', type: 'file', content: `two ${process.pid}\n`.repeat(5000) }] }] });
  await pushImage(plain, 'team/fresh1', 'v1', fresh1);
  await pushImage(plain, 'team/fresh2', 'v1', fresh2);
  fresh3 = await buildImage({ layers: [{ compression: 'gzip', entries: [{ path: '/f', type: 'file', content: `three ${process.pid}\n`.repeat(5000) }] }] });
  await pushImage(plain, 'team/fresh3', 'v1', fresh3);
  // Three layers: the second whites out a file of the first and makes a directory opaque.
  layered = await buildImage({
    layers: [
      { compression: 'gzip', entries: [
        { path: '/data', type: 'dir', mode: 0o755 },
        { path: '/data/gone.txt', type: 'file', content: 'old\n' },
        { path: '/data/kept.txt', type: 'file', content: 'kept\n' },
        { path: '/cfg', type: 'dir', mode: 0o755 },
        { path: '/cfg/lower.conf', type: 'file', content: 'lower\n' },
        { path: '/bin', type: 'dir', mode: 0o755 },
        { path: '/bin/tool', type: 'file', content: '#!/bin/sh\n', mode: 0o4755, uid: 1000, gid: 1000 },
        { path: '/bin/tool-link', type: 'hardlink', linkname: '/bin/tool' },
      ] },
      { compression: 'zstd', entries: [
        { path: '/data/.wh.gone.txt', type: 'file', content: '' },
        { path: '/cfg', type: 'dir', mode: 0o755 },
        { path: '/cfg/.wh..wh..opq', type: 'file', content: '' },
        { path: '/cfg/upper.conf', type: 'file', content: 'upper\n' },
      ] },
      { compression: 'none', entries: [
        { path: '/bin', type: 'dir', mode: 0o755 },
        { path: '/bin/tool-sym', type: 'symlink', linkname: '/bin/tool' },
      ] },
    ],
  });
  await pushImage(plain, 'team/layered', 'v1', layered);
  evil = await buildImage({ layers: [{ compression: 'gzip', entries: [{ path: '../../evil', type: 'file', content: 'x' }] }] });
  await pushImage(plain, 'team/evil', 'v1', evil);
  await pushImage(plain, 'library/busybox', '1.36', busybox);
  await pushImage(plain, 'team/app', 'v1', app);
  await pushIndex(plain, 'team/multi', 'latest', [{ image: arm }, { image: app }]);
  await pushImage(basic, 'private/busybox', 'v1', busybox, { username: 'puller', password: 'pa55' });
  await pushImage(token, 'secure/app', 'v1', app, { username: 'tok', password: 'tokpass' });
  const config = {
    registries: {
      // docker.io and registry.k8s.io are served by the loopback registry: nothing leaves the machine.
      hosts: { 'docker.io': { mirrors: [plain.url] }, 'registry.k8s.io': { mirrors: ['http://127.0.0.1:9', plain.url] } },
      requestTimeoutMs: 5_000,
    },
  };
  configPath = join(paths.base, 'config.json');
  writeFileSync(configPath, JSON.stringify(config));
  await daemon.start({ PODCHART_CONFIG: configPath });
});

after(async () => {
  await daemon.stop();
  for (const stop of stops) await stop();
  await Promise.all([plain, basic, token].map((r) => r?.stop()));
  rmSync(paths.base, { recursive: true, force: true });
});

describe('pull', () => {
  test('docker.io/library/busybox through its mirror: by short name, found by tag, digest, id and prefix', async () => {
    const { imageRef } = await pull('busybox:1.36');
    assert.equal(imageRef, busybox.configDigest);
    const byName = await imageStatus('busybox:1.36');
    assert.equal(byName.image?.id, busybox.configDigest);
    assert.deepEqual(byName.image?.repoTags, ['docker.io/library/busybox:1.36']);
    assert.deepEqual(byName.image?.repoDigests, [`docker.io/library/busybox@${busybox.manifestDigest}`]);
    assert.equal(byName.image?.username, 'app');
    assert.equal((await imageStatus('docker.io/library/busybox:1.36')).image?.id, imageRef);
    assert.equal((await imageStatus(`docker.io/library/busybox@${busybox.manifestDigest}`)).image?.id, imageRef);
    assert.equal((await imageStatus(imageRef)).image?.id, imageRef);
    assert.equal((await imageStatus(imageRef.slice('sha256:'.length, 'sha256:'.length + 12))).image?.id, imageRef);
    const verbose = await imageStatus('busybox:1.36', true);
    assert.deepEqual((JSON.parse(verbose.info['info'] ?? '{}') as { imageSpec: { config: { Cmd: string[] } } }).imageSpec.config.Cmd, ['/bin/sh']);
    assert.ok(Number(byName.image?.size) > 100_000, 'size counts the layers');
  });

  test('a digest-pinned reference, and registry.k8s.io through a dead mirror then a live one', async () => {
    const pinned = await pull(`${plain.host}/team/app@${app.manifestDigest}`);
    assert.equal(pinned.imageRef, app.configDigest);
    const status = await imageStatus(`${plain.host}/team/app@${app.manifestDigest}`);
    assert.deepEqual(status.image?.repoTags, [], 'a digest pull adds no tag');
    assert.equal(status.image?.uid?.value, '1000');
    const k8s = await pull('registry.k8s.io/team/app:v1');
    assert.equal(k8s.imageRef, app.configDigest);
    assert.ok((await imageStatus('registry.k8s.io/team/app:v1')).image?.repoTags.includes('registry.k8s.io/team/app:v1'));
  });

  test('a multi-arch index resolves to this machine (linux/amd64 here)', async () => {
    const { imageRef } = await pull(`${plain.host}/team/multi:latest`);
    assert.equal(imageRef, process.arch === 'arm64' ? arm.configDigest : app.configDigest);
  });

  test('htpasswd: no or wrong credentials are refused in the registry\'s words; the CRI AuthConfig works', async () => {
    const ref = `${basic.host}/private/busybox:v1`;
    await rejects(pull(ref), grpcStatus.PERMISSION_DENIED, /authentication required|unauthorized/i);
    await rejects(pull(ref, { username: 'puller', password: 'wrong' }), grpcStatus.PERMISSION_DENIED, /authentication required|unauthorized/i);
    assert.equal((await imageStatus(ref)).image, null, 'a refused pull stores nothing');
    const auth = Buffer.from('puller:pa55').toString('base64');
    assert.equal((await pull(ref, { auth })).imageRef, busybox.configDigest);
  });

  test('bearer token flow through the registry\'s token endpoint', async () => {
    const ref = `${token.host}/secure/app:v1`;
    const before = token.tokenRequests;
    assert.equal((await pull(ref, { username: 'tok', password: 'tokpass' })).imageRef, app.configDigest);
    assert.ok(token.tokenRequests > before, 'the token endpoint was asked');
  });

  test('concurrent pulls of one image share one download', async () => {
    const ref = `${plain.host}/library/busybox:1.36`;
    const results = await Promise.all([pull(ref), pull(ref), pull(ref)]);
    assert.deepEqual(new Set(results.map((r) => r.imageRef)), new Set([busybox.configDigest]));
    const pulled = daemon.logs().split('\n').filter((l) => l.includes('"msg":"pulled"') && l.includes(`"image":"${ref}"`));
    assert.equal(pulled.length, 1, 'one pull ran for three requests');
  });
});

describe('bad input and broken registries', () => {
  test('a malformed reference is INVALID_ARGUMENT', async () => {
    await rejects(pull('Busy Box::'), grpcStatus.INVALID_ARGUMENT, /reference/i);
    await rejects(daemon.cri.callImage('PullImage', {}), grpcStatus.INVALID_ARGUMENT, /image\.image is required/);
  });

  test('a tag the registry does not have is NOT_FOUND with its words', async () => {
    await rejects(pull(`${plain.host}/library/busybox:nope`), grpcStatus.NOT_FOUND, /manifest unknown/i);
  });

  test('a registry that is down fails within the bound, UNAVAILABLE', async () => {
    const started = Date.now();
    await rejects(pull('127.0.0.1:9/library/busybox:1'), grpcStatus.UNAVAILABLE, /unreachable/);
    assert.ok(Date.now() - started < 30_000);
  });

  test('a blob whose digest does not match is refused and stores nothing', async () => {
    const proxy = await startTamperingProxy(plain.url, 'flip-blob-byte'); // a fake: a corrupting mirror
    stops.push(() => proxy.stop());
    const ref = `${proxy.host}/team/fresh1:v1`;
    await rejects(pull(ref), grpcStatus.DATA_LOSS, /digest mismatch/);
    assert.equal((await imageStatus(ref)).image, null);
    assert.equal(readdirSync(join(paths.root, 'images', 'content', 'ingest')).length, 0, 'no temp file left');
  });

  test('a pull cut off midway leaves no image, and the next pull completes it', async () => {
    const proxy = await startTamperingProxy(plain.url, 'stall-blobs'); // a fake: a registry that stalls
    stops.push(() => proxy.stop());
    await rejects(pull(`${proxy.host}/team/fresh2:v1`), grpcStatus.UNAVAILABLE, /stalled|unreachable/);
    assert.equal((await imageStatus(`${proxy.host}/team/fresh2:v1`)).image, null);
    const { imageRef } = await pull(`${plain.host}/team/fresh2:v1`);
    assert.equal(imageRef, fresh2.configDigest);
    assert.equal(readdirSync(join(paths.root, 'images', 'content', 'ingest')).length, 0, 'no temp file left');
  });
});

describe('crash during a pull', () => {
  test('kill -9 mid-pull: after restart no half image, no temp file, and the pull completes', async () => {
    const proxy = await startTamperingProxy(plain.url, 'stall-blobs'); // a fake: a registry that stalls
    stops.push(() => proxy.stop());
    const ingest = join(paths.root, 'images', 'content', 'ingest');
    const pending = pull(`${proxy.host}/team/fresh3:v1`).catch((err: ServiceError) => err);
    const { eventually } = await import('./daemon.js');
    await eventually('the pull to start writing a blob', () => readdirSync(ingest).length > 0);
    await daemon.kill9();
    assert.equal((await pending as ServiceError).code, grpcStatus.UNAVAILABLE, 'the call lost its daemon');
    await daemon.start({ PODCHART_CONFIG: configPath });
    assert.equal(readdirSync(ingest).length, 0, 'the temp file of the cut-off pull was cleaned');
    assert.equal((await imageStatus(`${proxy.host}/team/fresh3:v1`)).image, null, 'no half image');
    assert.equal((await pull(`${plain.host}/team/fresh3:v1`)).imageRef, fresh3.configDigest);
  });
});

describe('list, remove, fs info and root filesystems', () => {
  test('ListImages lists every image and filters by reference', async () => {
    await pull(`${plain.host}/library/busybox:1.36`);
    const all = await listImages();
    assert.ok(all.some((i) => i.id === busybox.configDigest));
    assert.ok(all.some((i) => i.id === app.configDigest));
    const filtered = await listImages(`${plain.host}/library/busybox:1.36`);
    assert.deepEqual(filtered.map((i) => i.id), [busybox.configDigest]);
    assert.deepEqual(await listImages(`${plain.host}/library/absent:1`), []);
  });

  test('the rootfs of a pulled image mounts and runs', async () => {
    const store = new Store(join(paths.root, 'podchart.db'));
    const record = store.images.get(busybox.configDigest);
    store.close();
    assert.ok(record);
    const layers = new LayerStore(join(paths.root, 'images', 'layers'));
    const lowerDirs = await Promise.all([...record.layers].reverse().map((l) => layers.dir(l.diffId)));
    const containerDir = join(paths.base, 'ctr');
    try {
      const merged = await mountRootfs({ lowerDirs, containerDir });
      assert.equal(readFileSync(join(merged, 'etc', 'motd'), 'utf8'), 'podchart\n');
      assert.equal(execFileSync('chroot', [merged, '/bin/busybox', 'echo', 'hi']).toString(), 'hi\n');
    } finally {
      await removeRootfs(containerDir);
    }
  });

  test('whiteouts, an opaque dir, a hardlink, a symlink and a setuid owner survive pull and mount', async () => {
    const { imageRef } = await pull(`${plain.host}/team/layered:v1`);
    const store = new Store(join(paths.root, 'podchart.db'));
    const record = store.images.get(imageRef);
    store.close();
    assert.ok(record);
    const layers = new LayerStore(join(paths.root, 'images', 'layers'));
    const lowerDirs = await Promise.all([...record.layers].reverse().map((l) => layers.dir(l.diffId)));
    const containerDir = join(paths.base, 'ctr-layered');
    try {
      const merged = await mountRootfs({ lowerDirs, containerDir });
      assert.ok(!existsSync(join(merged, 'data', 'gone.txt')), 'whited out');
      assert.equal(readFileSync(join(merged, 'data', 'kept.txt'), 'utf8'), 'kept\n');
      assert.deepEqual(readdirSync(join(merged, 'cfg')), ['upper.conf'], 'opaque: only the upper layer shows');
      const { lstatSync, statSync, readlinkSync } = await import('node:fs');
      const tool = statSync(join(merged, 'bin', 'tool'));
      assert.equal(tool.mode & 0o7777, 0o4755);
      assert.equal(tool.uid, 1000);
      const bottom = lowerDirs[lowerDirs.length - 1] ?? '';
      assert.equal(statSync(join(bottom, 'bin', 'tool-link')).ino, statSync(join(bottom, 'bin', 'tool')).ino, 'a hardlink in its layer');
      assert.equal(readFileSync(join(merged, 'bin', 'tool-link'), 'utf8'), '#!/bin/sh\n');
      assert.ok(lstatSync(join(merged, 'bin', 'tool-sym')).isSymbolicLink());
      assert.equal(readlinkSync(join(merged, 'bin', 'tool-sym')), '/bin/tool');
    } finally {
      await removeRootfs(containerDir);
    }
  });

  test('a layer entry that escapes is refused and stores nothing', async () => {
    await rejects(pull(`${plain.host}/team/evil:v1`), grpcStatus.INVALID_ARGUMENT, /escapes the layer directory/);
    assert.equal((await imageStatus(`${plain.host}/team/evil:v1`)).image, null);
    assert.ok(!existsSync(join(paths.root, 'images', 'evil')) && !existsSync(join(paths.root, 'evil')));
  });

  test('ImageFsInfo reports the store, and RemoveImage frees what no other image uses', async () => {
    const fs = async (): Promise<number> => {
      const r = await daemon.cri.callImage<{ imageFilesystems: { usedBytes: { value: string }; inodesUsed: { value: string }; fsId: { mountpoint: string } }[] }>('ImageFsInfo', {});
      assert.equal(r.imageFilesystems[0]?.fsId.mountpoint, join(paths.root, 'images'));
      assert.ok(Number(r.imageFilesystems[0]?.inodesUsed.value) > 0);
      return Number(r.imageFilesystems[0]?.usedBytes.value);
    };
    const before = await fs();
    assert.ok(before > 0);
    const layerDirs = (): string[] => readdirSync(join(paths.root, 'images', 'layers')).filter((d) => !d.startsWith('.'));
    const sharedLayer = busybox.layers[0]?.diffId ?? '';
    // app and busybox share their first layer: removing app keeps it.
    for (const ref of (await imageStatus(app.configDigest)).image?.repoTags ?? []) await removeImage(ref);
    await removeImage(app.configDigest);
    assert.equal((await imageStatus(app.configDigest)).image, null);
    assert.ok(layerDirs().some((d) => sharedLayer.slice('sha256:'.length).startsWith(d)), 'the shared layer stays');
    assert.ok(existsSync(join(paths.root, 'images', 'content', 'blobs', 'sha256', busybox.layers[0]?.digest.slice(7) ?? '')));
    assert.ok(!existsSync(join(paths.root, 'images', 'content', 'blobs', 'sha256', app.configDigest.slice(7))), 'app\'s config blob is gone');
    assert.ok(await fs() < before, 'usage went down');
    await removeImage(app.configDigest); // idempotent
    await removeImage(busybox.configDigest);
    assert.deepEqual(await listImages(), (await listImages()).filter((i) => i.id !== busybox.configDigest));
    assert.ok(!layerDirs().some((d) => sharedLayer.slice('sha256:'.length).startsWith(d)), 'the last user gone, the layer goes');
  });

  test('removing one of two tags only untags', async () => {
    await pull(`${plain.host}/library/busybox:1.36`);
    await pull('busybox:1.36');
    await removeImage('busybox:1.36');
    const left = await imageStatus(busybox.configDigest);
    assert.deepEqual(left.image?.repoTags, [`${plain.host}/library/busybox:1.36`]);
  });
});
