/**
 * containerd for `npm run bench -- --vs containerd` (issue 14, item 1): Debian's containerd with
 * its CRI plugin, on dirs and a socket of its own, configured like the podchart it is compared
 * with: the same CNI config and plugins, the same registry (through mirrors, plain http on
 * loopback), runc without systemd cgroups, and the critest kit's pause image as its sandbox image.
 * Its gRPC latency histogram (the `[metrics]` endpoint with grpc_histogram) gives the server-side
 * time, as podchart's /metrics does.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CriClient } from '../test/cri-client.js';
import { freeTcpPort } from '../test/daemon.js';

export interface ContainerdOptions {
  base: string;
  cniConfDir: string;
  cniBinDirs: readonly string[];
  /** Registry host (docker.io, registry.k8s.io) → the http URL that serves it. */
  mirrors: Record<string, string>;
  sandboxImage: string;
}

/** Installs Debian's containerd when it is missing (the bench's `--vs containerd` asks for it). */
export function ensureContainerd(repo: string): void {
  execFileSync('bash', ['-c', `source "${repo}/scripts/apt-ensure.sh" && apt_ensure bench containerd`], { stdio: 'inherit' });
}

/** containerd 1.6 takes one CNI bin dir, not a search path: the first that holds the bridge plugin. */
function cniBinDir(dirs: readonly string[]): string {
  return dirs.find((d) => existsSync(join(d, 'bridge'))) ?? dirs[0] ?? '/opt/cni/bin';
}

function configToml(o: ContainerdOptions, socket: string, metrics: string): string {
  return `version = 2
root = "${join(o.base, 'root')}"
state = "${join(o.base, 'state')}"
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[metrics]
  address = "${metrics}"
  grpc_histogram = true
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${o.sandboxImage}"
  enable_selinux = false
  # Without CAP_SYS_RESOURCE in the bounding set (this VM), runc cannot set the pause container's
  # -998: containerd's own option keeps scores no lower than its own, as podchart clamps them.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${cniBinDir(o.cniBinDirs)}"
    conf_dir = "${o.cniConfDir}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "${join(o.base, 'certs.d')}"
`;
}

/** One hosts.toml per mirrored registry: containerd's way to pull a host from another URL. */
function writeMirrors(o: ContainerdOptions): void {
  for (const [host, url] of Object.entries(o.mirrors)) {
    const dir = join(o.base, 'certs.d', host);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'hosts.toml'), `server = "${url}"\n[host."${url}"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n`);
  }
}

export class Containerd {
  readonly socket: string;
  cri: CriClient;
  private child: ChildProcess | null = null;
  private metricsAddress = '';
  output = '';

  constructor(readonly options: ContainerdOptions) {
    this.socket = join(options.base, 'containerd.sock');
    this.cri = new CriClient(this.socket);
  }

  /** Starts containerd and waits until its CRI plugin answers Status with the network ready. */
  async start(): Promise<void> {
    mkdirSync(this.options.base, { recursive: true });
    this.metricsAddress ||= `127.0.0.1:${await freeTcpPort()}`;
    writeMirrors(this.options);
    const config = join(this.options.base, 'config.toml');
    writeFileSync(config, configToml(this.options, this.socket, this.metricsAddress));
    this.output = '';
    const child = spawn('containerd', ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => (this.output = (this.output + d.toString()).slice(-20_000)));
    child.stderr?.on('data', (d: Buffer) => (this.output = (this.output + d.toString()).slice(-20_000)));
    this.child = child;
    this.cri.close();
    this.cri = new CriClient(this.socket);
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const status = await this.cri.call<{ status: { conditions: { type: string; status: boolean }[] } }>('Status', {}, 2_000);
        if (status.status.conditions.every((c) => c.status)) return;
      } catch {
        // not serving yet
      }
      if (child.exitCode !== null) throw new Error(`containerd exited (${child.exitCode}):\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`containerd did not become ready in 60 s:\n${this.output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  pid(): number {
    return this.child?.pid ?? 0;
  }

  /** kill -9 of the daemon alone: its shims and containers keep running, as in a crash. */
  async kill9(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    this.cri.close();
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  /** The gRPC handling-time histogram, per CRI method: seconds summed and calls counted. */
  async serverTotals(): Promise<Map<string, { sum: number; count: number }>> {
    const text = await (await fetch(`http://${this.metricsAddress}/v1/metrics`)).text();
    const totals = new Map<string, { sum: number; count: number }>();
    for (const m of text.matchAll(/^grpc_server_handling_seconds_(sum|count)\{grpc_method="(\w+)",grpc_service="runtime\.v1\.\w+",grpc_type="unary"\} (\S+)$/gm)) {
      const t = totals.get(m[2] ?? '') ?? { sum: 0, count: 0 };
      t[m[1] === 'sum' ? 'sum' : 'count'] = Number(m[3]);
      totals.set(m[2] ?? '', t);
    }
    return totals;
  }

  /** What containerd adds per pod on the host: its shims (one per pod) and their pause processes. */
  runtimeProcesses(): number[] {
    const shims = new Set<number>();
    const parents = new Map<number, number>();
    const commands = new Map<number, string>();
    for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number)) {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
        parents.set(p, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
        commands.set(p, cmd);
        if (cmd.includes('containerd-shim-runc-v2') && cmd.includes(this.socket)) shims.add(p);
      } catch {
        // gone meanwhile
      }
    }
    const pauses = [...parents].filter(([p, parent]) => shims.has(parent) && (commands.get(p) ?? '').startsWith('/pause')).map(([p]) => p);
    return [...shims, ...pauses];
  }

}
