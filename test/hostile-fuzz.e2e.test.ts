/**
 * Property-based bad input against a real daemon (issue 12, item 18; test/hostile-input.e2e.test.ts
 * holds the campaign's named cases). For the CRI RPCs, fast-check
 * generates malformed and hostile requests: empty, huge and unicode/NUL strings, unknown and
 * prefix ids, absurd numbers and enums, path tricks in log paths and mounts (a symlink planted in
 * the pod's log directory among them), bad image references. Every answer must be a clear code
 * (never INTERNAL or UNKNOWN) with a bounded message; afterwards the daemon still serves, the
 * symlink's target and /etc are untouched, and whatever a request did create is removed again.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { status as grpcStatus } from '@grpc/grpc-js';
import { Daemon, podConfig, tempPaths } from './daemon.js';
import { BUSYBOX_IMAGE, startWithBusybox } from './busybox-daemon.js';
import type { RegistryFixture } from './registry-fixture.js';

/** Cases in all; `PODCHART_HOSTILE_RUNS` raises it for a longer campaign. */
const RUNS = Number(process.env['PODCHART_HOSTILE_RUNS'] ?? 1000);
/** What a bad request may get back: a clear code for the caller's mistake or a state it asked about. */
const CLEAR = new Set([grpcStatus.OK, grpcStatus.INVALID_ARGUMENT, grpcStatus.NOT_FOUND, grpcStatus.ALREADY_EXISTS, grpcStatus.FAILED_PRECONDITION,
  grpcStatus.OUT_OF_RANGE, grpcStatus.RESOURCE_EXHAUSTED, grpcStatus.UNIMPLEMENTED, grpcStatus.DEADLINE_EXCEEDED, grpcStatus.UNAVAILABLE]);

const paths = tempPaths('pc-hostile-');
const daemon = new Daemon(paths);
let registry: RegistryFixture;
let pod = '';
let container = '';
let logDir = '';
let canary = '';
const created = { pods: new Set<string>(), containers: new Set<string>() };

before(async () => {
  registry = await startWithBusybox(daemon);
  logDir = join(paths.base, 'pod-logs');
  mkdirSync(logDir, { recursive: true });
  canary = mkdtempSync(join(tmpdir(), 'pc-hostile-canary-'));
  symlinkSync(canary, join(logDir, 'evil'));
  const sandboxConfig = podConfig('hostile', { logDirectory: logDir });
  ({ podSandboxId: pod } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: sandboxConfig }));
  const config = { metadata: { name: 'target', attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: ['sleep', '100000'], logPath: 'target.log' };
  ({ containerId: container } = await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId: pod, config, sandboxConfig }));
  await daemon.cri.call('StartContainer', { containerId: container });
});

after(async () => {
  await daemon.dispose();
  await registry?.stop();
});

// Building blocks.
const huge = fc.integer({ min: 60_000, max: 300_000 }).map((n) => 'a'.repeat(n));
const text = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.fullUnicodeString({ maxLength: 20 }) },
  fc.constantFrom('', ' ', '\0', 'a\0b', 'a\nb', '../../etc', '/etc/passwd', '/proc/self/root', 'x/../../y', 'evil/x.log', 'evil/sub/x.log', '..', '.', '-rf', '${HOME}', '%s%n'),
  { weight: 1, arbitrary: huge },
);
const int = fc.oneof(fc.integer(), fc.constantFrom(-1, 0, 1, 99, 5000, -5, 2 ** 31, -(2 ** 31), Number.MAX_SAFE_INTEGER));
const int64 = fc.oneof(int.map(String), fc.constantFrom('9223372036854775807', '-9223372036854775808', '18446744073709551615'));
const bool = fc.boolean();
const anyId = (): fc.Arbitrary<string> => fc.oneof(text, fc.constant('f'.repeat(64)), fc.constant(container), fc.constant(container.slice(0, 3)), fc.constant(pod), fc.constant(''));
/**
 * Ids a destructive call may take: never the test's own pod or container, nor a prefix of theirs
 * (ids match by prefix). Ones the campaign made may go; the cleanup below accepts that.
 */
const otherId = fc.oneof(text, fc.constant('f'.repeat(64)), fc.constant('0'))
  .filter((id) => id.trim() === '' || (!pod.startsWith(id.trim()) && !container.startsWith(id.trim())));
const strings = fc.array(text, { maxLength: 4 });
const keyValues = fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), { maxKeys: 3 });
const envs = fc.array(fc.record({ key: text, value: text.map((t) => Buffer.from(t)) }), { maxLength: 4 });
const mounts = fc.array(fc.record({ containerPath: text, hostPath: text, readonly: bool, propagation: int }), { maxLength: 2 });
const resources = fc.record({ memoryLimitInBytes: int64, cpuShares: int64, cpuQuota: int64, cpuPeriod: int64, oomScoreAdj: int64, cpusetCpus: text, cpusetMems: text }, { requiredKeys: [] });
const imageRef = fc.oneof(text, fc.constantFrom('127.0.0.1:65536/x', 'UPPER/case', 'a@sha256:zz', 'busybox@sha256:' + '0'.repeat(64), ':tag', 'x:' + 'y'.repeat(200)));

const sandboxConfig = fc.record({
  metadata: fc.record({ name: text, namespace: text, uid: text, attempt: int }),
  hostname: text,
  logDirectory: text,
  dnsConfig: fc.record({ servers: strings, searches: strings, options: strings }),
  portMappings: fc.array(fc.record({ protocol: int, containerPort: int, hostPort: int, hostIp: text }), { maxLength: 2 }),
  labels: keyValues,
  linux: fc.record({ cgroupParent: text, sysctls: keyValues, securityContext: fc.record({ namespaceOptions: fc.record({ network: int, pid: int, ipc: int }) }, { requiredKeys: [] }) }, { requiredKeys: [] }),
}, { requiredKeys: [] });

const containerConfig = fc.record({
  metadata: fc.record({ name: text, attempt: int }),
  image: fc.record({ image: fc.oneof(fc.constant(BUSYBOX_IMAGE), imageRef) }),
  command: strings,
  args: strings,
  workingDir: text,
  envs,
  mounts,
  logPath: text,
  tty: bool,
  linux: fc.record({ resources, securityContext: fc.record({ runAsUser: fc.record({ value: int64 }), capabilities: fc.record({ addCapabilities: strings }) }, { requiredKeys: [] }) }, { requiredKeys: [] }),
}, { requiredKeys: [] });

type Call = { method: string; req: Record<string, unknown>; image?: boolean };
const calls: fc.Arbitrary<Call> = fc.oneof(
  fc.record({ containerId: anyId(), verbose: bool }).map((req) => ({ method: 'ContainerStatus', req })),
  fc.record({ podSandboxId: anyId(), verbose: bool }).map((req) => ({ method: 'PodSandboxStatus', req })),
  fc.record({ containerId: otherId, timeout: int64 }).map((req) => ({ method: 'StopContainer', req })),
  fc.record({ containerId: otherId }).map((req) => ({ method: 'RemoveContainer', req })),
  fc.record({ podSandboxId: otherId }).map((req) => ({ method: 'StopPodSandbox', req })),
  fc.record({ podSandboxId: otherId }).map((req) => ({ method: 'RemovePodSandbox', req })),
  fc.record({ containerId: otherId }).map((req) => ({ method: 'StartContainer', req })),
  fc.record({ containerId: anyId(), cmd: strings, timeout: fc.integer({ min: -1, max: 2 }) }).map((req) => ({ method: 'ExecSync', req })),
  fc.record({ containerId: anyId(), cmd: strings, tty: bool, stdin: bool, stdout: bool, stderr: bool }).map((req) => ({ method: 'Exec', req })),
  fc.record({ containerId: anyId(), tty: bool, stdin: bool, stdout: bool, stderr: bool }).map((req) => ({ method: 'Attach', req })),
  fc.record({ podSandboxId: anyId(), port: fc.array(int, { maxLength: 3 }) }).map((req) => ({ method: 'PortForward', req })),
  fc.record({ containerId: anyId(), linux: resources }).map((req) => ({ method: 'UpdateContainerResources', req })),
  fc.record({ containerId: anyId() }).map((req) => ({ method: 'ReopenContainerLog', req })),
  fc.record({ containerId: anyId() }).map((req) => ({ method: 'ContainerStats', req })),
  fc.record({ filter: fc.record({ id: text, podSandboxId: text, labelSelector: keyValues }, { requiredKeys: [] }) }).map((req) => ({ method: 'ListContainers', req })),
  fc.record({ filter: fc.record({ id: text, labelSelector: keyValues }, { requiredKeys: [] }) }).map((req) => ({ method: 'ListPodSandbox', req })),
  fc.record({ runtimeConfig: fc.record({ networkConfig: fc.record({ podCidr: text }) }) }).map((req) => ({ method: 'UpdateRuntimeConfig', req })),
  sandboxConfig.map((config) => ({ method: 'RunPodSandbox', req: { config } })),
  containerConfig.map((config) => ({ method: 'CreateContainer', req: { podSandboxId: pod, config, sandboxConfig: podConfig('hostile', { logDirectory: logDir }) } })),
  fc.record({ podSandboxId: anyId(), config: containerConfig }).map((req) => ({ method: 'CreateContainer', req: { ...req, sandboxConfig: {} } })),
  fc.record({ image: fc.record({ image: imageRef }) }).map((req) => ({ method: 'ImageStatus', req, image: true })),
  fc.record({ image: fc.record({ image: imageRef }), auth: fc.record({ username: text, password: text }, { requiredKeys: [] }) }).map((req) => ({ method: 'PullImage', req, image: true })),
  fc.record({ image: fc.record({ image: imageRef.filter((r) => !r.startsWith('busybox')) }) }).map((req) => ({ method: 'RemoveImage', req, image: true })),
);

test(`${RUNS} hostile requests: clear codes only, bounded messages; the daemon serves, nothing escapes, nothing is left`, async () => {
  const etcBefore = readdirSync('/etc').sort();
  const seen = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(calls, async ({ method, req, image }) => {
      let code: number = grpcStatus.OK;
      let message = '';
      let reply: Record<string, unknown> = {};
      try {
        reply = await (image ? daemon.cri.callImage(method, req, 20_000) : daemon.cri.call(method, req, 20_000));
      } catch (err) {
        const e = err as { code?: number; details?: string };
        code = e.code ?? -1;
        message = e.details ?? String(err);
      }
      seen.set(`${method} ${code}`, (seen.get(`${method} ${code}`) ?? 0) + 1);
      if (method === 'RunPodSandbox' && typeof reply['podSandboxId'] === 'string') created.pods.add(reply['podSandboxId']);
      if (method === 'CreateContainer' && typeof reply['containerId'] === 'string') created.containers.add(reply['containerId']);
      assert.ok(CLEAR.has(code), `${method} answered code ${code}: ${message.slice(0, 300)}`);
      assert.ok(Buffer.byteLength(message) <= 4200, `${method}: a ${Buffer.byteLength(message)}-byte message`);
    }),
    { numRuns: RUNS },
  );
  // What the campaign created goes again, by the normal calls (one already gone answers NOT_FOUND);
  // then nothing but the target pod and container may be listed.
  const gone = (err: { code?: number; details?: string }): void => assert.equal(err.code, grpcStatus.NOT_FOUND, err.details ?? 'no details');
  for (const id of created.containers) await daemon.cri.call('RemoveContainer', { containerId: id }, 60_000).catch(gone);
  for (const id of created.pods) {
    await daemon.cri.call('StopPodSandbox', { podSandboxId: id }, 60_000).catch(gone);
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: id }, 60_000).catch(gone);
  }
  const { items } = await daemon.cri.call<{ items: { id: string }[] }>('ListPodSandbox', {});
  assert.deepEqual(items.map((p) => p.id), [pod], 'only the target pod is left');
  const { containers } = await daemon.cri.call<{ containers: { id: string }[] }>('ListContainers', {});
  assert.deepEqual(containers.map((c) => c.id), [container], 'only the target container is left');
  const { runtimeName } = await daemon.cri.call<{ runtimeName: string }>('Version', {});
  assert.equal(runtimeName, 'podchart');
  const { status } = await daemon.cri.call<{ status: { state: string } }>('ContainerStatus', { containerId: container });
  assert.equal(status.state, 'CONTAINER_RUNNING', 'the target container is untouched');
  assert.deepEqual(readdirSync(canary), [], 'nothing was written through the planted symlink');
  assert.deepEqual(readdirSync('/etc').sort(), etcBefore, 'nothing appeared in /etc');
  // The spread of answers, for whoever reads the test output.
  console.log([...seen.entries()].sort().map(([k, n]) => `${k}: ${n}`).join('\n'));
});
