/**
 * conmon is our per-container shim (the role of isulad-shim in seed 001): it runs `runc create`,
 * keeps the container's stdio, writes the log and the exit file, and outlives the daemon.
 * It daemonizes; the container's pid (or runc's error) comes back over a sync pipe, fd 3.
 */
import { startProgram } from '../host/spawner.js';
import { parseSyncMessage } from '../host/spawner-protocol.js';
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
  // Through the spawner helper (a fork of the daemon itself costs 5-10 ms at its size, issue 14),
  // in its sync-pipe mode: no stdio (the daemonized conmon would hold pipes open for the container's
  // life) and the answer on fd 3. A group of its own, so what it starts can be killed as one if we
  // give up on it.
  const program = startProgram({
    file: l.conmonPath,
    args,
    env: { ...definedEnv(process.env), _OCI_SYNCPIPE: '3' },
    timeoutMs: l.timeoutMs ?? 30_000,
    processGroup: true,
    syncPipe: true,
    reportPid: true,
  });
  const [result, parentPid] = await Promise.all([program.done, program.pid]);
  const sync = result.sync ?? '';
  const spawnError = result.spawnError ? `cannot run ${l.conmonPath}: ${result.spawnError}` : '';
  const exitCode = result.code;
  const message = parseSyncMessage(sync);
  if (message && message.pid > 0) {
    // Written with the umask conmon and runc must keep (see private-modes.ts): the pid files, and
    // the control fifos (ctl, winsz) anyone who could open them for reading would drain.
    await makePrivate(l.pidFile, l.conmonPidFile, join(l.bundle, 'ctl'), join(l.bundle, 'winsz'));
    return message.pid;
  }
  const why = message?.message ?? (spawnError || (exitCode ? `conmon exited with ${exitCode}` : result.timedOut ? `no pid reported in ${l.timeoutMs ?? 30_000} ms` : 'no pid reported'));
  // Given up: conmon, the `runc create` under it (blocked, say) and anything runc started must not
  // outlive the attempt [issue 12 item 16]. The daemonized conmon is in the pid file (written by
  // its parent before it exits) and leads a session of its own; the parent led the spawn's group.
  if (!message) await killLaunch(l.conmonPidFile, parentPid ?? undefined);
  throw new EffectFailed(`creating ${l.id} under conmon with ${l.runtime.binary} failed: ${tail(why)}`);
}

async function killLaunch(conmonPidFile: string, parentPid: number | undefined): Promise<void> {
  const conmonPid = await readPidFile(conmonPidFile);
  if (conmonPid) await killProcessTree(conmonPid);
  if (parentPid && parentPid > 1) await killProcessTree(parentPid);
}

/** The environment without its unset entries, as a program's whole environment. */
function definedEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

