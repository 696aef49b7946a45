/**
 * Runs a real podchartd for the end-to-end tests: its own root, run dir and socket under a temp
 * dir, started as a child process, killed with SIGKILL or stopped with SIGTERM like a user would.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { createServer as createNetServer } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CriClient } from './cri-client.js';
import { untilEvent } from './until-event.js';
import { Store } from '../storage/store.js';
import { setTimeout as pollInterval } from 'node:timers/promises';

const POLL_INTERVAL_MS = 50;

export const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const PODCHARTD = join(REPO, 'bin', 'podchartd');

export interface DaemonPaths {
  base: string;
  root: string;
  run: string;
  socket: string;
  log: string;
}

export function tempPaths(prefix = 'podchart-e2e-'): DaemonPaths {
  // Short paths: conmon's attach socket path must fit in 108 bytes.
  const base = mkdtempSync(join(tmpdir(), prefix));
  return { base, root: join(base, 'root'), run: join(base, 'run'), socket: join(base, 'run', 'cri.sock'), log: join(base, 'daemon.log') };
}

/**
 * Polls `check` until it returns a value, or fails after `timeoutMs` with `what` in the message.
 * For host state that raises no event (a pid gone from /proc, a file, a mount, a lease); anything
 * that does raise one (a log line, a process exit) is awaited with untilEvent instead.
 */
export async function eventually<T>(what: string, check: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await pollInterval(POLL_INTERVAL_MS); // the poll's pace; the deadline above bounds the wait
  }
}

/** Bridges made for test daemons, deleted when the test process exits. */
const bridges = new Set<string>();
process.on('exit', () => {
  for (const br of bridges) {
    try {
      execFileSync('ip', ['link', 'del', br], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
});

/**
 * A CNI config of its own for each test daemon: a bridge with a random name and subnet, host-local
 * leases under the daemon's temp dir, and portmap.
 */
export function writeTestCniConfig(paths: DaemonPaths): { confDir: string; ipamDir: string; bridge: string; subnet: string } {
  const confDir = join(paths.base, 'cni', 'net.d');
  const ipamDir = join(paths.base, 'cni', 'ipam');
  const bridge = `pct${randomBytes(3).toString('hex')}`;
  const subnet = `10.${100 + randomInt(150)}.${randomInt(250)}.0/24`;
  mkdirSync(confDir, { recursive: true });
  writeFileSync(
    join(confDir, '10-test.conflist'),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'podchart-test',
      plugins: [
        { type: 'bridge', bridge, isGateway: true, ipMasq: false, hairpinMode: true, ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir: ipamDir } },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    }),
  );
  bridges.add(bridge);
  return { confDir, ipamDir, bridge, subnet };
}

export class Daemon {
  child: ChildProcess | null = null;
  client: CriClient | null = null;
  exitCode: number | null = null;
  private output = '';

  inspectorPort = 0;
  /** This daemon's CNI setup (null when started without pod networking). */
  readonly network: ReturnType<typeof writeTestCniConfig> | null;

  constructor(readonly paths: DaemonPaths, readonly extraArgs: string[] = [], readonly env: NodeJS.ProcessEnv = {}, network: 'bridge' | 'none' = 'bridge') {
    this.network = network === 'bridge' ? writeTestCniConfig(paths) : null;
  }

  get cri(): CriClient {
    if (!this.client) throw new Error('daemon not started');
    return this.client;
  }

  /** Starts podchartd and waits until it answers Version on its socket. */
  async start(env: NodeJS.ProcessEnv = {}): Promise<void> {
    await mkdir(this.paths.base, { recursive: true });
    this.output = '';
    this.exitCode = null;
    const cni = ['--cni-conf-dir', this.network?.confDir ?? join(this.paths.base, 'no-cni')];
    // A free loopback port of its own for the inspector (several daemons run in one test file).
    this.inspectorPort = this.inspectorPort || (await freeTcpPort());
    cni.push('--inspector', `127.0.0.1:${this.inspectorPort}`);
    // PODCHART_TEST_DAEMON_ARGS: flags every test daemon gets too, to run the suite against a
    // variant of the daemon (e.g. --drop-infra-container).
    const variant = (process.env['PODCHART_TEST_DAEMON_ARGS'] ?? '').split(' ').filter(Boolean);
    const child = spawn(PODCHARTD, ['--root', this.paths.root, '--run', this.paths.run, '--socket', this.paths.socket, '--log-level', 'debug', ...cni, ...this.extraArgs, ...variant], {
      env: { ...process.env, PODCHART_CONFIG: join(this.paths.base, 'no-config.json'), ...this.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.on('exit', (code, signal) => {
      this.exitCode = code ?? (signal ? 128 : -1);
    });
    this.client?.close();
    this.client = new CriClient(this.paths.socket);
    // podchartd logs this line (synchronously) once its socket is bound and chmod'ed.
    await untilEvent<void>(`podchartd to serve on ${this.paths.socket}`, 30_000, (done, fail) => {
      const onData = (): void => {
        if (this.output.includes('"msg":"podchartd serving CRI v1"')) done();
      };
      const onExit = (): void => fail(new Error(`podchartd exited with ${this.exitCode}: ${this.output}`));
      child.stdout?.on('data', onData);
      child.once('exit', onExit);
      onData();
      return () => {
        child.stdout?.off('data', onData);
        child.off('exit', onExit);
      };
    });
  }

  /** Resolves with the exit code when the process has exited. */
  waitExit(timeoutMs = 30_000): Promise<number> {
    const child = this.child;
    return untilEvent<number>('podchartd to exit', timeoutMs, (done) => {
      const onExit = (): void => done(this.exitCode ?? -1);
      if (this.exitCode !== null || !child) {
        onExit();
        return () => undefined;
      }
      child.once('exit', onExit);
      return () => child.off('exit', onExit);
    });
  }

  /** kill -9, as a crash would. */
  async kill9(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.waitExit();
    this.client?.close();
    this.client = null;
  }

  async stop(): Promise<void> {
    if (this.child && this.exitCode === null) {
      this.child.kill('SIGTERM');
      await this.waitExit();
    }
    this.client?.close();
    this.client = null;
  }

  /** Removes every pod through CRI, stops the daemon and deletes its temp dir (an `after` hook). */
  async dispose(): Promise<void> {
    if (this.client && this.exitCode === null) {
      const pods = await this.cri.call<{ items: { id: string }[] }>('ListPodSandbox', {}).catch(() => ({ items: [] }));
      for (const p of pods.items) await this.cri.call('RemovePodSandbox', { podSandboxId: p.id }).catch(() => undefined);
    }
    await this.stop();
    rmSync(this.paths.base, { recursive: true, force: true });
  }

  logs(): string {
    return this.output;
  }

  /** The ids of the cleanup jobs the janitor has not done yet (actors/janitor.ts), read from its database. */
  cleanupJobs(): string[] {
    const db = join(this.paths.root, 'podchart.db');
    if (!existsSync(db)) return [];
    const store = Store.openReadOnly(db);
    try {
      return store.cleanup.list().map((j) => j.job.id);
    } finally {
      store.close();
    }
  }

  /**
   * Waits until the daemon's janitor has done every cleanup job: removals answer before their
   * unmounts and deletes, so a check of the host after one waits for this.
   */
  async swept(timeoutMs = 20_000): Promise<void> {
    await eventually('the janitor to finish every cleanup job', () => this.cleanupJobs().length === 0, timeoutMs);
  }

  pid(): number {
    // The lock file names its holder (bin/daemon-lock.ts).
    return Number.parseInt(readFileSync(join(this.paths.run, 'podchartd.lock'), 'utf8'), 10);
  }
}

/**
 * A TCP port nobody listens on right now, below the kernel's ephemeral range (32768 and up by
 * default): a port taken from that range can be handed out again at once to any `listen(0)` (a
 * daemon's streaming server) or outgoing connection, and the daemon then fails with EADDRINUSE.
 */
export async function freeTcpPort(): Promise<number> {
  for (let tries = 0; ; tries++) {
    const port = 20_000 + randomInt(12_000);
    const free = await new Promise<boolean>((resolve) => {
      const srv = createNetServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
    if (tries > 100) throw new Error('no free TCP port in 20000-31999');
  }
}

let podCounter = 0;

/** A kubelet-shaped PodSandboxConfig with a unique uid. */
export function podConfig(name = `pod${++podCounter}`, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    metadata: { name, namespace: 'e2e', uid: `uid-${name}-${process.pid}-${podCounter}`, attempt: 0 },
    hostname: name,
    logDirectory: `/var/log/pods/e2e_${name}`,
    labels: { 'io.kubernetes.pod.name': name, suite: 'e2e' },
    annotations: { 'example.com/note': 'hello' },
    linux: { securityContext: { namespaceOptions: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
    ...extra,
  };
}

/**
 * A pod that shares one pid namespace (`pid: POD`): it keeps its pause process whatever
 * dropInfraContainer says, for the tests of the pause itself (its conmon, exit, restore).
 */
export function pausePodConfig(name?: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return podConfig(name, { linux: { securityContext: { namespaceOptions: { network: 'POD', pid: 'POD', ipc: 'POD' } } }, ...extra });
}
