/**
 * Streaming exec end to end (issue 10, the no-tty slice): the stock crictl v1.26.1 (client-go's
 * SPDY executor, as kubelet 1.26 ships it) against a real podchartd and a busybox container: stdout
 * and stderr apart, stdin piped, the exit code on the error stream; and the one-time token: a used
 * or unknown token gets 404 and nothing runs.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { rejects } from './grpc-assert.js';
import { CRICTL, needsCrictl } from './stock-clients.js';
import { Daemon, eventually, podConfig, tempPaths, type DaemonPaths } from './daemon.js';
import type { RegistryFixture } from './registry-fixture.js';
import { BUSYBOX_IMAGE, startWithBusybox } from './busybox-daemon.js';
import { untilEvent } from './until-event.js';
import { upgrade } from './streaming-clients.js';
import { WebSocket } from 'ws';

let paths: DaemonPaths;
let daemon: Daemon;
let registry: RegistryFixture;
let container = '';
let containerPid = 0;

interface Crictl { code: number | null; stdout: string; stderr: string }

/** crictl on this daemon's socket only (an empty config, so no /etc/crictl.yaml). */
function spawnCrictl(args: string[]) {
  const socket = `unix://${paths.socket}`;
  const config = join(paths.base, 'crictl.yaml');
  if (!existsSync(config)) writeFileSync(config, '');
  return spawn(CRICTL ?? 'crictl', ['--config', config, '--runtime-endpoint', socket, '--image-endpoint', socket, '--timeout', '30s', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
}

/** crictl to its end, stdin given or closed. */
function crictl(args: string[], stdin = ''): Promise<Crictl> {
  const child = spawnCrictl(args);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(stdin);
  return untilEvent<Crictl>(`crictl ${args.join(' ')}`, 60_000, (done) => {
    child.once('close', (code) => done({ code, stdout, stderr }));
    return () => child.kill('SIGKILL');
  });
}


/** What a WebSocket session delivered, per channel, and how it ended. */
interface WsResult { protocol: string; channels: Map<number, Buffer>; closeCode: number }

/**
 * A WebSocket exec/attach client as client-go's (channel byte first): sends `input` on stdin (then,
 * on v5, the close signal), `resizes` on channel 4, and collects every channel until the server closes.
 */
function wsSession(url: string, protocols: string[], opts: { input?: string; resizes?: string[]; onOpen?: (ws: WebSocket) => void } = {}): Promise<WsResult> {
  return untilEvent<WsResult>('the WebSocket session to end', 30_000, (done, fail) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), protocols);
    const channels = new Map<number, Buffer>();
    ws.on('message', (data: Buffer) => {
      const ch = data[0] ?? -1;
      channels.set(ch, Buffer.concat([channels.get(ch) ?? Buffer.alloc(0), data.subarray(1)]));
    });
    ws.on('open', () => {
      for (const r of opts.resizes ?? []) ws.send(Buffer.concat([Buffer.from([4]), Buffer.from(r)]));
      if (opts.input !== undefined) {
        ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(opts.input)]));
        if (ws.protocol === 'v5.channel.k8s.io') ws.send(Buffer.from([255, 0]));
      }
      opts.onOpen?.(ws);
    });
    ws.on('close', (code) => done({ protocol: ws.protocol, channels, closeCode: code }));
    ws.on('error', fail);
    return () => ws.terminate();
  });
}

const text = (r: WsResult, ch: number): string => r.channels.get(ch)?.toString() ?? '';

/** The live (not zombie) processes named `comm` in the container's pid namespace, read through its /proc. */
function running(comm: string): number[] {
  const procDir = `/proc/${containerPid}/root/proc`;
  return readdirSync(procDir).filter((e) => /^\d+$/.test(e)).filter((e) => {
    try {
      const stat = readFileSync(join(procDir, e, 'stat'), 'utf8');
      return stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) === comm && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
    } catch {
      return false; // exited between readdir and read
    }
  }).map(Number);
}

/** Whether `path` exists in the container (read from the host through its pid 1's root). */
const inContainer = (path: string): boolean => existsSync(`/proc/${containerPid}/root${path}`);

describe('streaming exec (SPDY, no tty)', { skip: needsCrictl }, () => {
  before(async () => {
    paths = tempPaths('pc-st-');
    daemon = new Daemon(paths);
    registry = await startWithBusybox(daemon);
    const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('stream') });
    const config = { metadata: { name: 'idle', attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: ['busybox', 'tail', '-f', '/dev/null'], logPath: 'idle.log' };
    ({ containerId: container } = await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId, config, sandboxConfig: podConfig('stream') }));
    await daemon.cri.call('StartContainer', { containerId: container });
    const { info } = await daemon.cri.call<{ info: Record<string, string> }>('ContainerStatus', { containerId: container, verbose: true });
    containerPid = (JSON.parse(info['info'] ?? '{}') as { pid: number }).pid;
  });
  after(async () => {
    await daemon?.dispose();
    await registry?.stop();
  });

  test('crictl exec: stdout and stderr apart, the exit code reported', async () => {
    const r = await crictl(['exec', container, 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(r.stdout, 'out\n');
    // crictl 1.26 turns client-go's CodeExitError (from the v4 Status on the error stream) into a
    // fatal log line and exits 1: the command's own code reaches the user only in the message.
    assert.match(r.stderr, /^err\n.*level=fatal msg="execing command in container: command terminated with exit code 3"\n$/s);
    assert.equal(r.code, 1);
  });

  test('crictl exec: exit 0 succeeds', async () => {
    const r = await crictl(['exec', container, 'echo', 'fine']);
    assert.deepEqual(r, { code: 0, stdout: 'fine\n', stderr: '' });
  });

  test('crictl exec -i: stdin piped to the command, its end closes the command\'s stdin', async () => {
    const r = await crictl(['exec', '-i', container, 'cat'], 'hi\n');
    assert.deepEqual(r, { code: 0, stdout: 'hi\n', stderr: '' });
  });

  test('crictl exec: output past SPDY\'s 64 KiB initial window arrives whole', async () => {
    // spdystream never sends WINDOW_UPDATE: a server that waits for one stops after 64 KiB.
    const r = await crictl(['exec', container, 'busybox', 'head', '-c', '1048576', '/dev/zero']);
    assert.deepEqual({ code: r.code, bytes: r.stdout.length, stderr: r.stderr }, { code: 0, bytes: 1 << 20, stderr: '' });
  });

  test('a client that goes away mid-exec: the command and what it started are killed', async () => {
    const child = spawnCrictl(['exec', '-i', container, 'sh', '-c', 'sleep 301 & sleep 302; wait']);
    await eventually('the exec to run', () => running('sleep').length === 2, 20_000);
    child.kill('SIGKILL');
    await eventually('the exec to be killed', () => running('sleep').length === 0 && running('sh').length === 0, 20_000);
  });

  test('Exec and Attach refuse what cannot be served', async () => {
    await rejects(daemon.cri.call('Attach', { containerId: container, tty: true, stdout: true, stderr: true }), grpcStatus.INVALID_ARGUMENT, /tty and stderr cannot both be set/);
    await rejects(daemon.cri.call('Attach', { containerId: container, stdout: false }), grpcStatus.INVALID_ARGUMENT, /one of stdin, stdout, or stderr/);
    await rejects(daemon.cri.call('Attach', { containerId: container, stdin: true, stdout: true }), grpcStatus.INVALID_ARGUMENT, /not created with stdin open/);
    await rejects(daemon.cri.call('Attach', { containerId: 'nope', stdout: true }), grpcStatus.NOT_FOUND, /not found/);
    await rejects(daemon.cri.call('Exec', { containerId: container, cmd: ['true'] }), grpcStatus.INVALID_ARGUMENT, /one of stdin, stdout, or stderr/);
    await rejects(daemon.cri.call('Exec', { containerId: 'nope', cmd: ['true'], stdout: true }), grpcStatus.NOT_FOUND, /not found/);
  });

  test('a used token and an unknown token get 404, and nothing runs', async () => {
    const { url } = await daemon.cri.call<{ url: string }>('Exec', { containerId: container, cmd: ['touch', '/tmp/ran'], stdout: true });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/exec\/[A-Za-z0-9_-]+$/);
    const first = await upgrade(url);
    assert.equal(first.status, 101);
    first.socket?.destroy(); // before opening any stream: the command never starts
    assert.equal((await upgrade(url)).status, 404);
    assert.equal((await upgrade(url.replace(/[^/]+$/, 'AAAAAAAAAAA'))).status, 404);
    assert.equal(inContainer('/tmp/ran'), false);
  });

  test('no Upgrade, another upgrade, an unknown subprotocol: refused, nothing runs', async () => {
    const exec = async (): Promise<string> => (await daemon.cri.call<{ url: string }>('Exec', { containerId: container, cmd: ['touch', '/tmp/ran2'], stdout: true })).url;
    assert.equal((await upgrade(await exec(), {})).status, 400);
    assert.equal((await upgrade(await exec(), { Connection: 'Upgrade', Upgrade: 'websocket', 'X-Stream-Protocol-Version': 'v4.channel.k8s.io' })).status, 400);
    assert.equal((await upgrade(await exec(), { Connection: 'Upgrade', Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': 'v9.channel.k8s.io' })).status, 403);
    assert.equal(inContainer('/tmp/ran2'), false);
  });

  test('exec over WebSocket v5 and v4: stdout, stderr, the exit code as a Status', async () => {
    for (const protocol of ['v5.channel.k8s.io', 'v4.channel.k8s.io']) {
      const { url } = await daemon.cri.call<{ url: string }>('Exec', { containerId: container, cmd: ['sh', '-c', 'echo out; echo err >&2; exit 3'], stdout: true, stderr: true });
      const r = await wsSession(url, [protocol]);
      assert.equal(r.protocol, protocol);
      assert.equal(text(r, 1), 'out\n');
      assert.equal(text(r, 2), 'err\n');
      const status = JSON.parse(text(r, 3)) as { status: string; reason: string; details: { causes: { reason: string; message: string }[] } };
      assert.equal(status.status, 'Failure');
      assert.equal(status.reason, 'NonZeroExitCode');
      assert.deepEqual(status.details.causes, [{ reason: 'ExitCode', message: '3' }]);
      assert.equal(r.closeCode, 1000);
    }
  });

  test('exec over WebSocket v5: stdin and its close signal; a tty with a resize', async () => {
    const cat = await daemon.cri.call<{ url: string }>('Exec', { containerId: container, cmd: ['cat'], stdin: true, stdout: true });
    const r = await wsSession(cat.url, ['v5.channel.k8s.io'], { input: 'through ws\n' });
    assert.equal(text(r, 1), 'through ws\n');
    assert.equal((JSON.parse(text(r, 3)) as { status: string }).status, 'Success');
    const tty = await daemon.cri.call<{ url: string }>('Exec', { containerId: container, cmd: ['busybox', 'stty', 'size'], stdout: true, tty: true });
    const t = await wsSession(tty.url, ['v5.channel.k8s.io'], { resizes: ['{"Width":111,"Height":33}'] });
    // The first resize can race the command's start: the size is either the one sent or the default.
    assert.match(text(t, 1), /^(33 111|24 80)\r\n$/);
  });

  test('WebSocket: an unknown subprotocol is refused, and a resize that is not JSON is skipped', async () => {
    const { url } = await daemon.cri.call<{ url: string }>('Exec', { containerId: container, cmd: ['touch', '/tmp/ran3'], stdout: true });
    await assert.rejects(wsSession(url, ['v9.channel.k8s.io']), /Unexpected server response: 403/);
    assert.equal(inContainer('/tmp/ran3'), false);
    // The command waits (bounded) for the size to arrive: a resize lands once runc holds the console.
    const waitForSize = 'for i in $(busybox seq 100); do [ "$(busybox stty size)" = "20 90" ] && break; busybox usleep 50000; done; read x; echo "$x at $(busybox stty size)"';
    const sh = await daemon.cri.call<{ url: string }>('Exec', { containerId: container, cmd: ['sh', '-c', waitForSize], stdin: true, stdout: true, tty: true });
    const r = await wsSession(sh.url, ['v5.channel.k8s.io'], { resizes: ['not json', '{"Width":"x"}', '{"Width":90,"Height":20}'], input: 'go\r' });
    assert.equal(text(r, 1), 'go\r\ngo at 20 90\r\n');
    assert.equal((JSON.parse(text(r, 3)) as { status: string }).status, 'Success');
  });

  test('the inspector shows an open session on its container, and drops it when it ends', async () => {
    const sessions = async (): Promise<{ kind: string; command?: string; peer: string; since: string }[]> => {
      const res = await fetch(`http://127.0.0.1:${daemon.inspectorPort}/api/actors/${container}`);
      return ((await res.json()) as { sessions: { kind: string; command?: string; peer: string; since: string }[] }).sessions;
    };
    assert.deepEqual(await sessions(), []);
    const child = spawnCrictl(['exec', container, 'sleep', '304']);
    await eventually('the session to show', async () => (await sessions()).length === 1, 20_000);
    const [open] = await sessions();
    assert.equal(open?.kind, 'exec');
    assert.equal(open?.command, 'sleep'); // the name only: arguments may carry secrets
    assert.match(open?.peer ?? '', /^127\.0\.0\.1:\d+$/);
    assert.ok(Date.now() - Date.parse(open?.since ?? '') < 60_000);
    child.kill('SIGKILL');
    await eventually('the session to end', async () => (await sessions()).length === 0, 20_000);
  });

  test('malformed and oversized SPDY frames close that connection at once; other sessions go on', async () => {
    const open = spawnCrictl(['exec', '-i', container, 'cat']);
    let echoed = '';
    open.stdout.on('data', (d: Buffer) => (echoed += d.toString()));
    open.stdin.write('before\n');
    await eventually('the other session to run', () => echoed === 'before\n', 20_000);
    const synStream = (length: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([0x80, 0x03, 0x00, 0x01, 0x00, length >> 16, (length >> 8) & 0xff, length & 0xff]), body]);
    const notZlib = Buffer.concat([Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0]), Buffer.from('definitely not zlib')]);
    for (const frame of [synStream(notZlib.length, notZlib), synStream(1 << 20, Buffer.alloc(64))]) {
      const { url } = await daemon.cri.call<{ url: string }>('Exec', { containerId: container, cmd: ['touch', '/tmp/ran4'], stdout: true });
      const { status, socket } = await upgrade(url);
      assert.equal(status, 101);
      const started = Date.now();
      await untilEvent('the server to close the connection', 10_000, (done) => {
        socket?.once('close', () => done(undefined));
        socket?.on('error', () => undefined);
        socket?.resume();
        socket?.write(frame);
        return () => socket?.destroy();
      });
      assert.ok(Date.now() - started < 5_000, 'closed at once, not at the stream-creation timeout');
    }
    assert.equal(inContainer('/tmp/ran4'), false);
    open.stdin.write('after\n');
    await eventually('the other session to still run', () => echoed === 'before\nafter\n', 20_000);
    open.stdin.end();
    assert.equal(await new Promise((resolve) => open.once('close', resolve)), 0);
  });

  test('an upgrade request with oversized headers is refused', async () => {
    const { url } = await daemon.cri.call<{ url: string }>('Exec', { containerId: container, cmd: ['true'], stdout: true });
    const r = await upgrade(url, { Connection: 'Upgrade', Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': 'v4.channel.k8s.io', 'X-Padding': 'x'.repeat(64 * 1024) }).catch((err: Error) => ({ status: 0, socket: null, err }));
    // Node's HTTP parser answers 431 (or drops the connection) before any route sees it.
    assert.ok(r.status === 431 || r.status === 0, `got ${r.status}`);
    const ok = await crictl(['exec', container, 'echo', 'still up']);
    assert.deepEqual(ok, { code: 0, stdout: 'still up\n', stderr: '' });
  });

  test('a container that exits mid-stream ends its exec and attach sessions', async () => {
    const { items } = await daemon.cri.call<{ items: { id: string }[] }>('ListPodSandbox', {});
    const podSandboxId = items[0]?.id ?? '';
    const config = { metadata: { name: 'short', attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: ['sh', '-c', 'while :; do echo tick; sleep 1; done'], stdin: true, logPath: 'short.log' };
    const { containerId } = await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId, config, sandboxConfig: podConfig('stream') });
    await daemon.cri.call('StartContainer', { containerId });
    const exec = spawnCrictl(['exec', containerId, 'sleep', '305']);
    const attach = spawnCrictl(['attach', containerId]);
    let attached = '';
    attach.stdout.on('data', (d: Buffer) => (attached += d.toString()));
    const ended = (c: typeof exec): Promise<number | null> => new Promise((resolve) => c.once('close', resolve));
    const [execEnd, attachEnd] = [ended(exec), ended(attach)];
    await eventually('the attach to get output', () => attached.includes('tick'), 20_000);
    await daemon.cri.call('StopContainer', { containerId, timeout: 2 });
    await untilEvent('both sessions to end', 30_000, (done) => {
      void Promise.all([execEnd, attachEnd]).then(() => done(undefined));
      return () => undefined;
    });
    const { status } = await daemon.cri.call<{ status: { state: string } }>('ContainerStatus', { containerId });
    assert.equal(status.state, 'CONTAINER_EXITED');
    await eventually('the server to drop both sessions', async () => ((await (await fetch(`http://127.0.0.1:${daemon.inspectorPort}/api/actors/${containerId}`)).json()) as { sessions: unknown[] }).sessions.length === 0 || undefined, 10_000);
    await daemon.cri.call('RemoveContainer', { containerId });
  });

  test('a malformed WebSocket frame closes that session and kills its command; the daemon goes on', async () => {
    const { url } = await daemon.cri.call<{ url: string }>('Exec', { containerId: container, cmd: ['sleep', '306'], stdout: true });
    const headers = { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64'), 'Sec-WebSocket-Protocol': 'v5.channel.k8s.io' };
    // A WebSocket handshake is a GET: a POST is refused before anything runs.
    assert.equal((await upgrade((await daemon.cri.call<{ url: string }>('Exec', { containerId: container, cmd: ['sleep', '307'], stdout: true })).url, headers)).status, 400);
    const { status, socket } = await upgrade(url, headers, 'GET');
    assert.equal(status, 101);
    await eventually('the command to run', () => running('sleep').length === 1, 20_000);
    // A client frame must be masked (RFC 6455 5.1): this one is not.
    await untilEvent('the server to close the connection', 10_000, (done) => {
      socket?.once('close', () => done(undefined));
      socket?.on('error', () => undefined);
      socket?.resume();
      socket?.write(Buffer.from([0x82, 0x02, 0x00, 0x41]));
      return () => socket?.destroy();
    });
    await eventually('the command to be killed', () => running('sleep').length === 0, 20_000);
    const ok = await crictl(['exec', container, 'echo', 'still up']);
    assert.deepEqual(ok, { code: 0, stdout: 'still up\n', stderr: '' });
  });

  // Last: it stops the daemon (started again so `after` can remove the pod).
  test('SIGTERM with an exec open: the session ends, its command is killed, the daemon exits', async () => {
    const child = spawnCrictl(['exec', container, 'sleep', '303']);
    const ended = new Promise<number | null>((resolve) => child.once('close', resolve));
    await eventually('the exec to run', () => running('sleep').length === 1, 20_000);
    try {
      await daemon.stop();
      assert.equal(daemon.exitCode, 0);
      assert.equal(running('sleep').length, 0);
      // crictl ends too; client-go reads a connection closed without a Status as success, so
      // crictl 1.26 exits 0 here: only the missing output tells.
      await ended;
    } finally {
      await daemon.start();
    }
  });
});
