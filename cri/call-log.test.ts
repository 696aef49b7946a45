/**
 * The call log's two nets (issue 11, item 2): each method logs what identifies the call and none of
 * the secrets its request carries; LOG_FORMATTERS censors them should a request be logged whole.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { CALL_FIELDS, callFields, censorChildBindings, censorSecrets, LOG_FORMATTERS } from './call-log.js';

const SECRETS = ['s3cret-password', 'czNjcmV0LWF1dGg=', 's3cret-identity', 's3cret-registry-token', 's3cret-env', 's3cret-arg', 's3cret-annotation', 's3cret-exec-arg'];
const auth = { username: 'alice', password: SECRETS[0], auth: SECRETS[1], serverAddress: 'registry.example.com', identityToken: SECRETS[2], registryToken: SECRETS[3] };
const pod = { name: 'web', namespace: 'prod', uid: 'u-1', attempt: 0 };
const sandboxConfig = { metadata: pod, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': SECRETS[6] } };
const containerConfig = {
  metadata: { name: 'app', attempt: 1 },
  image: { image: 'registry.example.com/app:v1' },
  command: ['/app', `--password=${SECRETS[5]}`],
  args: [SECRETS[5]],
  envs: [{ key: 'DB_PASSWORD', value: Buffer.from(SECRETS[4] ?? '') }],
  annotations: { note: SECRETS[6] },
};

/** A request for every method, with every secret its message can hold. */
const REQUESTS: Record<string, object> = {
  PullImage: { image: { image: 'registry.example.com/app:v1' }, auth, sandboxConfig },
  CreateContainer: { podSandboxId: 'pod-1', config: containerConfig, sandboxConfig },
  RunPodSandbox: { config: sandboxConfig, runtimeHandler: 'runc' },
  ExecSync: { containerId: 'c-1', cmd: ['redis-cli', '-a', SECRETS[7], 'ping'], timeout: '5' },
  Exec: { containerId: 'c-1', cmd: ['sh', '-c', `echo ${SECRETS[7]}`], tty: true, stdin: true },
};

test('every method logs its identifying fields and no secret of its request', () => {
  for (const method of Object.keys(CALL_FIELDS)) {
    const request = REQUESTS[method] ?? { containerId: 'c-1', podSandboxId: 'pod-1', image: { image: 'busybox' }, auth, config: containerConfig, cmd: [SECRETS[7]] };
    const logged = JSON.stringify(callFields(method, request));
    for (const s of SECRETS) assert.ok(!logged.includes(s), `${method} logs ${s}: ${logged}`);
  }
  assert.deepEqual(callFields('PullImage', REQUESTS.PullImage), { image: 'registry.example.com/app:v1', withCredentials: true, serverAddress: 'registry.example.com' });
  assert.deepEqual(callFields('CreateContainer', REQUESTS.CreateContainer), { podSandboxId: 'pod-1', container: { name: 'app', attempt: 1 }, image: 'registry.example.com/app:v1', pod });
  assert.deepEqual(callFields('RunPodSandbox', REQUESTS.RunPodSandbox), { pod, runtimeHandler: 'runc' });
  assert.deepEqual(callFields('ExecSync', REQUESTS.ExecSync), { containerId: 'c-1', program: 'redis-cli', args: 3, timeout: '5' });
  assert.deepEqual(callFields('PullImage', { image: { image: 'busybox' }, auth: { username: '', password: '', serverAddress: '' } }), { image: 'busybox', withCredentials: false, serverAddress: undefined });
});

test('a method the table does not list logs nothing of its request', () => {
  assert.deepEqual(callFields('ListContainers', { filter: { labelSelector: { secret: SECRETS[0] } } }), {});
  assert.deepEqual(callFields('PullImage', null), {});
});

test('LOG_FORMATTERS censors requests, credentials and specs logged whole', () => {
  const lines: string[] = [];
  const logger = censorChildBindings(pino({ level: 'debug', formatters: LOG_FORMATTERS }, { write: (line: string) => void lines.push(line) }));
  for (const request of Object.values(REQUESTS)) logger.info({ request }, 'call');
  logger.info({ creds: auth }, 'credentials');
  logger.info({ spec: { config: containerConfig, envs: containerConfig.envs } }, 'spec');
  logger.child({ password: SECRETS[0] }).info('child');
  logger.child({ call: 'x' }).child({ spec: { auth } }).info('grandchild');
  const out = lines.join('');
  for (const s of SECRETS) {
    for (const form of [s, [...Buffer.from(s)].join(',')]) assert.ok(!out.includes(form), `${s} got through redact: ${out}`);
  }
  assert.match(out, /"image":"registry.example.com\/app:v1"/, 'what is not secret stays');
});

test('censorSecrets copies what it censors and leaves the logged object, arrays and errors as they were', () => {
  const request = { config: containerConfig, auth, list: [{ password: SECRETS[0] }] };
  const before = JSON.stringify(request);
  const out = censorSecrets(request);
  assert.equal(JSON.stringify(request), before, 'the caller\'s object is not changed');
  assert.equal(out.config.command, '[redacted]');
  assert.equal(out.auth, '[redacted]');
  assert.ok(Array.isArray(out.list), 'an array stays an array');
  assert.equal(out.list[0]?.password, '[redacted]');
  assert.equal(out.config.image.image, 'registry.example.com/app:v1');

  const err = Object.assign(new Error('runc failed'), { cmd: `runc exec ${SECRETS[7]}` });
  const censored = censorSecrets({ err }).err;
  assert.ok(censored instanceof Error, 'an error stays an Error');
  assert.equal(censored.message, 'runc failed');
  assert.equal(censored.stack, err.stack);
  assert.equal((censored).cmd, '[redacted]');
  assert.equal(err.cmd, `runc exec ${SECRETS[7]}`);

  const clean = { event: 'CREATE', from: 'UNKNOWN', to: 'PENDING' };
  assert.equal(censorSecrets(clean), clean, 'a line without secrets is not copied');
  // Three levels down is past the net, as it was with pino's `*.*.k` paths.
  const deep = { a: { b: { c: { password: 'x' } } } };
  assert.equal(censorSecrets(deep), deep);
});
