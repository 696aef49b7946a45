import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Code, InvalidArgument } from '../errors/catalogue.js';
import { formatReference, parseReference } from './reference.js';

const D = `sha256:${'ab'.repeat(32)}`;

test('normalizes references as Docker does', () => {
  const cases: [input: string, domain: string, path: string, tag: string | null, digest: string | null][] = [
    ['busybox', 'docker.io', 'library/busybox', 'latest', null],
    ['busybox:1.36', 'docker.io', 'library/busybox', '1.36', null],
    ['user/app', 'docker.io', 'user/app', 'latest', null],
    ['docker.io/busybox', 'docker.io', 'library/busybox', 'latest', null],
    ['index.docker.io/library/busybox:1', 'docker.io', 'library/busybox', '1', null],
    ['index.docker.io/user/app', 'docker.io', 'user/app', 'latest', null],
    ['registry.k8s.io/pause:3.9', 'registry.k8s.io', 'pause', '3.9', null],
    ['localhost/app', 'localhost', 'app', 'latest', null],
    ['localhost:5000/a/b/c:v1', 'localhost:5000', 'a/b/c', 'v1', null],
    ['127.0.0.1:5000/app', '127.0.0.1:5000', 'app', 'latest', null],
    ['[::1]:5000/app:x', '[::1]:5000', 'app', 'x', null],
    ['Registry/app', 'Registry', 'app', 'latest', null], // uppercase first component can only be a host
    [`busybox@${D}`, 'docker.io', 'library/busybox', null, D],
    [`quay.io/org/app:1.0@${D}`, 'quay.io', 'org/app', '1.0', D],
    ['a/b-c/d__e/f.g/h_i/j--k', 'docker.io', 'a/b-c/d__e/f.g/h_i/j--k', 'latest', null],
    ['  busybox  ', 'docker.io', 'library/busybox', 'latest', null],
    ['app:_Tag.9-x', 'docker.io', 'library/app', '_Tag.9-x', null],
  ];
  for (const [input, domain, path, tag, digest] of cases) {
    const ref = parseReference(input);
    assert.deepEqual(
      { domain: ref.domain, path: ref.path, tag: ref.tag, digest: ref.digest, name: ref.name },
      { domain, path, tag, digest, name: `${domain}/${path}` },
      input,
    );
    assert.equal(ref.full, `${domain}/${path}${tag === null ? '' : `:${tag}`}${digest === null ? '' : `@${digest}`}`, input);
    assert.deepEqual(parseReference(ref.full), ref, `${input}: the canonical form parses to itself`);
  }
});

test('rejects malformed references with InvalidArgument naming the problem', () => {
  const cases: [input: string, why: RegExp][] = [
    ['', /empty/],
    ['   ', /empty/],
    ['Busybox', /must be lowercase/],
    ['docker.io/Library/busybox', /must be lowercase/],
    ['busybox:', /tag ""/],
    ['busybox:-bad', /tag "-bad"/],
    ['busybox:a+b', /tag "a\+b"/],
    [`busybox:${'x'.repeat(129)}`, /tag/],
    ['busybox@sha256:abc', /digest "sha256:abc"/],
    [`busybox@sha256:${'AB'.repeat(32)}`, /digest/],
    [`busybox@sha512:${'ab'.repeat(64)}`, /unsupported digest/],
    [`@${D}`, /repository name is empty/],
    ['quay.io/', /repository name is empty/],
    ['a//b', /empty component/],
    ['a/b/', /empty component/],
    ['a/-b', /component "-b"/],
    ['a/b_', /component "b_"/],
    ['a/b___c', /component "b___c"/],
    ['a/b c', /component "b c"/],
    ['-host.io/app', /registry host "-host.io"/],
    [`h.io/${'a'.repeat(260)}`, /longer than 255/],
    ['127.0.0.1:65536/x', /registry port 65536 is not between 1 and 65535/],
    ['localhost:0/x', /registry port 0/],
  ];
  for (const [input, why] of cases) {
    assert.throws(
      () => parseReference(input),
      (err: unknown) => err instanceof InvalidArgument && err.code === Code.INVALID_ARGUMENT && why.test(err.message),
      `${JSON.stringify(input)} should be rejected with ${String(why)}`,
    );
  }
});

test('formatReference writes tag and digest only when present', () => {
  assert.equal(formatReference({ domain: 'h:1', path: 'a/b', tag: null, digest: D }), `h:1/a/b@${D}`);
  assert.equal(formatReference({ domain: 'h:1', path: 'a/b', tag: 't', digest: null }), 'h:1/a/b:t');
  assert.equal(formatReference({ domain: 'h:1', path: 'a/b', tag: null, digest: null }), 'h:1/a/b');
});
