/**
 * CNI ADD/DEL/CHECK with the real plugins of Debian's containernetworking-plugins (bridge,
 * host-local, portmap in /usr/lib/cni) in real network namespaces, plus two faults only a fake can
 * cause, as named script plugins in a temp bin dir: `hang` (never answers ADD) and `fail` (ADD
 * answers a CNI error). Everything made here (netns, bridge, leases, iptables chains, the
 * ip_forward sysctl the bridge plugin turns on, temp dirs) is undone in `after`, even on failure.
 *
 * The port mapping is reached from the host at the bridge's gateway address: a local address, so
 * portmap's OUTPUT DNAT applies without route_localnet (127.0.0.1 would need it).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { connect, isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eventually } from '../test/daemon.js';
import { DeadlineExceeded, EffectFailed, InvalidArgument, NotFound, Unavailable } from '../errors/catalogue.js';
import { run } from '../host/exec.js';
import { Cni, cniArgs, podIps, runtimeConfigFor, type CniResult, type PodNetwork } from './cni.js';
import { createNetns, removeNetns, unmountNetns } from './netns.js';

const SYSTEM_BIN = '/usr/lib/cni';
const rand = randomBytes(2).toString('hex');
const BRIDGE = `pct${rand}`;
const OCTET = 100 + (parseInt(rand, 16) % 150);
const PREFIX = `10.199.${OCTET}.`;
const SUBNET = `${PREFIX}0/24`;
const GATEWAY = `${PREFIX}1`;
const HOST_PORT = 18000 + (parseInt(rand, 16) % 1000);
const SLEEP_MARK = `99.${parseInt(rand, 16)}`; // the hang plugin's `sleep` argument, to find it in /proc

let tmp = '';
let dataDir = '';
let fakeBin = '';
const netnsMade: string[] = [];
const added: { cni: Cni; id: string }[] = [];
const children: ChildProcess[] = [];
let natBefore = '';
let forwardBefore = '';

/** Polls `probe` until it returns true or the deadline passes (no sleeps standing in for state). */
async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function netConf(name: string, extra: Record<string, unknown>[] = []): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name,
    plugins: [
      {
        type: 'bridge',
        bridge: BRIDGE,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: SUBNET }]], dataDir, routes: [{ dst: '0.0.0.0/0' }] },
      },
      ...extra,
    ],
  };
}

async function confDir(name: string, conf: Record<string, unknown>): Promise<string> {
  const dir = join(tmp, `conf-${name}`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, '10-net.conflist'), JSON.stringify(conf));
  return dir;
}

function newCni(conf: string, timeoutMs = 20_000): Cni {
  return new Cni({ confDir: conf, binDirs: [fakeBin, SYSTEM_BIN], cacheDir: join(tmp, 'cache'), timeoutMs });
}

async function netns(tag: string): Promise<string> {
  const path = `/var/run/netns/pct-${rand}-${tag}`;
  netnsMade.push(path);
  await createNetns(path);
  return path;
}

function pod(id: string, path: string, over: Partial<PodNetwork> = {}): PodNetwork {
  return { containerId: id, netnsPath: path, ifName: 'eth0', podName: `pod-${id}`, podNamespace: 'cni-test', podUid: `uid-${id}`, portMappings: [], ...over };
}

async function add(cni: Cni, p: PodNetwork): Promise<CniResult> {
  added.push({ cni, id: p.containerId });
  return cni.add(p);
}

/** host-local leases of a network: file name = IP, content = container id + ifname. */
async function leases(network: string): Promise<Map<string, string>> {
  const dir = join(dataDir, network);
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  for (const f of await readdir(dir)) if (isIP(f) !== 0) out.set(f, await readFile(join(dir, f), 'utf8'));
  return out;
}

async function leaseOf(network: string, id: string): Promise<string | undefined> {
  for (const [ip, owner] of await leases(network)) if (owner.split(/\s/)[0] === id) return ip;
  return undefined;
}

async function nat(): Promise<string> {
  return (await run('iptables', ['-t', 'nat', '-S'])).stdout;
}

/** Host ends of veths still attached to the test bridge. */
async function bridgePorts(): Promise<string[]> {
  const r = await run('ip', ['-o', 'link', 'show', 'master', BRIDGE], { allowFailure: () => true });
  return r.stdout.split('\n').filter((l) => l.trim() !== '');
}

function readLine(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    let data = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (data += d));
    sock.on('end', () => {
      clearTimeout(timer);
      resolve(data);
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** A TCP server on :8080 inside the netns that greets and closes; resolves once it listens. */
function serveIn(nsPath: string, greeting: string): Promise<void> {
  const name = nsPath.split('/').pop() ?? '';
  const code = `require('net').createServer((s) => s.end(${JSON.stringify(greeting)})).listen(8080, '0.0.0.0', () => console.log('listening'))`;
  const child = spawn('ip', ['netns', 'exec', name, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server in netns did not start')), 10_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (d.includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (c) => {
      clearTimeout(timer);
      reject(new Error(`server in netns exited with ${c}`));
    });
  });
}

async function sleepersLeft(): Promise<number> {
  let n = 0;
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if ((await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').includes(SLEEP_MARK)) n++;
    } catch {
      // the process ended while we looked
    }
  }
  return n;
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'pct-cni-'));
  dataDir = join(tmp, 'ipam');
  fakeBin = join(tmp, 'bin');
  await mkdir(fakeBin);
  natBefore = await nat();
  forwardBefore = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
  // Never answers ADD: the shell stays the group leader and `sleep` its child, so only a kill of
  // the whole process group ends both.
  await writeFile(join(fakeBin, 'hang'), `#!/bin/sh\nif [ "$CNI_COMMAND" = ADD ]; then sleep ${SLEEP_MARK}; echo late; fi\nexit 0\n`);
  // Answers ADD with a CNI error; records what it was given.
  await writeFile(
    join(fakeBin, 'fail'),
    [
      '#!/bin/sh',
      `cat > ${tmp}/fail-$CNI_COMMAND.stdin`,
      `printf '%s|%s|%s|%s|%s|%s\\n' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH" >> ${tmp}/fail.log`,
      'if [ "$CNI_COMMAND" = ADD ]; then',
      `  echo '{"cniVersion":"1.0.0","code":7,"msg":"invalid network config","details":"fail plugin says no"}'`,
      '  exit 1',
      'fi',
      'exit 0',
      '',
    ].join('\n'),
  );
  await chmod(join(fakeBin, 'hang'), 0o755);
  await chmod(join(fakeBin, 'fail'), 0o755);
});

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const { cni, id } of added.reverse()) {
    try {
      await cni.del(id, null);
    } catch (err) {
      console.error(`cleanup: CNI DEL ${id}: ${(err as Error).message}`);
    }
  }
  for (const path of netnsMade) await removeNetns(path);
  await run('ip', ['link', 'del', BRIDGE], { allowFailure: () => true });
  // portmap's shared chains stay after the last DEL (by design); drop them only if we made them.
  const now = await nat();
  if (!natBefore.includes('-N CNI-HOSTPORT-DNAT') && now.includes('-N CNI-HOSTPORT-DNAT') && !now.includes('-N CNI-DN-')) {
    const ipt = (args: string[]): Promise<unknown> => run('iptables', ['-t', 'nat', ...args], { allowFailure: () => true });
    await ipt(['-D', 'PREROUTING', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'CNI-HOSTPORT-DNAT']);
    await ipt(['-D', 'OUTPUT', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'CNI-HOSTPORT-DNAT']);
    await ipt(['-D', 'POSTROUTING', '-m', 'comment', '--comment', 'CNI portfwd requiring masquerade', '-j', 'CNI-HOSTPORT-MASQ']);
    for (const chain of ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-MASQ', 'CNI-HOSTPORT-SETMARK']) {
      await ipt(['-F', chain]);
      await ipt(['-X', chain]);
    }
  }
  // bridge with isGateway turns ip_forward on; put back what the host had.
  if (forwardBefore !== '') await writeFile('/proc/sys/net/ipv4/ip_forward', forwardBefore);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('pure parts', () => {
  test('podIps: first IPv4 is primary, else first IPv6; prefixes stripped; loopback skipped', () => {
    const r = (addrs: string[]): CniResult => ({ cniVersion: '1.0.0', ips: addrs.map((address) => ({ address })) });
    assert.deepEqual(podIps(r(['fd00::5/64', '10.0.0.5/24', '10.0.1.5/24'])), { ip: '10.0.0.5', additional: ['fd00::5', '10.0.1.5'] });
    assert.deepEqual(podIps(r(['fd00::5/64', 'fd00::6/64'])), { ip: 'fd00::5', additional: ['fd00::6'] });
    assert.deepEqual(podIps(r(['127.0.0.1/8', '::1/128', '10.0.0.5/24'])), { ip: '10.0.0.5', additional: [] });
    assert.deepEqual(podIps({ cniVersion: '1.0.0' }), { ip: '', additional: [] });
    assert.deepEqual(podIps(null), { ip: '', additional: [] });
  });

  test('CNI_ARGS carries the pod ids; a value that would forge a key is refused', () => {
    assert.equal(
      cniArgs('abc', { podName: 'web-0', podNamespace: 'prod', podUid: 'u-1' }),
      'IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1',
    );
    assert.equal(cniArgs('abc', null), 'IgnoreUnknown=1');
    assert.throws(() => cniArgs('abc', { podName: 'a;K8S_POD_NAME=b', podNamespace: 'p', podUid: 'u' }), InvalidArgument);
  });

  test('runtimeConfig only for declared capabilities; hostPort 0 dropped; ipRanges from the pod CIDRs', () => {
    const rt = {
      portMappings: [
        { hostPort: 80, containerPort: 8080, protocol: 'tcp' as const, hostIp: '' },
        { hostPort: 0, containerPort: 9090, protocol: 'udp' as const, hostIp: '' },
        { hostPort: 53, containerPort: 53, protocol: 'udp' as const, hostIp: '192.0.2.1' },
      ],
      dns: { servers: ['10.96.0.10'], searches: ['svc'], options: ['ndots:5'] },
      bandwidth: { ingressRate: 1000, ingressBurst: 2000 },
      podCidr: '10.244.1.0/24, fd00:1::/64',
    };
    assert.equal(runtimeConfigFor({ type: 'bridge' }, rt), null);
    assert.equal(runtimeConfigFor({ type: 'portmap', capabilities: { portMappings: false } }, rt), null);
    assert.deepEqual(runtimeConfigFor({ type: 'portmap', capabilities: { portMappings: true } }, rt), {
      portMappings: [
        { hostPort: 80, containerPort: 8080, protocol: 'tcp' },
        { hostPort: 53, containerPort: 53, protocol: 'udp', hostIP: '192.0.2.1' },
      ],
    });
    assert.deepEqual(runtimeConfigFor({ type: 'x', capabilities: { dns: true, bandwidth: true, ipRanges: true } }, rt), {
      dns: { servers: ['10.96.0.10'], searches: ['svc'], options: ['ndots:5'] },
      bandwidth: { ingressRate: 1000, ingressBurst: 2000 },
      ipRanges: [[{ subnet: '10.244.1.0/24' }], [{ subnet: 'fd00:1::/64' }]],
    });
    assert.equal(runtimeConfigFor({ type: 'x', capabilities: { dns: true } }, { portMappings: [] }), null);
  });
});

describe('CNI with real plugins in real network namespaces', () => {
  test('two pods: each gets an IP, they ping each other, a host port reaches one; DEL leaves no lease, rule or veth', async () => {
    const network = `pct-${rand}-main`;
    const cni = newCni(await confDir('main', netConf(network, [{ type: 'portmap', capabilities: { portMappings: true } }])));
    assert.equal((await cni.status()).ready, true);
    const [nsA, nsB] = [await netns('a'), await netns('b')];
    const [idA, idB] = [`pct${rand}a`, `pct${rand}b`];

    const rA = await add(cni, pod(idA, nsA));
    const rB = await add(cni, pod(idB, nsB, { portMappings: [{ hostPort: HOST_PORT, containerPort: 8080, protocol: 'tcp', hostIp: '' }] }));
    const ipA = cni.podIps(rA).ip;
    const ipB = podIps(rB).ip;
    for (const ip of [ipA, ipB]) {
      assert.ok(ip.startsWith(PREFIX) && ip !== GATEWAY, `${ip} in ${SUBNET}`);
    }
    assert.notEqual(ipA, ipB);
    assert.ok(rA.interfaces?.some((i) => i.name === 'eth0' && i.sandbox === nsA), JSON.stringify(rA.interfaces));
    assert.equal(rA.ips?.[0]?.gateway, GATEWAY);
    assert.deepEqual(await cni.cachedResult(idA), rA);
    assert.equal(await leaseOf(network, idA), ipA);
    assert.equal(await leaseOf(network, idB), ipB);
    // Inside the netns, eth0 carries the address.
    const addr = await run('ip', ['-n', `pct-${rand}-a`, '-o', '-4', 'addr', 'show', 'eth0']);
    assert.ok(addr.stdout.includes(`${ipA}/24`), addr.stdout);

    // A repeated ADD (an effect re-run after restore) returns the cached result, no second lease.
    assert.deepEqual(await cni.add(pod(idA, nsA)), rA);
    assert.equal((await leases(network)).size, 2);

    await run('ip', ['netns', 'exec', `pct-${rand}-a`, 'busybox', 'ping', '-c1', '-W2', ipB]);
    await run('ip', ['netns', 'exec', `pct-${rand}-b`, 'busybox', 'ping', '-c1', '-W2', ipA]);

    await serveIn(nsB, 'hi from B\n');
    assert.equal(await readLine(ipB, 8080, 3000), 'hi from B\n'); // directly, over the bridge
    assert.equal(await readLine(GATEWAY, HOST_PORT, 3000), 'hi from B\n'); // through portmap's DNAT
    const rules = await nat();
    assert.ok(rules.includes(`id: \\"${idB}\\"`), rules);
    assert.ok(!rules.includes(idA), 'pod A has no port mappings');
    assert.equal((await bridgePorts()).length, 2);

    await cni.del(idB, nsB);
    await cni.del(idA, nsA);
    assert.equal((await leases(network)).size, 0);
    const after = await nat();
    assert.ok(!after.includes(idB), after);
    await assert.rejects(readLine(GATEWAY, HOST_PORT, 1000));
    assert.deepEqual(await bridgePorts(), []);
    assert.equal(await cni.cachedResult(idA), null);
    assert.equal(existsSync(join(tmp, 'cache', `${idA}.json`)), false);
    // DEL again: no cache now, so the current config; plugins find nothing and succeed.
    await cni.del(idA, nsA);
    await cni.del(idB, null);
  });

  test('DEL after pod stop unmounted the netns and the conf dir broke: the cached config releases the lease', async () => {
    const network = `pct-${rand}-gone`;
    const dir = await confDir('gone', netConf(network));
    const cni = newCni(dir);
    const ns = await netns('c');
    const id = `pct${rand}c`;
    const r = await add(cni, pod(id, ns));
    assert.equal(await leaseOf(network, id), podIps(r).ip);
    await unmountNetns(ns); // pod stop (seed 003): the file stays, but is no namespace any more
    assert.equal(existsSync(ns), true);
    await writeFile(join(dir, '10-net.conflist'), '{ broken');
    assert.equal((await cni.status()).ready, false);
    await cni.del(id, ns);
    assert.equal(await leaseOf(network, id), undefined);
    assert.equal(await cni.cachedResult(id), null);
    // The veth dies with its namespace; the kernel destroys a namespace in deferred work, so poll.
    await eventually('the veth to go with its namespace', async () => (await bridgePorts()).length === 0, 10_000);
  });

  test('CHECK passes on a healthy pod and names the plugin when eth0 is gone', async () => {
    const network = `pct-${rand}-chk`;
    const cni = newCni(await confDir('chk', netConf(network)));
    const ns = await netns('d');
    const id = `pct${rand}d`;
    await assert.rejects(cni.check(id, ns), NotFound);
    await add(cni, pod(id, ns));
    await cni.check(id, ns);
    await run('ip', ['-n', `pct-${rand}-d`, 'link', 'del', 'eth0']);
    await assert.rejects(cni.check(id, ns), (err: Error) => {
      assert.ok(err instanceof EffectFailed, String(err));
      assert.match(err.message, /CNI CHECK of network "pct-[0-9a-f]+-chk" for pct[0-9a-f]+d: CNI plugin "bridge" CHECK failed: /);
      return true;
    });
    await cni.del(id, ns);
    assert.equal(await leaseOf(network, id), undefined);
  });

  test('a plugin that hangs is killed with its children at the deadline, and the chain is rolled back', async () => {
    const network = `pct-${rand}-hang`;
    const cni = newCni(await confDir('hang', netConf(network, [{ type: 'hang' }])), 1500);
    const ns = await netns('e');
    const id = `pct${rand}e`;
    const started = Date.now();
    await assert.rejects(add(cni, pod(id, ns)), (err: Error) => {
      assert.ok(err instanceof DeadlineExceeded, String(err));
      assert.match(err.message, /failed at plugin "hang" \(2 of 2\): CNI plugin "hang" ADD timed out after 1500 ms and was killed; rolled back$/);
      return true;
    });
    assert.ok(Date.now() - started < 10_000, 'bounded by the timeout, not by the plugin');
    await waitFor('the hung plugin and its sleep to be gone', async () => (await sleepersLeft()) === 0);
    assert.equal(await leaseOf(network, id), undefined);
    assert.deepEqual(await bridgePorts(), []);
    const link = await run('ip', ['-n', `pct-${rand}-e`, 'link', 'show', 'eth0'], { allowFailure: () => true });
    assert.notEqual(link.exitCode, 0, 'eth0 removed from the pod netns');
    assert.equal(existsSync(join(tmp, 'cache', `${id}.json`)), false);
  });

  test('a plugin failing midway: its CNI error is reported and every plugin run so far gets DEL', async () => {
    const network = `pct-${rand}-fail`;
    const cni = newCni(await confDir('fail', netConf(network, [{ type: 'fail', capabilities: { portMappings: true } }])));
    const ns = await netns('f');
    const id = `pct${rand}f`;
    const p = pod(id, ns, {
      portMappings: [{ hostPort: HOST_PORT, containerPort: 80, protocol: 'tcp', hostIp: '' }],
      dns: { servers: ['10.96.0.10'], searches: [], options: [] },
    });
    await assert.rejects(add(cni, p), (err: Error) => {
      assert.ok(err instanceof EffectFailed && !(err instanceof DeadlineExceeded), String(err));
      assert.equal(
        err.message,
        `CNI ADD of network "${network}" for ${id} failed at plugin "fail" (2 of 2): ` +
          'CNI plugin "fail" ADD failed: invalid network config: fail plugin says no (CNI error code 7); rolled back',
      );
      return true;
    });
    const args = `IgnoreUnknown=1;K8S_POD_NAMESPACE=cni-test;K8S_POD_NAME=pod-${id};K8S_POD_INFRA_CONTAINER_ID=${id};K8S_POD_UID=uid-${id}`;
    const log = (await readFile(join(tmp, 'fail.log'), 'utf8')).trim().split('\n');
    assert.deepEqual(log, [`ADD|${id}|${ns}|eth0|${args}|${fakeBin}:${SYSTEM_BIN}`, `DEL|${id}|${ns}|eth0|${args}|${fakeBin}:${SYSTEM_BIN}`]);
    // What the second plugin read: the list's name and version, bridge's result, and only the
    // runtime data its capabilities ask for (portMappings, not dns).
    const stdin = JSON.parse(await readFile(join(tmp, 'fail-ADD.stdin'), 'utf8')) as Record<string, unknown>;
    assert.equal(stdin.name, network);
    assert.equal(stdin.cniVersion, '1.0.0');
    const prev = stdin.prevResult as CniResult;
    assert.ok(podIps(prev).ip.startsWith(PREFIX), JSON.stringify(prev));
    assert.deepEqual(stdin.runtimeConfig, { portMappings: [{ hostPort: HOST_PORT, containerPort: 80, protocol: 'tcp' }] });
    // Its rollback DEL (CNI >= 0.4.0) got the result so far as prevResult.
    const delStdin = JSON.parse(await readFile(join(tmp, 'fail-DEL.stdin'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(delStdin.prevResult, prev);
    // bridge and host-local were undone.
    assert.equal(await leaseOf(network, id), undefined);
    assert.deepEqual(await bridgePorts(), []);
    assert.equal(existsSync(join(tmp, 'cache', `${id}.json`)), false);
  });

  test('no valid config: ADD is Unavailable with the reason; DEL of an unknown pod is a no-op', async () => {
    const dir = join(tmp, 'conf-none');
    await mkdir(dir);
    await writeFile(join(dir, '10-net.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'nosuchplugin' }] }));
    const cni = newCni(dir);
    const id = `pct${rand}g`;
    await assert.rejects(cni.add(pod(id, '/var/run/netns/none')), (err: Error) => {
      assert.ok(err instanceof Unavailable, String(err));
      assert.match(err.message, /plugin "nosuchplugin" not found in /);
      return true;
    });
    assert.equal(existsSync(join(tmp, 'cache', `${id}.json`)), false);
    await cni.del(id, null);
    await assert.rejects(cni.add(pod('../etc/x', '/var/run/netns/none')), InvalidArgument);
  });
});
