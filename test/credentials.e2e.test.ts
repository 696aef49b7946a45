/**
 * Secrets end to end (issue 11, items 2 and 3), against a real podchartd and real docker-registry
 * instances on loopback:
 * - nothing secret reaches the daemon's log: PullImage's credentials, CreateContainer's env values,
 *   args and annotations, ExecSync's arguments; what identifies each call does;
 * - credentials go only to the host they belong to: the image's registry (not its mirror), or the
 *   host server_address names; a token realm on another host gets them only over https; and an
 *   anonymous pull never joins an authenticated one.
 * The mirror and the origin accept the same account, so credentials sent to the wrong one show:
 * the image comes from there, and its log names the account.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { rejects } from './grpc-assert.js';
import { Daemon, podConfig, tempPaths } from './daemon.js';
import { startRegistry, type RegistryFixture } from './registry-fixture.js';
import { busyboxLayer, buildImage, pushImage, type BuiltImage } from './image-builder.js';

const paths = tempPaths('pc-cred-');
const daemon = new Daemon(paths);
const secret = (what: string): string => `${what}-${randomBytes(8).toString('hex')}`;
const ALICE = { user: 'alice', password: secret('alice-password') };
const aliceCreds = { username: ALICE.user, password: ALICE.password };

let plain: RegistryFixture;
let origin: RegistryFixture;
let mirror: RegistryFixture;
let httpRealm: RegistryFixture;
let httpsRealm: RegistryFixture;
let originImage: BuiltImage;
let mirrorImage: BuiltImage;
let big: BuiltImage;

const pull = (image: string, auth?: object): Promise<{ imageRef: string }> =>
  daemon.cri.callImage('PullImage', { image: { image }, ...(auth ? { auth } : {}) }, 120_000);

/** The daemon's log lines that contain `text` (to name where a secret leaked). */
const linesWith = (text: string): string[] => daemon.logs().split('\n').filter((l) => l.includes(text));

/**
 * Fails naming the secret and the lines, if a secret is in the log as text, base64, hex, or as the
 * byte list a Buffer becomes in JSON (env values are proto bytes).
 */
function assertNotLogged(secrets: Record<string, string>): void {
  for (const [what, value] of Object.entries(secrets)) {
    const bytes = Buffer.from(value);
    for (const form of [value, bytes.toString('base64'), bytes.toString('hex'), [...bytes].join(',')]) {
      assert.deepEqual(linesWith(form), [], `the daemon logged ${what}`);
    }
  }
}

/** The daemon's "call" line of the last `rpc` call, parsed. */
function lastCall(rpc: string): Record<string, unknown> {
  const line = linesWith(`"rpc":"${rpc}"`).filter((l) => l.includes('"msg":"call"')).at(-1);
  assert.ok(line, `no "call" line for ${rpc}`);
  return JSON.parse(line) as Record<string, unknown>;
}

/** A registry token from a realm, minted by the test itself (the way to push where the daemon may not send credentials). */
function mintToken(registry: RegistryFixture, scope: string): Promise<string> {
  const realm = new URL(registry.tokenRealm ?? '');
  realm.searchParams.set('service', 'test-registry');
  realm.searchParams.set('scope', scope);
  const headers = { Authorization: `Basic ${Buffer.from(`${ALICE.user}:${ALICE.password}`).toString('base64')}` };
  return new Promise((resolve, reject) => {
    const done = (res: import('node:http').IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        if (res.statusCode !== 200) reject(new Error(`realm ${realm.origin} answered ${res.statusCode}: ${body}`));
        else resolve((JSON.parse(body) as { token: string }).token);
      });
    };
    const req = realm.protocol === 'https:' ? httpsGet(realm, { headers, ca: readFileSync(registry.tokenRealmCa ?? '') }, done) : httpGet(realm, { headers }, done);
    req.on('error', reject);
  });
}

before(async () => {
  [plain, origin, mirror, httpRealm, httpsRealm] = await Promise.all([
    startRegistry(),
    startRegistry({ auth: 'htpasswd', users: [ALICE] }),
    startRegistry({ auth: 'htpasswd', users: [ALICE] }),
    // Realms on another loopback address than the registry (127.0.0.1): another host.
    startRegistry({ auth: 'token', users: [ALICE], realm: { address: '127.0.0.2' } }),
    startRegistry({ auth: 'token', users: [ALICE], realm: { address: '127.0.0.2', tls: true } }),
  ]);
  const busybox = await buildImage({ layers: [{ compression: 'gzip', entries: busyboxLayer() }], config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] }, format: 'docker' });
  await pushImage(plain, 'library/busybox', '1.36', busybox);
  // One name, two images: which one a pull gets tells which registry served it.
  originImage = await buildImage({ layers: [{ compression: 'gzip', entries: [{ path: '/from', type: 'file', content: `origin ${process.pid}\n` }] }] });
  mirrorImage = await buildImage({ layers: [{ compression: 'gzip', entries: [{ path: '/from', type: 'file', content: `mirror ${process.pid}\n` }] }] });
  await pushImage(origin, 'private/app', 'v1', originImage, aliceCreds);
  await pushImage(mirror, 'private/app', 'v1', mirrorImage, aliceCreds);
  // Big enough that its pull is still running when an anonymous pull of it has been refused.
  big = await buildImage({ layers: [{ compression: 'none', entries: [{ path: '/blob', type: 'file', content: randomBytes(48 * 1024 * 1024) }] }] });
  await pushImage(origin, 'private/big', 'v1', big, aliceCreds);
  for (const r of [httpRealm, httpsRealm]) {
    await pushImage(r, 'private/app', 'v1', originImage, { registryToken: await mintToken(r, 'repository:private/app:pull,push') });
  }
  const configPath = join(paths.base, 'config.json');
  writeFileSync(configPath, JSON.stringify({ registries: { hosts: { 'docker.io': { mirrors: [plain.url] }, [origin.host]: { mirrors: [mirror.url] } } } }));
  // The https realm's self-signed certificate, trusted the way an operator would add a private CA.
  await daemon.start({ PODCHART_CONFIG: configPath, NODE_EXTRA_CA_CERTS: httpsRealm.tokenRealmCa ?? '' });
  await pull('busybox:1.36');
});

after(async () => {
  await daemon.dispose();
  await Promise.all([plain, origin, mirror, httpRealm, httpsRealm].map((r) => r?.stop()));
  rmSync(paths.base, { recursive: true, force: true });
});

describe('the daemon log carries no secret', () => {
  test('PullImage: neither the password, the encoded auth nor a token is logged; the image and the server address are', async () => {
    const ref = `${origin.host}/private/app:v1`;
    const auth = Buffer.from(`${ALICE.user}:${ALICE.password}`).toString('base64');
    const identityToken = secret('identity-token');
    const registryToken = secret('registry-token');
    await pull(ref, aliceCreds);
    await pull(ref, { auth, serverAddress: origin.host });
    await assert.rejects(pull(ref, { identityToken, registryToken }));
    assertNotLogged({ 'the password': ALICE.password, 'the encoded auth': auth, 'the identity token': identityToken, 'the registry token': registryToken });
    const call = lastCall('PullImage');
    assert.equal(call.image, ref);
    assert.equal(call.withCredentials, true);
    assert.ok(linesWith(`"serverAddress":"${origin.host}"`).length > 0, 'server_address is logged: it names a host, not a secret');
  });

  test('CreateContainer\'s env values, args and annotations, and ExecSync\'s arguments are not logged; ids and names are', async () => {
    const envValue = secret('env-value');
    const argValue = secret('arg-value');
    const annotationValue = secret('annotation-value');
    const execArg = secret('exec-arg');
    const timedOutArg = secret('timed-out-exec-arg');
    const sandboxConfig = podConfig('credpod', { logDirectory: join(paths.base, 'pod-logs') });
    const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: sandboxConfig });
    const config = {
      metadata: { name: 'envs', attempt: 0 },
      image: { image: 'busybox:1.36' },
      command: ['busybox', 'sh', '-c', 'exec busybox tail -f /dev/null', argValue],
      envs: [{ key: 'DB_PASSWORD', value: Buffer.from(envValue) }],
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': `{"env":[{"value":"${annotationValue}"}]}` },
      logPath: 'envs/0.log',
    };
    const { containerId } = await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId, config, sandboxConfig });
    await daemon.cri.call('StartContainer', { containerId });
    const ran = await daemon.cri.call<{ stdout: Buffer; exitCode: number }>('ExecSync', { containerId, cmd: ['sh', '-c', 'echo "$DB_PASSWORD" "$0"', execArg], timeout: 10 });
    assert.equal(ran.stdout.toString(), `${envValue} ${execArg}\n`, 'the container got its env and the exec its arguments');
    assertNotLogged({ 'the env value': envValue, 'an arg': argValue, 'an annotation': annotationValue, 'an ExecSync argument': execArg });
    // A failed call logs its error: the message names the program, not the arguments.
    await rejects(daemon.cri.call('ExecSync', { containerId, cmd: ['sh', '-c', 'sleep 30', timedOutArg], timeout: 1 }), grpcStatus.DEADLINE_EXCEEDED, /timed out after 1s/);
    assertNotLogged({ 'the argument of a timed-out ExecSync': timedOutArg });
    assert.match(linesWith('"msg":"failed"').filter((l) => l.includes('"rpc":"ExecSync"')).at(-1) ?? '', /command \\"sh\\" \(3 arguments not shown\) timed out after 1s/);
    const create = lastCall('CreateContainer');
    assert.deepEqual(create.container, { name: 'envs', attempt: 0 });
    assert.equal(create.podSandboxId, podSandboxId);
    assert.equal(create.image, 'busybox:1.36');
    assert.equal(lastCall('ExecSync').containerId, containerId);
    await daemon.cri.call('RemovePodSandbox', { podSandboxId });
  });
});

describe('credentials go only to the host they belong to', () => {
  test('without server_address they go to the image\'s registry, not to its mirror', async () => {
    const seen = mirror.log().length;
    const { imageRef } = await pull(`${origin.host}/private/app:v1`, aliceCreds);
    assert.equal(imageRef, originImage.configDigest, 'pulled from the origin: the mirror got no credentials, so it refused');
    assert.doesNotMatch(mirror.log().slice(seen), /alice/, 'the mirror saw the account');
  });

  test('server_address names the host: the mirror when it names the mirror, no endpoint when it names another', async () => {
    assert.equal((await pull(`${origin.host}/private/app:v1`, { ...aliceCreds, serverAddress: mirror.host })).imageRef, mirrorImage.configDigest);
    const seen = mirror.log().length;
    assert.equal((await pull(`${origin.host}/private/app:v1`, { ...aliceCreds, serverAddress: `https://${origin.host}/v2/` })).imageRef, originImage.configDigest);
    assert.doesNotMatch(mirror.log().slice(seen), /alice/, 'credentials for the origin went to the mirror');
    const seenAtOrigin = origin.log().length;
    await rejects(pull(`${origin.host}/private/app:v1`, { ...aliceCreds, serverAddress: 'registry.example.com' }), grpcStatus.PERMISSION_DENIED, /denied access.*credentials given are for registry\.example\.com/);
    assert.doesNotMatch(`${mirror.log().slice(seen)}${origin.log().slice(seenAtOrigin)}`, /alice/, 'credentials for another host were sent');
  });

  test('a token realm on another host gets them only over https', async () => {
    const refused = httpRealm.tokenRequestsWithCredentials;
    await rejects(pull(`${httpRealm.host}/private/app:v1`, aliceCreds), grpcStatus.PERMISSION_DENIED, /denied access.*credentials were not sent to the token realm http:\/\/127\.0\.0\.2:\d+\/token: .*https/);
    await rejects(pull(`${httpRealm.host}/private/app:v1`, { identityToken: secret('refresh') }), grpcStatus.PERMISSION_DENIED, /credentials were not sent/);
    assert.equal(httpRealm.tokenRequestsWithCredentials, refused, 'the plain-http realm on another host got credentials');
    assert.ok(httpRealm.tokenRequests > 0, 'it was asked, anonymously');

    const sent = httpsRealm.tokenRequestsWithCredentials;
    assert.equal((await pull(`${httpsRealm.host}/private/app:v1`, aliceCreds)).imageRef, originImage.configDigest);
    assert.ok(httpsRealm.tokenRequestsWithCredentials > sent, 'the https realm got them');
  });

  test('an anonymous pull at the same time as an authenticated one of the same image does not ride along', async () => {
    const ref = `${origin.host}/private/big:v1`;
    let anonymousEnded = 0;
    let authenticatedEnded = 0;
    const [authenticated, anonymous] = await Promise.allSettled([
      pull(ref, aliceCreds).finally(() => (authenticatedEnded = performance.now())),
      pull(ref).finally(() => (anonymousEnded = performance.now())),
    ]);
    assert.equal(authenticated.status === 'fulfilled' && authenticated.value.imageRef, big.configDigest);
    assert.equal(anonymous.status, 'rejected', 'the anonymous pull succeeded');
    const err = anonymous.reason as ServiceError;
    assert.equal(err.code, grpcStatus.PERMISSION_DENIED, err.details);
    assert.ok(anonymousEnded < authenticatedEnded, 'the two pulls did not overlap, so this proves nothing');
  });
});
