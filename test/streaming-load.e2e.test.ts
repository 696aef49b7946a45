/**
 * The streaming server under load, end to end (issue 10): many sessions at once and a thousand in
 * a row against a real podchartd, through the stock crictl and a small SPDY client, with the
 * daemon's resources counted before and after (open fds, child processes, processes in the
 * containers, exec files); and the token's lifetime, on a StreamingServer of the test's own that
 * runs its execs in the daemon's container.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { Daemon, eventually, podConfig, tempPaths, type DaemonPaths } from './daemon.js';
import type { RegistryFixture } from './registry-fixture.js';
import { BUSYBOX_IMAGE, startWithBusybox } from './busybox-daemon.js';
import { needsCrictl } from './stock-clients.js';
import { processesMentioning } from './host-checks.js';
import { crictl, CrictlSession, SpdySession, spdyExec, upgrade, type CrictlResult } from './streaming-clients.js';
import { StreamingServer, type ExecRequest } from '../streaming/server.js';
import { runtimeAt } from '../actors/deps.js';
import { DEFAULTS } from '../config/config.js';

let paths: DaemonPaths;
let daemon: Daemon;
let registry: RegistryFixture;
const POD = 'load';
/** The pod's config; its log directory in the daemon's temp dir, not the host's /var/log/pods that other runs share. */
let sandboxConfig: Record<string, unknown> = {};
const ids = { idle: '', echoer: '', ticker: '' };
let sandboxId = '';
let idlePid = 0;

async function createContainer(name: string, command: string[], extra: Record<string, unknown> = {}): Promise<string> {
  const config = { metadata: { name, attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command, logPath: `${name}.log`, ...extra };
  const { containerId } = await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId: sandboxId, config, sandboxConfig });
  await daemon.cri.call('StartContainer', { containerId });
  return containerId;
}

async function execUrl(cmd: string[], streams: { stdin?: boolean; stdout?: boolean; stderr?: boolean; tty?: boolean }): Promise<string> {
  return (await daemon.cri.call<{ url: string }>('Exec', { containerId: ids.idle, cmd, ...streams })).url;
}

/** Runs `work(i)` for i in [0, n) with at most `concurrency` at once; rejects with the first failure. */
async function pool(n: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await work(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** What one reading of the host says about the daemon's resources. */
interface Resources {
  /**
   * The daemon's open fds, by what they point at (files by path; pipes, sockets by kind, without
   * inodes), but for its connection to the test registry, which is not the streaming server's.
   */
  fds: string[];
  /** The daemon's descendants (conmon is not one: it daemonizes to the host's init). */
  descendants: string[];
  /** Live processes in the test containers (their init, conmon, and any exec left running). */
  inContainers: string[];
  /** runc exec's process and pid files left in the container's dir. */
  execFiles: string[];
}

/**
 * What kind each socket of `pid`'s network namespace is, by inode, from /proc/<pid>/net: a unix
 * socket's type and path (conmon's attach socket is a seqpacket one), a TCP socket's state and
 * local port when it listens (a connection's ports differ from run to run).
 */
function socketKinds(pid: number): Map<string, string> {
  const kinds = new Map<string, string>();
  const registryPort = Number(new URL(registry.url).port);
  const rows = (file: string): string[][] => readFileSync(`/proc/${pid}/net/${file}`, 'utf8').trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
  const unixTypes: Record<string, string> = { '0001': 'stream', '0002': 'dgram', '0005': 'seqpacket' };
  for (const r of rows('unix')) kinds.set(r[6] ?? '', `unix ${unixTypes[r[4] ?? ''] ?? r[4]} ${r[7] ?? ''}`.trim());
  for (const file of ['tcp', 'tcp6']) {
    for (const r of rows(file)) {
      const listening = r[3] === '0A';
      const port = (address: string | undefined): number => Number.parseInt(address?.split(':')[1] ?? '', 16);
      if (listening) kinds.set(r[9] ?? '', `tcp listen :${port(r[1])}`);
      // The image pull's keep-alive connection to the test registry closes on an idle timeout of its own.
      else if (port(r[2]) === registryPort) kinds.set(r[9] ?? '', 'tcp to the registry');
      else kinds.set(r[9] ?? '', `tcp ${r[3] === '01' ? 'established' : `state ${r[3]}`}`);
    }
  }
  return kinds;
}

function resources(): Resources {
  const pid = daemon.pid();
  const fdDir = `/proc/${pid}/fd`;
  const sockets = socketKinds(pid);
  const fds = readdirSync(fdDir).map((fd) => {
    try {
      const target = readlinkSync(join(fdDir, fd));
      const socket = /^socket:\[(\d+)\]$/.exec(target);
      return socket ? `socket: ${sockets.get(socket[1] ?? '') ?? '?'}` : target.replace(/\[\d+\]$/, '');
    } catch {
      return 'closed while read';
    }
  }).filter((fd) => fd !== 'socket: tcp to the registry').sort();
  const parents = new Map<number, { ppid: number; comm: string }>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parents.set(Number(e), { ppid: Number(rest[1]), comm: `${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}${rest[0] === 'Z' ? ' (zombie)' : ''}` });
    } catch {
      // exited while we looked
    }
  }
  const descendants: string[] = [];
  const walk = (of: number): void => {
    for (const [child, p] of parents) {
      if (p.ppid !== of) continue;
      // The daemon's spawner helper (host/spawner-child.ts) lives as long as the daemon: what
      // it runs is counted, not the helper itself.
      if (!isSpawnerHelper(child)) descendants.push(`${child} ${p.comm}`);
      walk(child);
    }
  };
  walk(pid);
  // The ticker's `sleep 0.1` comes and goes on its own.
  const inContainers = processesMentioning(Object.values(ids)).map((p) => p.cmdline.slice(0, 80)).filter((c) => c !== 'sleep 0.1').sort();
  const execFiles = readdirSync(join(paths.root, 'containers', ids.idle)).filter((f) => /^exec-/.test(f));
  return { fds, descendants: descendants.sort(), inContainers, execFiles };
}

/** The daemon's resources once two readings in a row agree (a session just ended closes asynchronously). */
function isSpawnerHelper(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('spawner-child.js');
  } catch {
    return false;
  }
}

async function settledResources(): Promise<Resources> {
  let previous = '';
  return eventually('the daemon\'s fds and processes to settle', () => {
    const now = resources();
    const key = JSON.stringify(now);
    const same = key === previous;
    previous = key;
    return same && !now.fds.includes('closed while read') ? now : null;
  });
}

/** Polls until the daemon's resources are back to `baseline` (closing is asynchronous). */
async function backTo(baseline: Resources): Promise<void> {
  let last = resources();
  try {
    await eventually('the daemon\'s fds and processes to be back to what they were', () => {
      last = resources();
      return JSON.stringify(last) === JSON.stringify(baseline);
    }, 20_000);
  } catch (err) {
    const extra = (a: string[], b: string[]): string[] => {
      const left = [...b];
      return a.filter((x) => {
        const at = left.indexOf(x);
        if (at < 0) return true;
        left.splice(at, 1);
        return false;
      });
    };
    const diff = (k: keyof Resources): string => `${k}: +${JSON.stringify(extra(last[k], baseline[k]))} -${JSON.stringify(extra(baseline[k], last[k]))}`;
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${(['fds', 'descendants', 'inContainers', 'execFiles'] as const).map(diff).join('\n')}`);
  }
}

/** crictl 1.26's report of a non-zero exit code (client-go's CodeExitError). */
function assertExit(r: CrictlResult, code: number, stdout: string): void {
  assert.equal(r.stdout, stdout, `stdout of a session expecting exit ${code}`);
  if (code === 0) assert.equal(r.code, 0, r.stderr);
  else {
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`command terminated with exit code ${code}"`));
  }
}

describe('streaming under load', { skip: needsCrictl }, () => {
  before(async () => {
    paths = tempPaths('pc-sl-');
    daemon = new Daemon(paths);
    registry = await startWithBusybox(daemon);
    sandboxConfig = podConfig(POD, { logDirectory: join(paths.base, 'pods', POD) });
    ({ podSandboxId: sandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: sandboxConfig }));
    ids.idle = await createContainer('idle', ['busybox', 'tail', '-f', '/dev/null']);
    ids.echoer = await createContainer('echoer', ['sh', '-c', 'while read l; do echo "got $l"; done'], { stdin: true, stdinOnce: false });
    ids.ticker = await createContainer('ticker', ['sh', '-c', 'i=0; while :; do echo "tick $i"; i=$((i+1)); sleep 0.1; done']);
    const { info } = await daemon.cri.call<{ info: Record<string, string> }>('ContainerStatus', { containerId: ids.idle, verbose: true });
    idlePid = (JSON.parse(info['info'] ?? '{}') as { pid: number }).pid;
  });
  after(async () => {
    await daemon?.dispose();
    await registry?.stop();
  });

  /** crictl attach -i to the echoer: a line of its own in, its answer out, stdin's end ends it. */
  async function attachEcho(tag: string): Promise<void> {
    const c = new CrictlSession(paths, ['attach', '-i', ids.echoer]);
    c.child.stdin.write(`${tag}\n`);
    await c.until(new RegExp(`^got ${tag}$`, 'm'));
    c.child.stdin.end();
    assert.equal(await c.exit(), 0, c.stderr);
  }

  /** crictl attach to the ticker: a few ticks, then crictl is killed. */
  async function attachTicks(): Promise<void> {
    const c = new CrictlSession(paths, ['attach', ids.ticker]);
    await c.until(/(tick \d+\n[^]*){2}/);
    c.child.kill('SIGKILL');
    await c.exit();
  }

  /** crictl exec of a command that runs until crictl is killed (the daemon then kills it). */
  async function execKilled(tag: string): Promise<void> {
    const c = new CrictlSession(paths, ['exec', ids.idle, 'sh', '-c', `echo up-${tag}; exec sleep 300`]);
    await c.until(new RegExp(`^up-${tag}$`, 'm'));
    c.child.kill('SIGKILL');
    await c.exit();
  }

  test('20 sessions at once (exec, exec with stdin, attach): each gets its own output and exit code', async () => {
    // ~100 KiB each way per stdin session: flow control with other sessions running.
    const payload = (i: number): string => Array.from({ length: 4000 }, (_, k) => `in-${i}-${k}\n`).join('');
    await Promise.all([
      ...Array.from({ length: 12 }, async (_, i) => {
        const r = await crictl(paths, ['exec', ids.idle, 'sh', '-c', `echo out-${i}; echo err-${i} >&2; exit ${i % 4}`]);
        assertExit(r, i % 4, `out-${i}\n`);
        assert.match(r.stderr, new RegExp(`^err-${i}\n`));
      }),
      ...Array.from({ length: 5 }, async (_, i) => {
        const r = await crictl(paths, ['exec', '-i', ids.idle, 'cat'], payload(i));
        assertExit(r, 0, payload(i));
      }),
      attachEcho('together-0'),
      attachEcho('together-1'),
      attachTicks(),
    ]);
  });

  /** One session of each kind the 1000 run, checked. */
  async function oneOfEach(): Promise<void> {
    assertExit(await crictl(paths, ['exec', ids.idle, 'sh', '-c', 'echo w; exit 2']), 2, 'w\n');
    assertExit(await crictl(paths, ['exec', '-i', ids.idle, 'cat'], 'w\n'), 0, 'w\n');
    await attachEcho('w');
    await attachTicks();
    await execKilled('w');
    const { stdout } = await (await SpdySession.open(await execUrl(['echo', 'w'], { stdout: true, tty: true }), { stdout: true, tty: true })).finish();
    assert.match(stdout, /^w\r+\n$/);
  }

  test('1000 sessions: afterwards the daemon holds the fds and processes it held before', async (t) => {
    let phase = Date.now();
    const lap = (what: string): void => {
      t.diagnostic(`${what}: ${Date.now() - phase} ms`);
      phase = Date.now();
    };
    // One of each first: whatever is opened once and kept (a native module, a pool) is in the baseline.
    await oneOfEach();
    const baseline = await settledResources();
    assert.deepEqual(baseline.execFiles, []);
    assert.deepEqual(baseline.descendants, []);

    // 200 through crictl: 4 in 10 exec, 2 exec -i, 1 attach -i to the echoer, 1 attach to the ticker, 2 exec killed mid-run.
    await pool(200, 16, async (i) => {
      const kind = i % 10;
      if (kind <= 3) assertExit(await crictl(paths, ['exec', ids.idle, 'sh', '-c', `echo o${i}; exit ${i % 3}`]), i % 3, `o${i}\n`);
      else if (kind <= 5) assertExit(await crictl(paths, ['exec', '-i', ids.idle, 'cat'], `s${i}\n`), 0, `s${i}\n`);
      else if (kind === 6) await attachEcho(`a${i}`);
      else if (kind === 7) await attachTicks();
      else await execKilled(String(i));
    });
    lap('200 through crictl');
    // 200 with a tty over our own SPDY client (crictl needs a terminal for that), 2 in 5 dropped mid-run.
    await pool(200, 16, async (i) => {
      if (i % 5 < 3) {
        const { stdout, error } = await (await SpdySession.open(await execUrl(['sh', '-c', `echo t${i}`], { stdout: true, tty: true }), { stdout: true, tty: true })).finish();
        // \r+: see the tty test's "from the first byte on" (a race in runtime/exec-stream.ts).
        assert.match(stdout, new RegExp(`^t${i}\r+\n$`));
        assert.equal((JSON.parse(error) as { status: string }).status, 'Success');
      } else {
        const s = await SpdySession.open(await execUrl(['sh', '-c', `echo up${i}; exec sleep 300`], { stdout: true, tty: true }), { stdout: true, tty: true });
        await s.until('stdout', new RegExp(`up${i}\r+\n`));
        s.drop();
      }
    });
    lap('200 with a tty');
    // 600 that open the URL and go away before opening a stream: nothing runs, nothing stays.
    await pool(600, 16, async (i) => {
      const { status, socket } = await upgrade(await execUrl(['touch', `/tmp/dropped-${i}`], { stdout: true, stdin: i % 2 === 0 }));
      assert.equal(status, 101);
      socket?.destroy();
    });
    lap('600 opened and dropped');
    await backTo(baseline);
    lap('back to the baseline');
    assert.deepEqual(readdirSync(`/proc/${idlePid}/root/tmp`).filter((f) => f.startsWith('dropped-')), []);
  });

  test('attach to a container that then exits: the session ends with it, nothing stays open', async () => {
    await attachTicks(); // the attach path warmed (the first test may be skipped with --test-name-pattern)
    const baseline = await settledResources();
    const ender = await createContainer(`ender`, ['sh', '-c', 'while [ ! -e /tmp/stop ]; do echo waiting; sleep 0.1; done; echo bye']);
    const c = new CrictlSession(paths, ['attach', ender]);
    await c.until(/^waiting$/m);
    await daemon.cri.call('ExecSync', { containerId: ender, cmd: ['touch', '/tmp/stop'], timeout: 10 });
    assert.equal(await c.exit(), 0, c.stderr);
    assert.match(c.stdout, /^bye$/m);
    await eventually('the container to have exited', async () => (await daemon.cri.call<{ status: { state: string } }>('ContainerStatus', { containerId: ender })).status.state === 'CONTAINER_EXITED');
    await daemon.cri.call('RemoveContainer', { containerId: ender });
    await backTo(baseline);
  });

  describe('a StreamingServer of our own, running in the daemon\'s container', () => {
    const TTL_MS = 200;
    let server: StreamingServer;
    let request: (cmd: string[]) => ExecRequest;
    before(async () => {
      server = new StreamingServer(pino({ level: 'warn' }, pino.destination(2)), { tokenTtlMs: TTL_MS });
      await server.listen('127.0.0.1:0');
      // The daemon's own layout (cri/container-exec.ts execTarget): runc's root under its run dir,
      // the bundle and exec files under the container's dir in its root dir.
      const runtime = runtimeAt({ ...DEFAULTS, rootDir: paths.root, runDir: paths.run }, 'runc', DEFAULTS.runtimeHandlers['runc']?.path ?? '/usr/sbin/runc');
      const dir = join(paths.root, 'containers', ids.idle);
      request = (cmd) => ({ kind: 'exec', target: { runtime, id: ids.idle, bundle: join(dir, 'bundle'), workDir: dir, containerPid: idlePid }, cmd, stdin: false, stdout: true, stderr: false, tty: false });
    });
    after(async () => {
      await server?.close();
    });
    const inContainer = (path: string): boolean => existsSync(`/proc/${idlePid}/root${path}`);

    test('a token used at once runs its command; used again, it gets 404', async () => {
      const url = server.url(request(['sh', '-c', 'touch /tmp/own-ran; echo ran']));
      const { stdout, error } = await spdyExec(url);
      assert.equal(stdout, 'ran\n');
      assert.equal((JSON.parse(error) as { status: string }).status, 'Success');
      assert.equal(inContainer('/tmp/own-ran'), true);
      assert.equal((await upgrade(url)).status, 404);
    });

    test('an expired token gets 404 and its command never runs', async () => {
      const url = server.url(request(['touch', '/tmp/own-expired']));
      const parked = Date.now();
      await eventually(`${TTL_MS} ms to pass`, () => Date.now() > parked + TTL_MS);
      assert.equal((await upgrade(url)).status, 404);
      assert.equal(inContainer('/tmp/own-expired'), false);
    });

    test('an unknown token, and a token under the other kind\'s path, get 404; nothing runs', async () => {
      const url = server.url(request(['touch', '/tmp/own-other-kind']));
      assert.equal((await upgrade(url.replace(/[^/]+$/, 'AAAAAAAAAAA'))).status, 404);
      assert.equal((await upgrade(url.replace('/exec/', '/attach/'))).status, 404);
      // As kubelet's server (Consume, then the type check): the wrong path used the token up.
      assert.equal((await upgrade(url)).status, 404);
      assert.equal(inContainer('/tmp/own-other-kind'), false);
    });
  });
});
