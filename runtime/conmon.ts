/**
 * conmon is our per-container shim (the role of isulad-shim in seed 001): it runs `runc create`,
 * keeps the container's stdio, writes the log and the exit file, and outlives the daemon.
 * It daemonizes; the container's pid (or runc's error) comes back over a sync pipe, fd 3.
 */
import { spawn } from 'node:child_process';
import { spawnTurn } from '../host/spawn-turn.js';
import { join } from 'node:path';
import { EffectFailed } from '../errors/catalogue.js';
import type { OciRuntime } from './oci-runtime.js';
import { tail } from '../host/exec.js';
import { makePrivate } from '../host/private-modes.js';
import { killProcessTree, readPidFile } from '../host/process.js';

export interface ConmonLaunch {
  conmonPath: string;
  runtime: OciRuntime;
  id: string;
  name: string;
  bundle: string;
  pidFile: string;
  conmonPidFile: string;
  logPath: string;
  exitDir: string;
  socketDir: string;
  /** Where conmon leaves an `oom` file if the container is OOM-killed. */
  persistDir?: string;
  terminal?: boolean;
  stdin?: boolean;
  /** Keep stdin open after the first attach closes (CRI stdin_once false). */
  leaveStdinOpen?: boolean;
  timeoutMs?: number;
}

/** Launches conmon, which creates the container (not started). Resolves with the container's pid. */
export async function createUnderConmon(l: ConmonLaunch): Promise<number> {
  const args = [
    '--api-version', '1',
    '--cid', l.id,
    '--cuuid', l.id,
    '--name', l.name,
    '--runtime', l.runtime.binary,
    '--bundle', l.bundle,
    '--container-pidfile', l.pidFile,
    '--conmon-pidfile', l.conmonPidFile,
    '--log-path', `k8s-file:${l.logPath}`,
    '--exit-dir', l.exitDir,
    '--socket-dir-path', l.socketDir,
    '--log-level', 'info',
    ...(l.persistDir ? ['--persist-dir', l.persistDir] : []),
    ...(l.terminal ? ['--terminal'] : []),
    ...(l.stdin ? ['--stdin'] : []),
    ...(l.leaveStdinOpen ? ['--leave-stdin-open'] : []),
    ...(l.runtime.systemdCgroup ? ['--systemd-cgroup'] : []),
    ...l.runtime.globalArgs().flatMap((a) => ['--runtime-arg', a]),
  ];
  // stdio 0-2 must not be pipes: the daemonized conmon would hold them open for the container's
  // life. child_process rather than execa here: execa waits for every stdio stream to end, and
  // conmon's sync pipe (fd 3) stays open until the container exits.
  // detached: a group of its own, so what it starts can be killed as one if we give up on it.
  await spawnTurn();
  const child = spawn(l.conmonPath, args, {
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    env: { ...process.env, _OCI_SYNCPIPE: '3' },
    detached: true,
  });
  let spawnError = '';
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => resolve(code));
    child.on('error', (err) => {
      spawnError = `cannot run ${l.conmonPath}: ${err.message}`;
      resolve(-1);
    });
  });
  // conmon keeps the sync pipe open for the container's life (it would report the exit there
  // too): read the first message, then close our end. conmon ignores SIGPIPE.
  const syncPipe = child.stdio[3] as (NodeJS.ReadableStream & { destroy(): void }) | null | undefined;
  const first = new Promise<string>((resolve) => {
    if (!syncPipe) return resolve('');
    let sync = '';
    syncPipe.on('data', (chunk: string | Buffer) => {
      sync += chunk.toString();
      if (parseSync(sync)) resolve(sync);
    });
    syncPipe.on('error', () => resolve(sync));
    syncPipe.on('close', () => resolve(sync));
    syncPipe.on('end', () => resolve(sync));
  });
  const exitCode = await exited;
  // The parent conmon has exited; its daemonized child writes the pid once runc create is done.
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(''), spawnError ? 0 : (l.timeoutMs ?? 30_000));
  });
  const sync = await Promise.race([first, timeout]);
  clearTimeout(timer);
  syncPipe?.destroy();
  const message = parseSync(sync);
  if (message && message.pid > 0) {
    // Written with the umask conmon and runc must keep (see private-modes.ts): the pid files, and
    // the control fifos (ctl, winsz) anyone who could open them for reading would drain.
    await makePrivate(l.pidFile, l.conmonPidFile, join(l.bundle, 'ctl'), join(l.bundle, 'winsz'));
    return message.pid;
  }
  const why = message?.message ?? (spawnError || (exitCode ? `conmon exited with ${exitCode}` : 'no pid reported in time'));
  // Given up: conmon, the `runc create` under it (blocked, say) and anything runc started must not
  // outlive the attempt [issue 12 item 16]. The daemonized conmon is in the pid file (written by
  // its parent before it exits) and leads a session of its own; the parent led the spawn's group.
  if (!message) await killLaunch(l.conmonPidFile, child.pid);
  throw new EffectFailed(`creating ${l.id} under conmon with ${l.runtime.binary} failed: ${tail(why)}`);
}

async function killLaunch(conmonPidFile: string, parentPid: number | undefined): Promise<void> {
  const conmonPid = await readPidFile(conmonPidFile);
  if (conmonPid) await killProcessTree(conmonPid);
  if (parentPid && parentPid > 1) await killProcessTree(parentPid);
}

function parseSync(text: string): { pid: number; message?: string } | null {
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const parsed = JSON.parse(line) as { data?: number; pid?: number; message?: string };
      const pid = parsed.pid ?? parsed.data ?? -1;
      return parsed.message === undefined ? { pid } : { pid, message: parsed.message };
    } catch {
      // not JSON: conmon only writes JSON here, keep looking
    }
  }
  return null;
}
