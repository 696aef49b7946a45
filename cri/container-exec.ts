/** ExecSync, UpdateContainerResources and ReopenContainerLog: calls on a running container. */
import { join } from 'node:path';
import { InvalidArgument, NotFound, NotImplemented, Refused } from '../errors/catalogue.js';
import { checkResources } from '../runtime/container-spec.js';
import type { LinuxContainerResources } from '../runtime/cri-container-types.js';
import { execSync } from '../runtime/exec-sync.js';
import { reopenLog } from '../runtime/log-reopen.js';
import { logFileOf } from '../runtime/log-path.js';
import type { ExecTarget } from '../runtime/exec-stream.js';
import { runtimeAt } from '../actors/deps.js';
import type { ContainerView } from '../actors/supervisor.js';
import type { CriContext } from './context.js';
import { criContainerState } from './container-view.js';
import { requireId } from './validate.js';

/** How long ReopenContainerLog waits for conmon to open the new file. */
const REOPEN_TIMEOUT_MS = 10_000;

function running(ctx: CriContext, ref: string, action: string): ContainerView {
  const id = ctx.supervisor.findContainer(requireId(ref, 'container_id'));
  const view = id ? ctx.supervisor.containerView(id) : null;
  if (!view) throw new NotFound(`container "${ref}" not found`);
  if (criContainerState(view) !== 'CONTAINER_RUNNING') {
    throw new Refused(`cannot ${action} container ${view.id}: it is not running (${view.state})`);
  }
  return view;
}

/** Where an exec (sync or streaming) runs: the container's runtime, bundle and pid namespace. */
function execTarget(view: ContainerView, ctx: CriContext): ExecTarget {
  const s = view.context.spec;
  return { runtime: runtimeAt(ctx.config, s.runtimeHandler, s.runtimePath), id: view.id, bundle: join(s.dir, 'bundle'), workDir: s.dir, containerPid: view.context.pid };
}

export async function execSyncHandler(req: { containerId: string; cmd: string[]; timeout: string }, ctx: CriContext) {
  if (!req.cmd || req.cmd.length === 0) throw new InvalidArgument('ExecSyncRequest.cmd is required');
  const view = running(ctx, req.containerId, 'exec in');
  const result = await execSync({
    ...execTarget(view, ctx),
    cmd: req.cmd,
    timeoutSec: Number(req.timeout ?? 0),
    deadlineMs: ctx.timeoutMs,
  });
  return { stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode };
}

/**
 * Exec: validated here, run by the streaming server when the client opens the URL (CRI: "Exec
 * prepares a streaming endpoint to execute a command in the container"). The request is parked
 * under a one-time token with where it runs; nothing runs until the URL is used.
 */
export async function execHandler(req: { containerId: string; cmd: string[]; tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }, ctx: CriContext) {
  if (!req.cmd || req.cmd.length === 0) throw new InvalidArgument('ExecRequest.cmd is required');
  const streams = requestedStreams(req, 'ExecRequest');
  const streaming = streamingOf(ctx, 'Exec');
  const view = running(ctx, req.containerId, 'exec in');
  return { url: streaming.url({ kind: 'exec', target: execTarget(view, ctx), cmd: req.cmd, ...streams }) };
}

/**
 * Attach: to the container's main process through conmon's attach socket, as the streaming server
 * runs it. The container's own tty setting decides whether its output is a terminal; a request
 * for stderr with a tty is refused, as kubelet does (a terminal has one output).
 */
export async function attachHandler(req: { containerId: string; tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }, ctx: CriContext) {
  const streams = requestedStreams(req, 'AttachRequest');
  const streaming = streamingOf(ctx, 'Attach');
  const view = running(ctx, req.containerId, 'attach to');
  const spec = view.context.spec;
  if (streams.stdin && !spec.stdin) throw new InvalidArgument(`container ${view.id} was not created with stdin open (ContainerConfig.stdin), so there is no stdin to attach to`);
  return {
    url: streaming.url({
      kind: 'attach',
      containerId: view.id,
      target: { bundle: join(spec.dir, 'bundle'), tty: spec.tty, stdinOnce: spec.stdinOnce },
      // The client's tty decides which streams it opens; the container's, what conmon sends.
      ...streams,
    }),
  };
}

/**
 * The streams asked for. With a tty, an exec's stderr is dropped (kubelet bypasses it: the terminal
 * carries both), an attach's is refused (the rule, and containerd's).
 */
function requestedStreams(req: { tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }, message: 'ExecRequest' | 'AttachRequest') {
  const tty = Boolean(req.tty);
  const streams = { stdin: Boolean(req.stdin), stdout: Boolean(req.stdout), stderr: Boolean(req.stderr) && !(tty && message === 'ExecRequest'), tty };
  if (!streams.stdin && !streams.stdout && !req.stderr) throw new InvalidArgument(`${message}: one of stdin, stdout, or stderr must be set`);
  if (streams.tty && streams.stderr) throw new InvalidArgument(`${message}: tty and stderr cannot both be set (a terminal has one output stream)`);
  return streams;
}

function streamingOf(ctx: CriContext, method: string) {
  if (!ctx.streaming) throw new NotImplemented(`${method}: this daemon runs without a streaming server`);
  return ctx.streaming;
}

export async function updateContainerResources(req: { containerId: string; linux: Record<string, unknown> | null }, ctx: CriContext) {
  const id = ctx.supervisor.findContainer(requireId(req.containerId, 'container_id'));
  if (!id) throw new NotFound(`container "${req.containerId}" not found`);
  if (!req.linux) return {};
  checkResources(req.linux as unknown as LinuxContainerResources);
  await ctx.containers.update(id, req.linux, ctx.timeoutMs);
  return {};
}

/** kubelet rotates the log file, then asks conmon (through its control fifo) to open a new one. */
export async function reopenContainerLog(req: { containerId: string }, ctx: CriContext) {
  const view = running(ctx, req.containerId, 'reopen the log of');
  const spec = view.context.spec;
  const file = logFileOf(spec, ctx.supervisor.view(spec.sandboxId)?.context.spec.logDirectory);
  await reopenLog(join(spec.dir, 'bundle', 'ctl'), file, Math.min(ctx.timeoutMs, REOPEN_TIMEOUT_MS));
  return {};
}
