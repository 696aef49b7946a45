/**
 * The inspector keeps secrets (issue 11, item 1) against a real daemon: env values and secret
 * volume paths never reach its API; a foreign Host (DNS rebinding) is refused; off loopback it
 * needs a bearer token, and the daemon will not start there without one.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { Daemon, freeTcpPort, podConfig, tempPaths } from './daemon.js';
import { BUSYBOX_IMAGE, startWithBusybox } from './busybox-daemon.js';
import type { RegistryFixture } from './registry-fixture.js';

const PLANTED = 'planted-secret-4f1c9e';
/** The value as text, base64, or the byte list JSON makes of a Buffer (KeyValue.value is bytes). */
const leaks = (body: string): boolean =>
  body.includes(PLANTED) || body.includes(Buffer.from(PLANTED).toString('base64')) || body.includes(JSON.stringify([...Buffer.from(PLANTED)]).slice(1, -1));

/** GET with a Host header of our choosing (fetch would not let us set it). */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('inspector secrets and access', () => {
  const paths = tempPaths('pc-insec-');
  const daemon = new Daemon(paths);
  let registry: RegistryFixture;
  let containerId = '';

  before(async () => {
    registry = await startWithBusybox(daemon);
    const sandboxConfig = podConfig('insec');
    const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: sandboxConfig });
    const secretDir = join(paths.base, 'pods/u1/volumes/kubernetes.io~secret/tls');
    mkdirSync(secretDir, { recursive: true });
    const config = {
      metadata: { name: 'leaky', attempt: 0 },
      image: { image: BUSYBOX_IMAGE },
      command: ['sleep', '600'],
      envs: [{ key: 'DB_PASSWORD', value: Buffer.from(PLANTED) }],
      mounts: [{ containerPath: '/etc/tls', hostPath: secretDir, readonly: true }],
      logPath: 'leaky.log',
    };
    ({ containerId } = await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId, config, sandboxConfig }));
  });
  after(async () => {
    await daemon.dispose();
    await registry?.stop();
  });

  test('the API shows env keys and no values, and no secret volume path', async () => {
    const r = await get(daemon.inspectorPort, `/api/actors/${containerId}`, { host: `127.0.0.1:${daemon.inspectorPort}` });
    assert.equal(r.status, 200);
    assert.ok(r.body.includes('DB_PASSWORD'), 'the key is shown');
    assert.ok(!leaks(r.body), 'the value is not');
    assert.ok(!r.body.includes('kubernetes.io~secret'), 'nor the secret volume path');
  });

  test('a foreign Host is refused (DNS rebinding); localhost and 127.0.0.1 at the bound port are served', async () => {
    for (const host of ['attacker.example', `attacker.example:${daemon.inspectorPort}`, '127.0.0.1:1']) {
      const r = await get(daemon.inspectorPort, `/api/actors/${containerId}`, { host });
      assert.equal(r.status, 403, host);
      assert.ok(!r.body.includes('DB_PASSWORD'));
    }
    for (const host of [`localhost:${daemon.inspectorPort}`, `127.0.0.1:${daemon.inspectorPort}`]) {
      assert.equal((await get(daemon.inspectorPort, '/api/actors', { host })).status, 200, host);
    }
  });

  test('off loopback: no start without a token file; with one, every request needs the token', async () => {
    const port = await freeTcpPort();
    const p = tempPaths('pc-insec-tok-');
    const off = new Daemon(p, ['--inspector', `0.0.0.0:${port}`], {}, 'none');
    await assert.rejects(off.start(), /not a loopback address: set inspectorTokenFile/);
    mkdirSync(p.base, { recursive: true });
    const tokenFile = join(p.base, 'token');
    writeFileSync(tokenFile, 'a-token-long-enough-1234\n');
    chmodSync(tokenFile, 0o644);
    const configPath = join(p.base, 'config.json');
    writeFileSync(configPath, JSON.stringify({ inspectorTokenFile: tokenFile }));
    await assert.rejects(off.start({ PODCHART_CONFIG: configPath }), /readable by others/);
    chmodSync(tokenFile, 0o600);
    await off.start({ PODCHART_CONFIG: configPath });
    try {
      assert.equal((await get(port, '/api/actors', { host: 'node.example' })).status, 401);
      assert.equal((await get(port, '/api/actors', { authorization: 'Bearer wrong-token-wrong-token' })).status, 401);
      assert.equal((await get(port, '/api/actors', { authorization: 'Bearer a-token-long-enough-1234' })).status, 200);
      assert.equal((await get(port, '/?token=a-token-long-enough-1234')).status, 200);
      // The page's layout library too, as the page asks for it (the token in its URL).
      assert.equal((await get(port, '/assets/elk.js')).status, 401);
      assert.equal((await get(port, '/assets/elk.js?token=a-token-long-enough-1234')).status, 200);
    } finally {
      await off.dispose();
    }
  });
});
