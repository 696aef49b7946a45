/**
 * The registry client against real docker-registry instances (anonymous, htpasswd, token). Faults a
 * real registry will not produce — corrupted bytes, a hung server, schema 1 — come from named fakes.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { DataLoss, EffectFailed, NotFound, PermissionDenied, ResourceExhausted, Unavailable } from '../../errors/catalogue.js';
import { buildImage, pushImage, pushIndex, sha256, type BuiltImage } from '../../test/image-builder.js';
import { freePort, startHungServer, startRegistry, startTamperingProxy, type RegistryFixture } from '../../test/registry-fixture.js';
import { ContentStore } from '../content-store.js';
import { hostPlatform } from '../platform.js';
import { parseReference } from '../reference.js';
import type { Credentials, Platform, RegistriesConfig } from '../types.js';
import { parseChallenges } from './auth.js';
import { choosePlatform, MediaType, RegistryClient } from './client.js';

const ALICE = { user: 'alice', password: 'wonderland', refreshToken: 'alice-refresh-token' };
const BOB = { user: 'bob', password: 'builder' };
const aliceCreds: Credentials = { username: ALICE.user, password: ALICE.password };
const HOST = hostPlatform();

let anon: RegistryFixture;
let basic: RegistryFixture;
let token: RegistryFixture;
let work: string;
let image: BuiltImage;
let dockerImage: BuiltImage;

before(async () => {
  [anon, basic, token] = await Promise.all([
    startRegistry(),
    startRegistry({ auth: 'htpasswd', users: [ALICE, BOB] }),
    startRegistry({ auth: 'token', users: [ALICE, BOB] }),
  ]);
  work = await mkdtemp(join(tmpdir(), 'podchart-client-test-'));
  image = await smallImage('oci image', 'oci');
  dockerImage = await buildImage({
    format: 'docker',
    layers: [
      { compression: 'none', entries: [{ path: 'etc/plain', type: 'file', content: 'uncompressed' }] },
      { compression: 'zstd', entries: [{ path: 'etc/zstd', type: 'file', content: 'zstd compressed' }] },
    ],
  });
  await pushImage(anon, 'test/oci', 'v1', image);
  await pushImage(anon, 'test/docker', 'v1', dockerImage);
  await pushImage(basic, 'private/app', 'v1', image, aliceCreds);
  await pushImage(token, 'private/app', 'v1', image, aliceCreds);
});

after(async () => {
  await Promise.all([anon?.stop(), basic?.stop(), token?.stop()]);
  if (work) await rm(work, { recursive: true, force: true });
});

function smallImage(text: string, format: 'oci' | 'docker', platform: Partial<Platform> = {}): Promise<BuiltImage> {
  return buildImage({
    format,
    ...(platform.architecture ? { architecture: platform.architecture } : {}),
    ...(platform.variant ? { variant: platform.variant } : {}),
    layers: [{ compression: 'gzip', entries: [{ path: 'etc', type: 'dir' }, { path: 'etc/hello', type: 'file', content: text }] }],
    config: { Cmd: ['/bin/sh'] },
  });
}

function config(overrides: Partial<RegistriesConfig> = {}): RegistriesConfig {
  return { hosts: {}, insecureHosts: ['127.0.0.1', 'localhost'], credentialsFile: null, requestTimeoutMs: 5000, ...overrides };
}

/** A client whose debug log lines are kept for assertions. */
function client(cfg: RegistriesConfig = config()): { client: RegistryClient; logs: { msg: string; endpoint?: string; err?: string }[] } {
  const logs: { msg: string; endpoint?: string; err?: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as (typeof logs)[number]) });
  return { client: new RegistryClient(cfg, logger), logs };
}

async function isRejectedWith<T extends Error>(promise: Promise<unknown>, type: new (...args: never[]) => T, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
}

test('anonymous pull: resolve an OCI image and fetch its blobs into the content store', async () => {
  const { client: c } = client();
  const ref = parseReference(`${anon.host}/test/oci:v1`);
  const r = await c.resolve(ref, null, HOST);
  assert.deepEqual(r.endpoint, { base: anon.url, repository: 'test/oci', mirror: false, registry: anon.host });
  assert.equal(r.repoDigest, image.manifestDigest);
  assert.equal(r.manifestDigest, image.manifestDigest);
  assert.deepEqual(r.manifestBytes, image.manifestBytes);
  assert.equal(r.indexBytes, null);
  assert.equal(r.manifest.mediaType, MediaType.ociManifest);
  assert.deepEqual(r.manifest.layers.map((l) => l.digest), image.layers.map((l) => l.digest));

  const store = new ContentStore(join(work, 'anon'));
  for (const d of [r.manifest.config, ...r.manifest.layers]) {
    await store.ingest(d.digest, await c.fetchBlob(r, d.digest, null), d.size);
  }
  assert.deepEqual(await store.read(image.configDigest), image.configBytes);
  assert.deepEqual(await store.read(image.layers[0]?.digest ?? ''), image.layers[0]?.bytes);
  // fetchBlob also takes a bare endpoint (a later pull of a blob the store lacks).
  const again = await c.fetchBlob({ endpoint: r.endpoint }, image.configDigest, null);
  const chunks: Buffer[] = [];
  for await (const chunk of again) chunks.push(Buffer.from(chunk));
  assert.deepEqual(Buffer.concat(chunks), image.configBytes);
});

test('Docker schema 2 manifests with uncompressed and zstd layers resolve as pushed', async () => {
  const { client: c } = client();
  const r = await c.resolve(parseReference(`${anon.host}/test/docker:v1`), null, HOST);
  assert.equal(r.manifest.mediaType, MediaType.dockerManifest);
  assert.equal(r.manifestDigest, dockerImage.manifestDigest);
  assert.deepEqual(r.manifest.layers.map((l) => l.mediaType), ['application/vnd.docker.image.rootfs.diff.tar', 'application/vnd.oci.image.layer.v1.tar+zstd']);
  assert.equal(r.manifest.config.mediaType, 'application/vnd.docker.container.image.v1+json');
});

test('a digest-pinned reference is fetched by digest and verified; an unknown digest is NotFound', async () => {
  const { client: c } = client();
  const pinned = await c.resolve(parseReference(`${anon.host}/test/oci@${image.manifestDigest}`), null, HOST);
  assert.equal(pinned.repoDigest, image.manifestDigest);
  const both = await c.resolve(parseReference(`${anon.host}/test/oci:ignored@${image.manifestDigest}`), null, HOST);
  assert.equal(both.manifestDigest, image.manifestDigest, 'the digest wins over the tag');
  await isRejectedWith(c.resolve(parseReference(`${anon.host}/test/oci@${sha256('nothing')}`), null, HOST), NotFound, /manifest unknown/);
});

test('an unknown tag or repository is NotFound with the registry words', async () => {
  const { client: c } = client();
  await isRejectedWith(c.resolve(parseReference(`${anon.host}/test/oci:nope`), null, HOST), NotFound, /test\/oci:nope not found at .*MANIFEST_UNKNOWN: manifest unknown/);
  await isRejectedWith(c.resolve(parseReference(`${anon.host}/no/such:v1`), null, HOST), NotFound, /no\/such:v1 not found at .*manifest unknown/);
  await isRejectedWith(c.fetchBlob({ endpoint: { base: anon.url, repository: 'test/oci', mirror: false, registry: anon.host } }, sha256('no blob'), null), NotFound, /BLOB_UNKNOWN/);
});

test('a multi-arch index resolves to this platform, with variant fallbacks', async () => {
  const arm64 = await smallImage('arm64', 'oci', { architecture: 'arm64', variant: 'v8' });
  const armv7 = await smallImage('armv7', 'oci', { architecture: 'arm', variant: 'v7' });
  const amd64 = await smallImage('amd64', 'oci', { architecture: 'amd64' });
  const entries = [
    { image: arm64, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    { image: armv7, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
    { image: amd64, platform: { os: 'linux', architecture: 'amd64' } },
  ];
  const index = await pushIndex(anon, 'test/multi', 'v1', entries);
  const { client: c } = client();
  const ref = parseReference(`${anon.host}/test/multi:v1`);
  const byArch: Record<string, BuiltImage> = { arm64, arm: armv7, amd64 };

  const here = await c.resolve(ref, null, HOST);
  assert.equal(here.repoDigest, index.digest);
  assert.deepEqual(here.indexBytes, index.bytes);
  assert.equal(here.manifestDigest, byArch[HOST.architecture]?.manifestDigest, `this machine is ${HOST.architecture}`);

  const picks: [Platform, BuiltImage | null][] = [
    [{ os: 'linux', architecture: 'amd64' }, amd64],
    [{ os: 'linux', architecture: 'arm64' }, arm64], // no variant wanted: v8 is arm64's only one
    [{ os: 'linux', architecture: 'aarch64', variant: 'v8' }, arm64],
    [{ os: 'linux', architecture: 'arm', variant: 'v8' }, armv7], // a v8 arm CPU runs v7
    [{ os: 'linux', architecture: 'arm', variant: 'v6' }, null], // but a v6 one cannot run v7
    [{ os: 'windows', architecture: 'amd64' }, null],
  ];
  for (const [platform, want] of picks) {
    if (want === null) {
      await isRejectedWith(c.resolve(ref, null, platform), NotFound, /has no manifest for .* \(it has: linux\/arm64\/v8, linux\/arm\/v7, linux\/amd64\)/);
    } else {
      assert.equal((await c.resolve(ref, null, platform)).manifestDigest, want.manifestDigest, JSON.stringify(platform));
    }
  }

  // A Docker manifest list works the same way.
  const d64 = await smallImage('docker amd64', 'docker', { architecture: 'amd64' });
  const darm = await smallImage('docker arm64', 'docker', { architecture: 'arm64' });
  const list = await pushIndex(anon, 'test/multi', 'docker', [{ image: darm }, { image: d64 }]);
  assert.equal(list.mediaType, MediaType.dockerList);
  const r = await c.resolve(parseReference(`${anon.host}/test/multi:docker`), null, { os: 'linux', architecture: 'amd64' });
  assert.equal(r.manifestDigest, d64.manifestDigest);
  assert.equal(r.repoDigest, list.digest);
});

test('choosePlatform prefers the exact variant, then older ones', () => {
  const d = (architecture: string, variant?: string): { mediaType: string; digest: string; size: number; platform: Platform } => ({
    mediaType: MediaType.ociManifest,
    digest: sha256(`${architecture}${variant ?? ''}`),
    size: 1,
    platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) },
  });
  const all = [d('arm', 'v5'), d('arm', 'v6'), d('arm', 'v7'), d('amd64', 'v2'), d('amd64'), d('arm64')];
  assert.equal(choosePlatform(all, { os: 'linux', architecture: 'arm', variant: 'v7' })?.platform?.variant, 'v7');
  assert.equal(choosePlatform(all, { os: 'linux', architecture: 'arm' })?.platform?.variant, 'v7', 'arm means arm/v7');
  assert.equal(choosePlatform(all, { os: 'linux', architecture: 'armel' })?.platform?.variant, 'v6');
  assert.equal(choosePlatform(all, { os: 'linux', architecture: 'amd64', variant: 'v3' })?.platform?.variant, 'v2');
  assert.equal(choosePlatform(all, { os: 'linux', architecture: 'amd64' })?.platform?.variant, undefined, 'a baseline amd64 host cannot run v2');
  assert.equal(choosePlatform(all, { os: 'linux', architecture: 'arm64', variant: 'v8' })?.platform?.architecture, 'arm64');
  assert.equal(choosePlatform([d('arm', 'v7')], { os: 'linux', architecture: 'arm', variant: 'v6' }), null);
});

test('a docker.io mirror is used with the repository path kept; a dead mirror falls through', async () => {
  const dead = await freePort();
  const mirrored = await smallImage('from the mirror', 'oci');
  await pushImage(anon, 'library/busybox', '1', mirrored);
  const { client: c, logs } = client(config({ hosts: { 'docker.io': { mirrors: [`http://127.0.0.1:${dead}`, anon.url] } } }));
  const ref = parseReference('docker.io/library/busybox:1');
  assert.deepEqual(c.endpoints(ref), [
    { base: `http://127.0.0.1:${dead}`, repository: 'library/busybox', mirror: true, registry: 'docker.io' },
    { base: anon.url, repository: 'library/busybox', mirror: true, registry: 'docker.io' },
    { base: 'https://registry-1.docker.io', repository: 'library/busybox', mirror: false, registry: 'docker.io' },
  ]);
  const r = await c.resolve(ref, null, HOST);
  assert.deepEqual(r.endpoint, { base: anon.url, repository: 'library/busybox', mirror: true, registry: 'docker.io' });
  assert.equal(r.manifestDigest, mirrored.manifestDigest);
  const fellThrough = logs.find((l) => l.msg === 'endpoint failed, trying the next');
  assert.equal(fellThrough?.endpoint, `http://127.0.0.1:${dead}`);
  assert.match(fellThrough?.err ?? '', /is unreachable: .*ECONNREFUSED/);
});

test('when every endpoint fails, the last endpoint error is thrown', async () => {
  const dead = await freePort();
  // Mirror answers NotFound, origin is down: Unavailable.
  const a = client(config({ hosts: { [`127.0.0.1:${dead}`]: { mirrors: [anon.url] } } })).client;
  await isRejectedWith(a.resolve(parseReference(`127.0.0.1:${dead}/test/oci:nope`), null, HOST), Unavailable, new RegExp(`registry http://127.0.0.1:${dead} is unreachable`));
  // Mirror is down, origin answers NotFound: NotFound.
  const b = client(config({ hosts: { [anon.host]: { mirrors: [`http://127.0.0.1:${dead}`] } } })).client;
  await isRejectedWith(b.resolve(parseReference(`${anon.host}/test/oci:nope`), null, HOST), NotFound, /manifest unknown/);
});

test('plain http only for insecure hosts; https otherwise', () => {
  const c = client(config({ insecureHosts: ['127.0.0.1'], hosts: { 'reg.local:5000': { insecure: true, mirrors: ['mirror.local:5001/'] } } })).client;
  assert.equal(c.endpoints(parseReference('127.0.0.1:5000/a'))[0]?.base, 'http://127.0.0.1:5000');
  assert.equal(c.endpoints(parseReference('reg.local:5000/a'))[1]?.base, 'http://reg.local:5000');
  assert.equal(c.endpoints(parseReference('reg.local:5000/a'))[0]?.base, 'https://mirror.local:5001', 'a mirror host is judged on its own');
  assert.equal(c.endpoints(parseReference('quay.io/a/b'))[0]?.base, 'https://quay.io');
});

test('htpasswd: right credentials from CRI, config or credentials file pass; wrong or none are PermissionDenied', async () => {
  const ref = parseReference(`${basic.host}/private/app:v1`);
  assert.equal((await client().client.resolve(ref, aliceCreds, HOST)).manifestDigest, image.manifestDigest);
  const auth = Buffer.from(`${BOB.user}:${BOB.password}`).toString('base64');
  assert.equal((await client().client.resolve(ref, { auth }, HOST)).manifestDigest, image.manifestDigest, 'pre-encoded auth');
  assert.equal((await client(config({ hosts: { [basic.host]: { auth: aliceCreds } } })).client.resolve(ref, null, HOST)).manifestDigest, image.manifestDigest);

  const credentialsFile = join(work, 'credentials.json');
  await writeFile(credentialsFile, JSON.stringify({ [basic.host]: { username: BOB.user, password: BOB.password } }));
  const fromFile = client(config({ credentialsFile })).client;
  const r = await fromFile.resolve(ref, null, HOST);
  assert.equal(r.manifestDigest, image.manifestDigest);
  const store = new ContentStore(join(work, 'basic'));
  await store.ingest(image.configDigest, await fromFile.fetchBlob(r, image.configDigest, null), image.configBytes.length);
  assert.equal(await store.has(image.configDigest), true);

  const denied = /registry http:\/\/127\.0\.0\.1:\d+ denied access to image .*UNAUTHORIZED: authentication required/;
  await isRejectedWith(client().client.resolve(ref, { username: 'alice', password: 'wrong' }, HOST), PermissionDenied, denied);
  await isRejectedWith(client().client.resolve(ref, null, HOST), PermissionDenied, denied);
  // CRI credentials win over the configured ones, even when they are wrong.
  const precedence = client(config({ hosts: { [basic.host]: { auth: aliceCreds } }, credentialsFile })).client;
  await isRejectedWith(precedence.resolve(ref, { username: 'alice', password: 'wrong' }, HOST), PermissionDenied, denied);
});

test('token auth: a token per scope and account, cached until it expires', async () => {
  const { client: c } = client();
  const ref = parseReference(`${token.host}/private/app:v1`);
  const before = token.tokenRequests;
  const r = await c.resolve(ref, aliceCreds, HOST);
  assert.equal(r.manifestDigest, image.manifestDigest);
  const afterFirst = token.tokenRequests;
  assert.ok(afterFirst > before, 'the token endpoint was asked');

  await c.resolve(ref, aliceCreds, HOST);
  const store = new ContentStore(join(work, 'token'));
  await store.ingest(image.configDigest, await c.fetchBlob(r, image.configDigest, aliceCreds), image.configBytes.length);
  assert.equal(token.tokenRequests, afterFirst, 'the second resolve and the blob reused the cached token');
  assert.equal(await store.has(image.configDigest), true);

  await c.resolve(ref, { username: BOB.user, password: BOB.password }, HOST);
  assert.equal(token.tokenRequests, afterFirst + 1, "another account does not get alice's token");
});

test('token auth: identity token (OAuth2 refresh grant) and a registry token sent as is', async () => {
  const ref = parseReference(`${token.host}/private/app:v1`);
  const viaRefresh = await client().client.resolve(ref, { identityToken: ALICE.refreshToken }, HOST);
  assert.equal(viaRefresh.manifestDigest, image.manifestDigest);

  const realm = new URL(token.tokenRealm ?? '');
  realm.searchParams.set('service', 'test-registry');
  realm.searchParams.set('scope', 'repository:private/app:pull');
  const minted = (await (await fetch(realm, { headers: { Authorization: `Basic ${Buffer.from('bob:builder').toString('base64')}` } })).json()) as { token: string };
  const requests = token.tokenRequests;
  const viaToken = await client().client.resolve(ref, { registryToken: minted.token }, HOST);
  assert.equal(viaToken.manifestDigest, image.manifestDigest);
  assert.equal(token.tokenRequests, requests, 'a registry token needs no token request');
  await isRejectedWith(client().client.resolve(ref, { registryToken: 'not-a-token' }, HOST), PermissionDenied, /denied access/);
});

test('token auth: wrong credentials are refused by the token server, none by the registry', async () => {
  const ref = parseReference(`${token.host}/private/app:v1`);
  await isRejectedWith(client().client.resolve(ref, { username: 'alice', password: 'wrong' }, HOST), PermissionDenied, /token server .* refused credentials for "alice" \(HTTP 401\): incorrect username or password/);
  await isRejectedWith(client().client.resolve(ref, { identityToken: 'stolen' }, HOST), PermissionDenied, /refused the identity token/);
  await isRejectedWith(client().client.resolve(ref, null, HOST), PermissionDenied, /denied access to image .*UNAUTHORIZED/);
});

test('an unreachable registry is Unavailable: refused at once, a hung one within the request bound', async () => {
  const dead = await freePort();
  await isRejectedWith(client().client.resolve(parseReference(`127.0.0.1:${dead}/a:b`), null, HOST), Unavailable, new RegExp(`registry http://127.0.0.1:${dead} is unreachable: .*ECONNREFUSED`));

  const hung = await startHungServer();
  try {
    const bound = 300;
    const started = Date.now();
    await isRejectedWith(client(config({ requestTimeoutMs: bound })).client.resolve(parseReference(`${hung.host}/a:b`), null, HOST), Unavailable, new RegExp(`is unreachable: no response within ${bound} ms`));
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= bound - 20 && elapsed < bound + 2000, `gave up after ${elapsed} ms`);
  } finally {
    await hung.stop();
  }
});

test('a blob whose bytes do not match its digest is rejected by the content store and leaves no file', async () => {
  const proxy = await startTamperingProxy(anon.url, 'flip-blob-byte');
  try {
    const c = client(config({ hosts: { [anon.host]: { mirrors: [proxy.url] } } })).client;
    const r = await c.resolve(parseReference(`${anon.host}/test/oci:v1`), null, HOST);
    assert.equal(r.endpoint.base, proxy.url, 'resolved through the tampering mirror');
    const layer = image.layers[0];
    assert.ok(layer);
    const store = new ContentStore(join(work, 'tampered'));
    await isRejectedWith(store.ingest(layer.digest, await c.fetchBlob(r, layer.digest, null), layer.size), DataLoss, new RegExp(`digest mismatch for ${layer.digest}: got sha256:`));
    assert.equal(await store.has(layer.digest), false);
    assert.deepEqual(await readdir(join(store.root, 'ingest')), []);
  } finally {
    await proxy.stop();
  }
});

test('manifest bytes are checked against the pinned digest and Docker-Content-Digest', async () => {
  const noisy = await startTamperingProxy(anon.url, 'pad-manifest');
  const lying = await startTamperingProxy(anon.url, 'wrong-digest-header');
  try {
    const viaNoisy = client(config({ hosts: { [anon.host]: { mirrors: [noisy.url] } } })).client;
    // Padding changes the digest: a tag resolves (to the padded bytes' digest), a pinned digest fails.
    const tagged = await viaNoisy.resolve(parseReference(`${noisy.host}/test/oci:v1`), null, HOST);
    assert.notEqual(tagged.repoDigest, image.manifestDigest);
    await isRejectedWith(viaNoisy.resolve(parseReference(`${noisy.host}/test/oci@${image.manifestDigest}`), null, HOST), DataLoss, /manifest digest mismatch/);
    const viaLying = client().client;
    await isRejectedWith(viaLying.resolve(parseReference(`${lying.host}/test/oci:v1`), null, HOST), DataLoss, /says sha256:0{64}, the bytes hash to/);
  } finally {
    await noisy.stop();
    await lying.stop();
  }
});

test('blob redirects are followed', async () => {
  const proxy = await startTamperingProxy(anon.url, 'redirect-blobs');
  try {
    const c = client().client;
    const r = await c.resolve(parseReference(`${proxy.host}/test/oci:v1`), null, HOST);
    const store = new ContentStore(join(work, 'redirect'));
    await store.ingest(image.configDigest, await c.fetchBlob(r, image.configDigest, null), image.configBytes.length);
    assert.deepEqual(await store.read(image.configDigest), image.configBytes);
    assert.ok(proxy.redirects > 0, 'the blob came through a redirect');
  } finally {
    await proxy.stop();
  }
});

test('a blob download that stalls fails Unavailable after the idle bound and leaves no file', async () => {
  const proxy = await startTamperingProxy(anon.url, 'stall-blobs');
  try {
    const c = client(config({ requestTimeoutMs: 300 })).client;
    const r = await c.resolve(parseReference(`${proxy.host}/test/oci:v1`), null, HOST);
    const store = new ContentStore(join(work, 'stalled'));
    const layer = image.layers[0];
    assert.ok(layer);
    await isRejectedWith(store.ingest(layer.digest, await c.fetchBlob(r, layer.digest, null), layer.size), Unavailable, /stalled: no data for 300 ms/);
    assert.equal(await store.has(layer.digest), false);
    assert.deepEqual(await readdir(join(store.root, 'ingest')), []);
  } finally {
    await proxy.stop();
  }
});

test('WWW-Authenticate challenges are parsed, quoted or not, several in one header', () => {
  assert.deepEqual(parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' } },
  ]);
  assert.deepEqual(parseChallenges('Basic realm="Registry \\"R\\"", Bearer realm=https://x/t , service=s'), [
    { scheme: 'basic', params: { realm: 'Registry "R"' } },
    { scheme: 'bearer', params: { realm: 'https://x/t', service: 's' } },
  ]);
  assert.deepEqual(parseChallenges('Negotiate abc'), []);
  assert.deepEqual(parseChallenges(null), []);
});

test('schema 1 manifests are refused with a clear message', async () => {
  const proxy = await startTamperingProxy(anon.url, 'schema1');
  try {
    await isRejectedWith(client().client.resolve(parseReference(`${proxy.host}/test/oci:v1`), null, HOST), EffectFailed, /unsupported manifest schema 1/);
  } finally {
    await proxy.stop();
  }
});

test('a manifest over 4 MiB is refused as RESOURCE_EXHAUSTED', async () => {
  const proxy = await startTamperingProxy(anon.url, 'huge-manifest');
  try {
    await isRejectedWith(client().client.resolve(parseReference(`${proxy.host}/test/oci:v1`), null, HOST), ResourceExhausted, /sent more than 4194304 bytes for .*manifests\/v1/);
  } finally {
    await proxy.stop();
  }
});
