import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { REDACTED, redactSecrets } from './redact.js';
import { quarantineList } from './server.js';

test('env values, secret volume paths and auth fields are replaced; keys and the rest stay', () => {
  const context = {
    id: 'c1',
    spec: {
      config: {
        envs: [{ key: 'DB_PASSWORD', value: 's3cret' }, { key: 'PATH', value: '/bin' }],
        mounts: [
          { containerPath: '/etc/tls', hostPath: '/var/lib/kubelet/pods/u/volumes/kubernetes.io~secret/tls', readonly: true },
          { containerPath: '/data', hostPath: '/srv/data' },
        ],
        command: ['sh'],
      },
      auth: { username: 'me', password: 'hunter2', identityToken: 'tok' },
    },
  };
  const out = redactSecrets(context);
  assert.deepEqual(out.spec.config.envs, [{ key: 'DB_PASSWORD', value: REDACTED }, { key: 'PATH', value: REDACTED }]);
  assert.equal(out.spec.config.mounts[0]?.hostPath, REDACTED);
  assert.equal(out.spec.config.mounts[0]?.containerPath, '/etc/tls');
  assert.equal(out.spec.config.mounts[1]?.hostPath, '/srv/data');
  assert.deepEqual(out.spec.auth, { username: 'me', password: REDACTED, identityToken: REDACTED });
  assert.deepEqual(out.spec.config.command, ['sh']);
  assert.equal(context.spec.config.envs[0]?.value, 's3cret', 'the input is not changed');
});

test('no env value survives, whatever the values are', () => {
  fc.assert(
    // Values marked so none can be mistaken for a key or for the marker itself.
    fc.property(fc.array(fc.record({ key: fc.stringMatching(/^[A-Z_]{1,12}$/), value: fc.string().map((v) => `v@${v}`) }), { minLength: 1 }), (envs) => {
      const text = JSON.stringify(redactSecrets({ spec: { config: { envs } } }));
      return envs.every((e) => !text.includes(JSON.stringify(e.value)) && text.includes(JSON.stringify(e.key)));
    }),
  );
});

test('GET /api/quarantine shows a quarantined row redacted, and a context that is not JSON not at all', () => {
  const row = { seq: 1, kind: 'container' as const, id: 'c1', sandboxId: 'p1', state: 'RUNNING', version: 2, reason: 'pid: Expected number, received string', quarantinedAt: 5 };
  const context = JSON.stringify({ id: 'c1', pid: '7', spec: { config: { envs: [{ key: 'DB_PASSWORD', value: 'hunter2' }] } } });
  const [parsed, broken] = quarantineList([{ ...row, context }, { ...row, seq: 2, context: '{"envs":[{"key":"K","value":"hunter2"' }]);
  const text = JSON.stringify([parsed, broken]);
  assert.ok(!text.includes('hunter2'), text);
  assert.ok(text.includes('DB_PASSWORD'));
  assert.equal(broken?.context, null);
  assert.match(broken?.contextWithheld ?? '', /not JSON/);
  assert.equal(parsed?.reason, row.reason);
});
