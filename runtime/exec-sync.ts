/**
 * ExecSync: run a command in a running container with the container's own process settings
 * (user, env, cwd, capabilities, no_new_privs), capture stdout and stderr apart up to a cap, and
 * kill the command when its timeout passes. child_process rather than execa: execa's maxBuffer
 * fails the call past the cap, while CRI wants the output truncated and the exit code kept.
 *
 * What a timeout kills, and why the call waits for it (critest "timeout exec process should be
 * gone" runs `pgrep sleep` right after):
 * - `runc exec` (not detached) is the command's parent and a child subreaper, and copies the
 *   command's stdio through pipes of its own; it exits once it has reaped the command and its
 *   output is closed. So we never kill runc first: the command would go to the host's init and
 *   sit in the container's /proc as a zombie, which pgrep counts. runc is killed only if it does
 *   not exit by itself after everything it ran is gone.
 * - runc's nsexec makes the command a session leader (setsid), so the session holds everything it
 *   started, also children orphaned when their parent exited or was killed (a child of a process in
 *   the container's pid namespace is reparented to that namespace's pid 1, not to runc). A child that
 *   left the session (setsid) is found through its parent while the parent lives; one that left it
 *   and was orphaned before the kill escapes, as it would from containerd's and CRI-O's kill.
 * - A command that exits but leaves a child holding its stdout keeps runc (and the call) waiting for
 *   EOF: that too ends at the timeout, the child killed, and is reported as a timeout (containerd
 *   reports it as an error too: the output may be incomplete).
 * Killed children of a killed parent become zombies of the container's pid 1; reaping them is its
 * job, as it is for any orphan in the container.
 */
import { startProgram } from '../host/spawner.js';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { after, secondsToMs } from '../host/long-timer.js';
import { DeadlineExceeded, EffectFailed } from '../errors/catalogue.js';
import type { OciRuntime } from './oci-runtime.js';
import { pidNamespaceOf, processTable, signalNumber, type ProcessEntry } from '../host/process.js';
import { PRIVATE_FILE } from '../host/private-modes.js';

/**
 * stdout and stderr together are capped here: kubelet's 16 MiB receive limit, less room for the
 * reply's framing, the exit code and the truncation notes.
 */
export const EXEC_OUTPUT_CAP = 16 * 1024 * 1024 - 64 * 1024;

/** Stop this much before the call's deadline, so our reply (naming the cause) reaches the caller. */
const DEADLINE_MARGIN_MS = 250;
/** How long killed processes get to be gone (one in uninterruptible sleep can outlast SIGKILL a while). */
const KILL_WAIT_MS = 5_000;
/** How long runc gets to reap the command and exit once everything it ran is gone. */
const RUNC_EXIT_WAIT_MS = 2_000;
/** The pace of re-reading /proc while killed processes go: nothing signals us the exit of a non-child. */
const PROC_POLL_MS = 20;
/** The helper's own deadline for runc lies this far behind ours, so that it never fires first. */
const BACKSTOP_MS = 10_000;

export interface ExecSyncResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
}

/**
 * One stream's output as the reply carries it. kubelet takes at most 16 MiB per reply, both streams
 * together, so the helper keeps that much of the two and counts the rest; the stream says so at its end.
 */
function withCutNote(kept: Uint8Array, dropped: number, name: string): Buffer {
  const out = Buffer.from(kept.buffer, kept.byteOffset, kept.byteLength);
  if (dropped === 0) return out;
  return Buffer.concat([out, Buffer.from(`\n[podchart: ${name} cut: ${dropped} bytes dropped, the reply holds at most ${EXEC_OUTPUT_CAP} bytes of output]\n`)]);
}

/**
 * The live processes of one exec, from one reading of /proc: the command while it is still runc's
 * child (its pid is then not reused), every member of its session, and every descendant of those.
 * `inContainer` guards the session members once the command itself is gone: its pid cannot be
 * reused while the session holds it, but could be once the session is empty.
 */
export function execProcesses(
  table: ReadonlyMap<number, ProcessEntry>,
  exec: { leader: number; runc: number },
  inContainer: (pid: number) => boolean,
): number[] {
  const leaderIsOurs = table.get(exec.leader)?.ppid === exec.runc;
  const found = new Set<number>(leaderIsOurs ? [exec.leader] : []);
  for (const p of table.values()) {
    if (p.session === exec.leader && (leaderIsOurs || inContainer(p.pid))) found.add(p.pid);
  }
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of table.values()) {
      if (!found.has(p.pid) && found.has(p.ppid)) {
        found.add(p.pid);
        grew = true;
      }
    }
  }
  return [...found].filter((pid) => table.get(pid)?.state !== 'Z').sort((a, b) => a - b);
}

/** SIGKILLs the exec's processes until none is alive; returns those still alive at the deadline. */
async function killExecProcesses(leader: number, runcPid: number, containerNs: string | null): Promise<number[]> {
  const until = Date.now() + KILL_WAIT_MS;
  for (;;) {
    const table = await processTable();
    const session = [...table.values()].filter((p) => p.session === leader);
    const ns = new Map(await Promise.all(session.map(async (p) => [p.pid, await pidNamespaceOf(p.pid)] as const)));
    const alive = execProcesses(table, { leader, runc: runcPid }, (pid) => containerNs === null || ns.get(pid) === containerNs);
    if (alive.length === 0 || Date.now() > until) return alive;
    for (const pid of alive) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited since the reading
      }
    }
    await delay(PROC_POLL_MS);
  }
}

/** The command's pid from runc's pid file; null when runc ends (or the wait does) before writing it. */
async function commandPid(pidFile: string, runcDone: () => boolean): Promise<number | null> {
  const until = Date.now() + KILL_WAIT_MS;
  while (!runcDone() && Date.now() <= until) {
    const pid = Number.parseInt(await readFile(pidFile, 'utf8').catch(() => ''), 10);
    if (pid > 0) return pid;
    await delay(PROC_POLL_MS);
  }
  return null;
}

/** runc as child_process or node-pty started it: its pid, and a way to kill it. */
export interface RuncHandle {
  readonly pid?: number | undefined;
  kill(signal: NodeJS.Signals): unknown;
}

/**
 * The timeout passed (or a streaming client went away): kill what the exec runs, let runc reap it
 * and exit, kill runc only if it does not. Shared with streaming exec (runtime/exec-stream.ts).
 */
export async function stopExec(runc: RuncHandle, closed: Promise<unknown>, pidFile: string, containerPid: number | null): Promise<number[]> {
  let runcDone = false;
  const done = (): void => void (runcDone = true);
  closed.then(done, done);
  const leader = await commandPid(pidFile, () => runcDone);
  const containerNs = containerPid ? await pidNamespaceOf(containerPid) : null;
  const survivors = leader === null || runc.pid === undefined ? [] : await killExecProcesses(leader, runc.pid, containerNs);
  const exited = await Promise.race([closed.then(() => true, () => true), delay(RUNC_EXIT_WAIT_MS, false)]);
  if (!exited) runc.kill('SIGKILL');
  return survivors;
}

/**
 * The process file of one `runc exec`: the container's own process settings (user, env, cwd,
 * capabilities, no_new_privs) from its bundle, with `cmd` as args and a terminal of the given size or none. Returns runc's argv; the caller
 * removes both files when runc is done.
 */
export async function prepareExec(runtime: OciRuntime, id: string, bundle: string, workDir: string, cmd: string[], terminal: { width: number; height: number } | null) {
  const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as { process: Record<string, unknown> };
  const tag = randomBytes(6).toString('hex');
  const processFile = join(workDir, `exec-${tag}.json`);
  const pidFile = join(workDir, `exec-${tag}.pid`);
  // A terminal is created at its size: without one it starts 0x0 until runc first resizes it,
  // and a command that reads its size at once (stty size) fails.
  const tty = terminal ? { terminal: true, consoleSize: terminal } : { terminal: false };
  await writeFile(processFile, JSON.stringify({ ...spec.process, args: cmd, ...tty }), { mode: PRIVATE_FILE }); // the env
  const args = [...runtime.globalArgs(), 'exec', '--process', processFile, '--pid-file', pidFile, id];
  return { processFile, pidFile, args };
}

/** Where an exec (sync or streaming) runs: resolved from the container when the RPC is validated. */
export interface ExecTarget {
  runtime: OciRuntime;
  id: string;
  bundle: string;
  workDir: string;
  /** The container's init pid: the pid namespace the exec runs in. */
  containerPid: number | null;
}

export async function execSync(opts: ExecTarget & {
  cmd: string[];
  /** CRI's timeout; 0 means none, and then only the call's deadline bounds the command. */
  timeoutSec: number;
  /** Milliseconds left before the call's deadline. */
  deadlineMs: number;
  cap?: number;
}): Promise<ExecSyncResult> {
  const { processFile, pidFile, args } = await prepareExec(opts.runtime, opts.id, opts.bundle, opts.workDir, opts.cmd, null);
  const byTimeout = opts.timeoutSec > 0 && secondsToMs(opts.timeoutSec) <= opts.deadlineMs - DEADLINE_MARGIN_MS;
  const limitMs = byTimeout ? secondsToMs(opts.timeoutSec) : Math.max(1, opts.deadlineMs - DEADLINE_MARGIN_MS);
  // In the spawner helper: a fork of the daemon itself costs 5-10 ms at its size (issue 14). Our
  // own timer below stops the exec; the helper's deadline is only a backstop behind it.
  const program = startProgram({
    file: opts.runtime.binary,
    args,
    timeoutMs: limitMs + KILL_WAIT_MS + RUNC_EXIT_WAIT_MS + BACKSTOP_MS,
    byteBudget: opts.cap ?? EXEC_OUTPUT_CAP,
    reportPid: true,
  });
  const runc: RuncHandle & { pid?: number } = { kill: (signal) => program.signal(signal) };
  void program.pid.then((pid) => {
    if (pid !== null) runc.pid = pid;
  });
  const closed = program.done.then((r) => {
    if (r.spawnError) throw new EffectFailed(`exec in ${opts.id}: cannot start ${opts.runtime.binary}: ${r.spawnError}`);
    return r;
  });
  const timeout: { killing: Promise<number[]> | null } = { killing: null };
  // Any length: a CRI timeout or a deadline past 24.8 days would overflow setTimeout.
  const cancelTimer = after(limitMs, () => {
    timeout.killing = stopExec(runc, closed, pidFile, opts.containerPid);
  });
  try {
    const { code, signal, bytes } = await closed;
    cancelTimer();
    if (timeout.killing) {
      const survivors = await timeout.killing;
      const left = survivors.length > 0 ? `; pids ${survivors.join(', ')} had not exited ${KILL_WAIT_MS} ms after SIGKILL` : '';
      const why = byTimeout ? `timed out after ${opts.timeoutSec}s` : `was still running at the call's deadline (${limitMs} ms)`;
      // The program only: its arguments may be secrets (a probe's password), and errors are logged.
      const argc = opts.cmd.length - 1;
      const what = `command ${JSON.stringify(opts.cmd[0] ?? '')}${argc > 0 ? ` (${argc} argument${argc === 1 ? '' : 's'} not shown)` : ''}`;
      throw new DeadlineExceeded(`${what} ${why} and was killed, with everything it started${left}`);
    }
    const out = withCutNote(bytes?.stdout ?? new Uint8Array(), bytes?.dropped.stdout ?? 0, 'stdout');
    const err = withCutNote(bytes?.stderr ?? new Uint8Array(), bytes?.dropped.stderr ?? 0, 'stderr');
    // runc's own failure (no such container, bad command) shows as exit 255 with runc's message on stderr.
    if (code === 255 && /runc|exec failed|OCI runtime/.test(err.toString()) && out.length === 0) {
      throw new EffectFailed(`exec in ${opts.id} failed: ${err.toString().trim().split('\n').slice(-3).join(' ')}`);
    }
    return { stdout: out, stderr: err, exitCode: code ?? (signal ? 128 + (signalNumber(signal) ?? 0) : -1) };
  } finally {
    cancelTimer();
    await rm(processFile, { force: true });
    await rm(pidFile, { force: true });
  }
}
