/**
 * Where credentials may go (issue 11, item 3), as pure rules: the host CRI credentials are for
 * (server_address, else the image's registry) and which token realms may get them. The client
 * tests and test/credentials.e2e.test.ts check the same against real registries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { credentialsApply, normalizeRegistryHost, realmRefusal } from './credentials.js';

const creds = (serverAddress?: string) => ({ username: 'alice', password: 'pw', ...(serverAddress !== undefined ? { serverAddress } : {}) });

test('registry hosts are normalized as credentials are keyed: no scheme or path, Docker Hub as docker.io', () => {
  const cases: [string, string][] = [
    ['docker.io', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['https://index.docker.io/v1/', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['Registry.Example.com:5000', 'registry.example.com:5000'],
    ['http://127.0.0.1:5000/v2/', '127.0.0.1:5000'],
    ['registry.example.com/team/app', 'registry.example.com'],
  ];
  for (const [address, host] of cases) assert.equal(normalizeRegistryHost(address), host, address);
});

test('CRI credentials apply only to the host they are for', () => {
  const cases: [string | undefined, string, string, boolean][] = [
    // [server_address, the image's registry, the endpoint's host, sent?]
    [undefined, '127.0.0.1:5000', '127.0.0.1:5000', true],
    [undefined, '127.0.0.1:5000', '127.0.0.1:5001', false], // a mirror on another host
    ['', 'registry.example.com', 'registry.example.com', true],
    [undefined, 'docker.io', 'docker.io', true], // registry-1.docker.io, as registryHost gives it
    ['https://index.docker.io/v1/', 'docker.io', 'docker.io', true],
    ['registry-1.docker.io', 'docker.io', 'index.docker.io', true],
    ['127.0.0.1:5001', '127.0.0.1:5000', '127.0.0.1:5001', true], // server_address names the mirror
    ['127.0.0.1:5001', '127.0.0.1:5000', '127.0.0.1:5000', false], // ... so not the origin
    ['https://registry.example.com/v2/', 'registry.example.com', 'registry.example.com', true],
    ['registry.example.com/team', 'registry.example.com', 'registry.example.com', true],
    ['registry.example.com', 'registry.example.com', 'registry.example.com:5000', false], // the port counts
    ['evil.example', 'registry.example.com', 'registry.example.com', false],
    // kubelet's keyring keys (its server_address) may hold * in a label.
    ['*.example.com', 'a.example.com', 'a.example.com', true],
    ['*.example.com', 'a.b.example.com', 'a.b.example.com', false],
    ['*.example.com', 'example.com', 'example.com', false],
    ['*.dkr.ecr.*.amazonaws.com', 'x', '1234.dkr.ecr.eu-west-1.amazonaws.com', true],
    ['*.example.com', 'a.example.com:5000', 'a.example.com:5000', false],
    ['reg*.example.com', 'x', 'registry.example.com', true],
    ['reg*.example.com', 'x', 'mirror.example.com', false],
  ];
  for (const [serverAddress, registry, host, sent] of cases) {
    assert.equal(credentialsApply(creds(serverAddress), registry, host), sent, `server_address ${serverAddress ?? '(none)'}, image on ${registry}, endpoint ${host}`);
  }
});

test('a token realm gets credentials over https, or over http only on the registry\'s own plain-http host', () => {
  const ok: [string, string][] = [
    ['https://auth.docker.io/token', 'https://registry-1.docker.io'],
    ['https://auth.example.com/token', 'http://127.0.0.1:5000'],
    ['http://127.0.0.1:5001/token', 'http://127.0.0.1:5000'], // the registry's own host, which is plain http
  ];
  for (const [realm, base] of ok) assert.equal(realmRefusal(new URL(realm), base), null, `${realm} for ${base}`);
  const refused: [string, string, RegExp][] = [
    ['http://127.0.0.2:5001/token', 'http://127.0.0.1:5000', /not sent to the token realm http:\/\/127\.0\.0\.2:5001\/token: it is plain http on another host than the registry \(127\.0\.0\.1:5000\); a realm gets credentials over https only/],
    ['http://auth.example.com/token', 'https://registry.example.com', /plain http on another host/],
    ['http://registry.example.com/token', 'https://registry.example.com', /plain http on the registry's host, while the registry itself is reached over https/],
    ['ftp://registry.example.com/token', 'http://registry.example.com', /it is ftp on the registry's host/],
  ];
  for (const [realm, base, message] of refused) assert.match(realmRefusal(new URL(realm), base) ?? 'null', message, `${realm} for ${base}`);
});
