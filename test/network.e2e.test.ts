/**
 * Pod networking end to end: a real podchartd with the real CNI plugins (bridge, host-local,
 * portmap), pods that talk to each other and to the host, and crashes in the middle of CNI.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { Daemon, eventually, podConfig, tempPaths } from './daemon.js';
import { startRegistry, type RegistryFixture } from './registry-fixture.js';
import { busyboxLayer, buildImage, pushImage } from './image-builder.js';
import { ipLeases } from './host-checks.js';

const paths = tempPaths('pc-net-');
const daemon = new Daemon(paths);
let registry: RegistryFixture;
let configPath = '';
const IMAGE = 'busybox:1.36';

interface PodStatus { status: { state: string; network: { ip: string; additionalIps: { ip: string }[] } } }

const runPod = async (name: string, extra: Record<string, unknown> = {}): Promise<string> =>
  (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig(name, extra) })).podSandboxId;
const podIp = async (id: string): Promise<string> => (await daemon.cri.call<PodStatus>('PodSandboxStatus', { podSandboxId: id })).status.network.ip;
async function runIn(pod: string, name: string, script: string): Promise<string> {
  const { containerId } = await daemon.cri.call<{ containerId: string }>('CreateContainer', {
    podSandboxId: pod, config: { metadata: { name }, image: { image: IMAGE }, command: ['/bin/sh', '-c', script] }, sandboxConfig: {},
  });
  await daemon.cri.call('StartContainer', { containerId });
  return containerId;
}
const leases = (): string[] => ipLeases(daemon.network?.ipamDir ?? '').map((l) => l.ip);
const natRulesFor = (id: string): string[] => execFileSync('iptables', ['-t', 'nat', '-S']).toString().split('\n').filter((l) => l.includes(id));
const podchartNetns = (): string[] => readdirSync('/var/run/netns').filter((n) => n.startsWith('podchart-'));

function httpGet(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/', timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

before(async () => {
  registry = await startRegistry();
  const image = await buildImage({ layers: [{ compression: 'gzip', entries: busyboxLayer() }], config: { Cmd: ['/bin/sh'] } });
  await pushImage(registry, 'library/busybox', '1.36', image);
  configPath = join(paths.base, 'config.json');
  writeFileSync(configPath, JSON.stringify({ registries: { hosts: { 'docker.io': { mirrors: [registry.url] } } }, cniTimeoutMs: 10_000 }));
  await daemon.start({ PODCHART_CONFIG: configPath });
  await daemon.cri.callImage('PullImage', { image: { image: IMAGE } }, 120_000);
});

after(async () => {
  await daemon.dispose();
  await registry?.stop();
});

describe('pods on the network', () => {
  test('two pods reach each other by IP; a hostPort reaches a pod from the host', async () => {
    const server = await runPod('web', { portMappings: [{ protocol: 'TCP', containerPort: 8080, hostPort: 18080, hostIp: '' }] });
    const client = await runPod('curl');
    const serverIp = await podIp(server);
    const clientIp = await podIp(client);
    assert.ok(serverIp && clientIp && serverIp !== clientIp, `two IPs: ${serverIp} ${clientIp}`);
    await runIn(server, 'httpd', 'mkdir -p /tmp/www && echo hello-pod > /tmp/www/index.html && exec busybox httpd -f -p 8080 -h /tmp/www');
    const wget = await runIn(client, 'wget', `for i in $(busybox seq 1 50); do busybox wget -qO- http://${serverIp}:8080/ && exit 0; sleep 0.1; done; exit 1`);
    const exit = await eventually('the client to finish', async () => {
      const s = (await daemon.cri.call<{ status: { state: string; exitCode: number } }>('ContainerStatus', { containerId: wget })).status;
      return s.state === 'CONTAINER_EXITED' ? s : null;
    });
    assert.equal(exit.exitCode, 0, 'pod to pod over the bridge');
    // From the host through the port mapping: the bridge's gateway address is the host's own.
    const gateway = serverIp.split('.').slice(0, 3).concat('1').join('.');
    const body = await eventually('the hostPort to answer', async () => httpGet(gateway, 18080));
    assert.equal(body, 'hello-pod\n');
    assert.ok(natRulesFor(server).length > 0, 'portmap rules exist while the pod runs');
    await daemon.cri.call('StopPodSandbox', { podSandboxId: server });
    assert.deepEqual(natRulesFor(server), [], 'stop ran CNI DEL: no portmap rules left');
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: server });
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: client });
    assert.deepEqual(leases(), [], 'every IP lease released');
  });

  test('duplicate host ports are refused with a clear error', async () => {
    const mapping = { protocol: 'TCP', containerPort: 80, hostPort: 18181, hostIp: '' };
    const first = await runPod('port-owner', { portMappings: [mapping] });
    await assert.rejects(daemon.cri.call('RunPodSandbox', { config: podConfig('port-thief', { portMappings: [mapping] }) }),
      (e: ServiceError) => e.code === grpcStatus.ALREADY_EXISTS && e.details.includes(`host port *:18181/tcp is already mapped by pod sandbox ${first}`));
    await assert.rejects(daemon.cri.call('RunPodSandbox', { config: podConfig('greedy', { portMappings: [{ ...mapping, hostPort: 18182 }, { ...mapping, hostPort: 18182 }] }) }),
      (e: ServiceError) => e.code === grpcStatus.INVALID_ARGUMENT && /mapped twice/.test(e.details));
    await daemon.cri.call('StopPodSandbox', { podSandboxId: first });
    const second = await runPod('port-heir', { portMappings: [mapping] });
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: second });
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: first });
  });

  test('50 pods created and removed leave the host-local store empty and no netns behind', async () => {
    await daemon.swept(); // the earlier tests' netns are gone before the count
    const before = podchartNetns().length;
    const ids: string[] = [];
    for (let batch = 0; batch < 5; batch++) {
      ids.push(...(await Promise.all(Array.from({ length: 10 }, (_, i) => runPod(`many-${batch}-${i}`)))));
    }
    assert.equal(new Set(await Promise.all(ids.map(podIp))).size, 50, '50 distinct IPs');
    assert.equal(leases().length, 50);
    await Promise.all(ids.map((id) => daemon.cri.call('RemovePodSandbox', { podSandboxId: id })));
    await daemon.swept();
    assert.deepEqual(leases(), []);
    assert.equal(podchartNetns().length, before);
  });
});

describe('pod CIDR and dual stack', () => {
  test('UpdateRuntimeConfig\'s pod CIDR reaches host-local through ipRanges; IPv4 and IPv6 both reported', async () => {
    const node = new Daemon(tempPaths('pc-net-cidr-'));
    const confFile = join(node.network?.confDir ?? '', '10-test.conflist');
    const conf = JSON.parse(readFileSync(confFile, 'utf8')) as { plugins: { type: string; capabilities?: object; ipam?: Record<string, unknown> }[] };
    const bridge = conf.plugins[0];
    assert.ok(bridge?.ipam);
    bridge.capabilities = { ipRanges: true };
    delete bridge.ipam['ranges']; // the ranges come from the node's pod CIDR at ADD time
    writeFileSync(confFile, JSON.stringify(conf));
    const third = 1 + Math.floor(Math.random() * 250);
    await node.start({ PODCHART_CONFIG: configPath });
    try {
      await node.cri.call('UpdateRuntimeConfig', { runtimeConfig: { networkConfig: { podCidr: `10.77.${third}.0/24,fd77:${third.toString(16)}::/64` } } });
      const { podSandboxId } = await node.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('from-cidr') });
      const s = await node.cri.call<PodStatus>('PodSandboxStatus', { podSandboxId });
      assert.match(s.status.network.ip, new RegExp(`^10\\.77\\.${third}\\.`));
      assert.equal(s.status.network.additionalIps.length, 1);
      assert.match(s.status.network.additionalIps[0]?.ip ?? '', new RegExp(`^fd77:${third.toString(16)}:`));
      await node.cri.call('RemovePodSandbox', { podSandboxId });
    } finally {
      await node.stop();
      rmSync(node.paths.base, { recursive: true, force: true });
    }
  });
});

describe('CNI failures and crashes', () => {
  /** A plugin that marks it has started, then sleeps: a window to kill the daemon in. */
  function slowPlugin(dir: string): string {
    const bin = join(dir, 'slowbin');
    mkdirSync(bin, { recursive: true });
    const marker = join(dir, 'slow-started');
    writeFileSync(join(bin, 'slow'), `#!/bin/sh\ncat > /dev/null\nif [ "$CNI_COMMAND" = ADD ]; then touch ${marker}; sleep 5; fi\necho '{"cniVersion":"1.0.0"}'\n`);
    chmodSync(join(bin, 'slow'), 0o755);
    return bin;
  }

  test('kill -9 during CNI ADD: after restart the pod is rolled back and its lease released', async () => {
    const confFile = join(daemon.network?.confDir ?? '', '10-test.conflist');
    const original = readFileSync(confFile, 'utf8');
    const bin = slowPlugin(paths.base);
    rmSync(join(paths.base, 'slow-started'), { force: true });
    const conf = JSON.parse(original) as { plugins: object[] };
    conf.plugins.push({ type: 'slow' });
    writeFileSync(confFile, JSON.stringify(conf));
    await daemon.stop();
    const withSlow = new Daemon(paths, ['--cni-bin-dir', `${bin}:/usr/lib/cni`], {}, 'none');
    // Reuse this daemon's CNI dirs: same conf dir (with the slow plugin), same leases.
    withSlow.extraArgs.push('--cni-conf-dir', daemon.network?.confDir ?? '');
    await withSlow.start({ PODCHART_CONFIG: configPath });
    const pending = withSlow.cri.call('RunPodSandbox', { config: podConfig('crash-in-add') }).catch((e: ServiceError) => e);
    await eventually('the slow plugin to start', () => existsSync(join(paths.base, 'slow-started')));
    assert.equal(leases().length, 1, 'bridge/host-local already took a lease');
    await withSlow.kill9();
    assert.equal(((await pending) as ServiceError).code, grpcStatus.UNAVAILABLE);
    // Restart as the node was (same plugins): restore rolls the pod back, CNI DEL included.
    const netnsBefore = podchartNetns();
    await withSlow.start({ PODCHART_CONFIG: configPath });
    try {
      await eventually('the half-made pod to be rolled back', async () =>
        (await withSlow.cri.call<{ items: unknown[] }>('ListPodSandbox', {})).items.length === 0 && leases().length === 0);
      await withSlow.swept();
      assert.equal(podchartNetns().length, netnsBefore.length - 1, 'its netns is gone');
    } finally {
      await withSlow.stop();
      writeFileSync(confFile, original);
      await daemon.start({ PODCHART_CONFIG: configPath });
    }
  });

  test('kill -9 right after CNI DEL at stop: restart finishes the teardown, nothing leaks', async () => {
    const pod = await runPod('crash-in-del');
    assert.equal(leases().length, 1);
    await daemon.stop();
    await daemon.start({ PODCHART_CONFIG: configPath, PODCHART_FAULT: 'sandbox.stop.network' });
    await assert.rejects(daemon.cri.call('StopPodSandbox', { podSandboxId: pod }), (e: ServiceError) => e.code === grpcStatus.UNAVAILABLE);
    await daemon.waitExit();
    await daemon.start({ PODCHART_CONFIG: configPath });
    await eventually('the stop to be finished', async () => {
      const s = await daemon.cri.call<{ info: Record<string, string> }>('PodSandboxStatus', { podSandboxId: pod, verbose: true });
      return (JSON.parse(s.info['info'] ?? '{}') as { actorState: string }).actorState === 'STOPPED';
    });
    assert.deepEqual(leases(), []);
    assert.deepEqual(natRulesFor(pod), []);
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod });
  });

  test('a plugin that fails midway leaves no netns, mount or lease; a malformed file is skipped', async () => {
    const confDir = daemon.network?.confDir ?? '';
    const confFile = join(confDir, '10-test.conflist');
    const original = readFileSync(confFile, 'utf8');
    const conf = JSON.parse(original) as { plugins: object[] };
    // "tuning" with a sysctl the kernel does not have fails after bridge and host-local have run.
    conf.plugins.push({ type: 'tuning', sysctl: { 'net.ipv4.conf.eth0.no_such_knob': '1' } });
    writeFileSync(confFile, JSON.stringify(conf));
    writeFileSync(join(confDir, '05-broken.conf'), '{ not json');
    try {
      await daemon.swept();
      const netnsBefore = podchartNetns();
      await assert.rejects(
        daemon.cri.call('RunPodSandbox', { config: podConfig('cni-fails') }),
        (e: ServiceError) => e.code === grpcStatus.INTERNAL && /tuning/.test(e.details),
      );
      assert.deepEqual(leases(), [], 'the lease taken before the failure was released');
      assert.deepEqual(podchartNetns(), netnsBefore, 'no netns left');
      assert.equal((await daemon.cri.call<{ items: unknown[] }>('ListPodSandbox', {})).items.length, 0);
    } finally {
      writeFileSync(confFile, original);
      rmSync(join(confDir, '05-broken.conf'), { force: true });
    }
    // The config change is picked up without a restart.
    const ok = await runPod('after-fix');
    assert.ok(await podIp(ok));
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: ok });
  });
});
