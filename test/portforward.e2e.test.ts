/**
 * PortForward end to end (issue 10): the stock crictl v1.26.1 (client-go's SPDY port forwarder, as
 * kubelet 1.26 ships it) and a raw SPDY client against a real podchartd, a busybox pod serving
 * HTTP on 8080 and 8081 (busybox httpd) and an echo on 9000 (nc -e cat) on its loopback. 100 MiB
 * through it keep their digest; two ports and several connections at once; a FIN from the client
 * reaches the pod; a refused port, a bad one and one the RPC did not name get their error while
 * another connection on the same session works; the RPC's refusals; and once a session ends no
 * nsenter or socat of the daemon is left.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { get, request, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import transport, { type SpdyStream } from 'spdy-transport';
import { rejects } from './grpc-assert.js';
import { CRICTL, needsCrictl } from './stock-clients.js';
import { Daemon, eventually, freeTcpPort, podConfig, tempPaths, type DaemonPaths } from './daemon.js';
import type { RegistryFixture } from './registry-fixture.js';
import { BUSYBOX_IMAGE, startWithBusybox } from './busybox-daemon.js';
import { untilEvent } from './until-event.js';
import { WebSocket } from 'ws';

const BIG_MIB = 100;
let paths: DaemonPaths;
let daemon: Daemon;
let registry: RegistryFixture;
let pod = '';
let containerPid = 0;
let bigDigest = '';

/** A container serving /www over HTTP on `httpPorts` and echoing on `echoPort`, all on every address. */
function webContainer(httpPorts: number[], echoPort: number | null): Record<string, unknown> {
  const httpd = httpPorts.map((p) => `busybox httpd -p ${p} -h /www`).join(' && ');
  const echo = echoPort === null ? 'exec busybox sleep 100000' : `exec nc -ll -p ${echoPort} -e cat`;
  return { metadata: { name: 'web', attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: ['sh', '-c', `mkdir -p /www && echo small > /www/small && ${httpd} && ${echo}`], logPath: 'web.log' };
}

/** Starts `config` in `podId`; its id and pid once every port listens (read from its netns's /proc/net/tcp*). */
async function startWeb(podId: string, sandboxConfig: Record<string, unknown>, config: Record<string, unknown>, ports: number[]): Promise<{ containerId: string; pid: number }> {
  const { containerId } = await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId: podId, config, sandboxConfig });
  await daemon.cri.call('StartContainer', { containerId });
  const { info } = await daemon.cri.call<{ info: Record<string, string> }>('ContainerStatus', { containerId, verbose: true });
  const pid = (JSON.parse(info['info'] ?? '{}') as { pid: number }).pid;
  await eventually(`ports ${ports.join(', ')} to listen`, () => {
    const table = ['tcp', 'tcp6'].map((f) => readFileSync(`/proc/${pid}/net/${f}`, 'utf8')).join('');
    const listening = new Set([...table.matchAll(/^\s*\d+: [0-9A-F]+:([0-9A-F]{4}) [0-9A-F]+:[0-9A-F]{4} 0A /gm)].map((m) => parseInt(m[1] ?? '', 16)));
    return ports.every((p) => listening.has(p));
  });
  return { containerId, pid };
}

/** Live nsenter and socat processes descended from the daemon. */
function dialChildren(): string[] {
  const procs = readdirSync('/proc').filter((e) => /^\d+$/.test(e)).flatMap((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return [{ pid: Number(pid), ppid: Number(ppid), comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), zombie: state === 'Z' }];
    } catch {
      return []; // exited between readdir and read
    }
  });
  const ours = new Set([daemon.child?.pid ?? -1]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of procs) {
      if (ours.has(p.ppid) && !ours.has(p.pid)) {
        ours.add(p.pid);
        grew = true;
      }
    }
  }
  return procs.filter((p) => ours.has(p.pid) && !p.zombie && (p.comm === 'socat' || p.comm === 'nsenter')).map((p) => `${p.pid} ${p.comm}`);
}

interface Forward {
  child: ChildProcessWithoutNullStreams;
  /** Remote port → the local port crictl listens on. */
  local: Map<number, number>;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** `crictl port-forward <pod> 0:<port>...`, once it says it forwards every port. */
async function crictlForward(ports: number[]): Promise<Forward> {
  const config = join(paths.base, 'crictl.yaml');
  if (!existsSync(config)) writeFileSync(config, '');
  const socket = `unix://${paths.socket}`;
  const child = spawn(CRICTL ?? 'crictl', ['--config', config, '--runtime-endpoint', socket, '--image-endpoint', socket, 'port-forward', pod, ...ports.map((p) => `0:${p}`)]);
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  const local = await untilEvent<Map<number, number>>('crictl port-forward to listen', 20_000, (done, fail) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const found = new Map([...stdout.matchAll(/^Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)$/gm)].map((m) => [Number(m[2]), Number(m[1])]));
      if (ports.every((p) => found.has(p))) done(found);
    });
    void exited.then((code) => fail(new Error(`crictl port-forward exited with ${code}: ${stderr}`)));
    return () => undefined;
  });
  return { child, local, stdout: () => stdout, stderr: () => stderr, exited };
}

/** GET `path` on 127.0.0.1:`port`: status and the body's sha256 and length. */
function fetch(port: number, path: string): Promise<{ status: number; sha256: string; bytes: number; body: string }> {
  return untilEvent(`GET ${path} on ${port}`, 60_000, (done, fail) => {
    const req = get({ host: '127.0.0.1', port, path, agent: false }, (res: IncomingMessage) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let head = '';
      res.on('data', (d: Buffer) => {
        hash.update(d);
        bytes += d.length;
        if (head.length < 100) head += d.toString();
      });
      res.once('end', () => done({ status: res.statusCode ?? 0, sha256: hash.digest('hex'), bytes, body: head }));
      res.once('error', fail);
    });
    req.once('error', fail);
    return () => req.destroy();
  });
}

/** Writes `send` to 127.0.0.1:`port`, half-closes, and reads until the other side ends. */
function echo(port: number, send: string): Promise<string> {
  return untilEvent(`echo on ${port}`, 20_000, (done, fail) => {
    const s: Socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.once('end', () => {
      s.end();
      done(got);
    });
    s.once('error', fail);
    s.end(send);
    return () => s.destroy();
  });
}

async function stopForward(f: Forward): Promise<void> {
  f.child.kill('SIGINT');
  await untilEvent('crictl port-forward to exit', 20_000, (done) => (void f.exited.then(done), () => undefined));
}

/** A raw portforward.k8s.io client: the upgrade, then a request per forwarded connection. */
async function rawSession(url: string, protocol = 'portforward.k8s.io') {
  const socket = await untilEvent<Socket>('the upgrade', 10_000, (done, fail) => {
    const req = request(url, { method: 'POST', headers: { Connection: 'Upgrade', Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': protocol } });
    req.on('upgrade', (res: IncomingMessage, s: Socket, head: Buffer) => {
      if (head.length > 0) s.unshift(head);
      done(s);
    });
    req.on('response', (res: IncomingMessage) => fail(new Error(`no upgrade: ${res.statusCode}`)));
    req.on('error', fail);
    req.end();
    return () => undefined;
  });
  const conn = transport.connection.create(socket, { protocol: 'spdy', isServer: false });
  conn.on('error', () => undefined);
  conn.start(3.1);
  let next = 0;
  const readAll = (s: SpdyStream): Promise<string> =>
    untilEvent('a stream to end', 20_000, (done, fail) => {
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.once('end', () => done(got));
      s.once('error', fail);
      return () => undefined;
    });
  return {
    socket,
    /** One forwarded connection: writes `send` then FIN; the data and error streams' contents. */
    async exchange(port: string, send: string): Promise<{ data: string; error: string }> {
      const headers = { port, requestid: String(next++) };
      const error = conn.request({ method: 'POST', path: '/', host: 'podchart', headers: { ...headers, streamtype: 'error' } });
      error.end();
      const data = conn.request({ method: 'POST', path: '/', host: 'podchart', headers: { ...headers, streamtype: 'data' } });
      data.end(send);
      const [d, e] = await Promise.all([readAll(data), readAll(error)]);
      return { data: d, error: e };
    },
  };
}

describe('PortForward (SPDY)', { skip: needsCrictl }, () => {
  before(async () => {
    paths = tempPaths('pc-pf-');
    daemon = new Daemon(paths);
    registry = await startWithBusybox(daemon);
    const config = podConfig('pf');
    ({ podSandboxId: pod } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config }));
    const web = await startWeb(pod, config, webContainer([8080, 8081], 9000), [8080, 8081, 9000]);
    containerPid = web.pid;
    await daemon.cri.call('ExecSync', { containerId: web.containerId, cmd: ['busybox', 'dd', 'if=/dev/urandom', 'of=/www/big', 'bs=1M', `count=${BIG_MIB}`], timeout: '60' });
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(`/proc/${containerPid}/root/www/big`)) hash.update(chunk as Buffer);
    bigDigest = hash.digest('hex');
  });
  after(async () => {
    await daemon?.dispose();
    await registry?.stop();
  });

  test(`crictl port-forward: ${BIG_MIB} MiB intact, two ports and several connections at once, a FIN carried; nothing left after`, async () => {
    const f = await crictlForward([8080, 8081, 9000]);
    const web = f.local.get(8080) ?? 0;
    const other = f.local.get(8081) ?? 0;
    // A connection held open through the whole test: its socat must run until the session ends.
    const held = connect({ host: '127.0.0.1', port: f.local.get(9000) ?? 0 });
    held.on('error', () => undefined);
    try {
      await untilEvent('the held connection to echo', 20_000, (done) => {
        held.once('data', () => done(undefined));
        held.write('x');
        return () => undefined;
      });
      const [big, ...small] = await Promise.all([fetch(web, '/big'), ...[web, other, other, web, other].map((p) => fetch(p, '/small'))]);
      assert.deepEqual({ status: big?.status, bytes: big?.bytes, sha256: big?.sha256 }, { status: 200, bytes: BIG_MIB << 20, sha256: bigDigest });
      for (const s of small) assert.deepEqual({ status: s.status, body: s.body }, { status: 200, body: 'small\n' });
      assert.equal(await echo(f.local.get(9000) ?? 0, 'hello over a half-close'), 'hello over a half-close');
      // The finished connections' socats exit; the held one's runs until the session ends.
      await eventually('only the held connection\'s socat to run', () => dialChildren().length === 1);
    } finally {
      await stopForward(f);
      held.destroy();
    }
    await eventually('every socat of the session to exit', () => dialChildren().length === 0);
  });

  test('crictl port-forward to a closed port: the pod\'s refusal reaches crictl', async () => {
    const f = await crictlForward([81]);
    const s = connect({ host: '127.0.0.1', port: f.local.get(81) ?? 0 });
    s.on('error', () => undefined);
    // client-go 1.26 drops the whole connection on an error message; crictl then ends.
    await untilEvent('crictl to exit', 20_000, (done) => (void f.exited.then(done), () => undefined));
    s.destroy();
    assert.match(f.stderr(), new RegExp(`an error occurred forwarding \\d+ -> 81: error forwarding port 81 to pod ${pod}, uid : IPv4: connect\\(.*\\): Connection refused`));
    assert.deepEqual(dialChildren(), []);
  });

  test('one session: a refused, a bad and an unnamed port get their error; the named port works beside them', async () => {
    const { url } = await daemon.cri.call<{ url: string }>('PortForward', { podSandboxId: pod, port: [8080, 81] });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/portforward\/[A-Za-z0-9_-]+$/);
    const session = await rawSession(url);
    const [refused, bad, unnamed, ok] = await Promise.all([
      session.exchange('81', ''),
      session.exchange('http', ''),
      session.exchange('8081', 'GET /small HTTP/1.0\r\n\r\n'),
      session.exchange('8080', 'GET /small HTTP/1.0\r\n\r\n'),
    ]);
    assert.match(refused.error, new RegExp(`^error forwarding port 81 to pod ${pod}, uid : IPv4: .*Connection refused`));
    assert.equal(refused.data, '');
    assert.equal(bad.error, 'unable to parse "http" as a port: must be 1-65535');
    assert.match(unnamed.error, /port 8081 is not one of the ports the PortForward request named \(8080, 81\)/);
    assert.equal(ok.error, '');
    assert.match(ok.data, /^HTTP\/1\.[01] 200 OK\r\n.*\r\n\r\nsmall\n$/s);
    // The session is still up: one more connection on it.
    assert.match((await session.exchange('8080', 'GET /small HTTP/1.0\r\n\r\n')).data, /small\n$/);
    session.socket.destroy();
    await eventually('the session\'s socats to exit', () => dialChildren().length === 0);
  });

  test('a host-network pod: forwarded to the node\'s loopback', async () => {
    const port = await freeTcpPort();
    const config = podConfig('pfhost', { linux: { securityContext: { namespaceOptions: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } } });
    const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config });
    await startWeb(podSandboxId, config, webContainer([port], null), [port]);
    const { url } = await daemon.cri.call<{ url: string }>('PortForward', { podSandboxId });
    const session = await rawSession(url);
    const r = await session.exchange(String(port), 'GET /small HTTP/1.0\r\n\r\n');
    assert.deepEqual({ error: r.error, ok: /small\n$/.test(r.data) }, { error: '', ok: true });
    session.socket.destroy();
    await daemon.cri.call('StopPodSandbox', { podSandboxId });
  });

  test('the RPC refuses: no id, an unknown pod, a port out of range, a pod not ready; the URL: another subprotocol 403, a used token 404', async () => {
    await rejects(daemon.cri.call('PortForward', { podSandboxId: '' }), grpcStatus.INVALID_ARGUMENT, /pod_sandbox_id is required/);
    await rejects(daemon.cri.call('PortForward', { podSandboxId: 'nope' }), grpcStatus.NOT_FOUND, /pod sandbox "nope" not found/);
    await rejects(daemon.cri.call('PortForward', { podSandboxId: pod, port: [8080, 0] }), grpcStatus.INVALID_ARGUMENT, /port 0 is not a TCP port/);
    await rejects(daemon.cri.call('PortForward', { podSandboxId: pod, port: [70000] }), grpcStatus.INVALID_ARGUMENT, /port 70000 is not a TCP port/);
    const { podSandboxId: stopped } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('pfstopped') });
    await daemon.cri.call('StopPodSandbox', { podSandboxId: stopped });
    await rejects(daemon.cri.call('PortForward', { podSandboxId: stopped }), grpcStatus.FAILED_PRECONDITION, /is not ready/);
    await assert.rejects(rawSession((await daemon.cri.call<{ url: string }>('PortForward', { podSandboxId: pod })).url, 'v4.channel.k8s.io'), /no upgrade: 403/);
    const { url } = await daemon.cri.call<{ url: string }>('PortForward', { podSandboxId: pod });
    (await rawSession(url)).socket.destroy();
    await assert.rejects(rawSession(url), /no upgrade: 404/);
  });
  test('WebSocket v4.portforward.k8s.io: 100 MiB intact on one port, an HTTP reply on another, a refused port reported', async () => {
    const { url } = await daemon.cri.call<{ url: string }>('PortForward', { podSandboxId: pod });
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}?port=8080&port=8081,81`, ['v4.portforward.k8s.io']);
    const channels = new Map<number, Buffer[]>();
    const hash = createHash('sha256');
    let bigBytes = 0;
    let head: Buffer | null = Buffer.alloc(0);
    const first = new Map<number, Buffer>();
    ws.on('message', (m: Buffer) => {
      const ch = m[0] ?? -1;
      let body = m.subarray(1);
      if (!first.has(ch)) return void first.set(ch, body); // each channel opens with its port
      if (ch === 0) {
        // The reply's headers, then the file: only the file goes into the digest.
        if (head !== null) {
          head = Buffer.concat([head, body]);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          body = head.subarray(end + 4);
          head = null;
        }
        hash.update(body);
        bigBytes += body.length;
      } else channels.set(ch, [...(channels.get(ch) ?? []), body]);
    });
    const text = (ch: number): string => Buffer.concat(channels.get(ch) ?? []).toString();
    await untilEvent('the WebSocket to open', 10_000, (done, fail) => {
      ws.once('open', () => done(undefined));
      ws.once('error', fail);
      return () => undefined;
    });
    assert.equal(ws.protocol, 'v4.portforward.k8s.io');
    ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('GET /big HTTP/1.0\r\n\r\n')]));
    ws.send(Buffer.concat([Buffer.from([2]), Buffer.from('GET /small HTTP/1.0\r\n\r\n')]));
    await eventually('the big reply and the small one', () => bigBytes === BIG_MIB << 20 && text(2).endsWith('small\n') && text(5).length > 0, 60_000);
    assert.deepEqual([...first.entries()].sort(([a], [b]) => a - b).map(([ch, b]) => [ch, b.readUInt16LE()]), [[0, 8080], [1, 8080], [2, 8081], [3, 8081], [4, 81], [5, 81]]);
    assert.match(text(5), new RegExp(`^error forwarding port 81 to pod ${pod}, uid : IPv4: .*Connection refused`));
    assert.equal(text(1), '');
    assert.equal(text(3), '');
    ws.close();
    await eventually('the session\'s socats to exit', () => dialChildren().length === 0);
    assert.equal(hash.digest('hex'), bigDigest);
  });

  test('WebSocket port-forward without ports, or with a port the RPC did not name: 400, nothing dialled', async () => {
    for (const [port, query] of [[[], ''], [[8080], '?port=8081'], [[], '?port=http']] as const) {
      const { url } = await daemon.cri.call<{ url: string }>('PortForward', { podSandboxId: pod, port });
      const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${query}`, ['v4.portforward.k8s.io']);
      await assert.rejects(untilEvent('the WebSocket to be refused', 10_000, (done, fail) => {
        ws.once('open', () => done(undefined));
        ws.once('error', fail);
        return () => ws.terminate();
      }), /Unexpected server response: 400/);
    }
    assert.deepEqual(dialChildren(), []);
  });
});
