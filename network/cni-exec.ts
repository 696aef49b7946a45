/**
 * One CNI plugin invocation (CNI spec, "Execution protocol"): the command and ids in CNI_* env
 * vars, the network config on stdin, a result or an error `{code, msg, details}` on stdout.
 *
 * Not through host/exec.ts `run()`, though through the same spawner helper: a plugin that hangs
 * must be killed with everything it started (a shell script's `sleep`, an iptables call), so it
 * runs in its own process group and the whole group gets SIGKILL at the deadline; and a failing
 * plugin's answer is on stdout, not stderr.
 */
import { spawnProgram } from '../host/spawner.js';
import { DeadlineExceeded, EffectFailed } from '../errors/catalogue.js';
import { tail } from '../host/exec.js';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION';

export interface PluginInvocation {
  command: CniCommand;
  /** Absolute path of the plugin binary. */
  pluginPath: string;
  /** The plugin type, for messages. */
  type: string;
  containerId: string;
  /** '' when the namespace is gone (DEL only). */
  netns: string;
  ifName: string;
  cniArgs: string;
  binDirs: readonly string[];
  /** The config the plugin reads on stdin. */
  stdin: unknown;
  timeoutMs: number;
}

/** What a plugin said when it failed, as the spec shapes it. */
export interface CniErrorBody {
  code?: number;
  msg?: string;
  details?: string;
}

/** A plugin failed: its own error (parsed when it followed the spec) and the command that failed. */
export class CniPluginError extends EffectFailed {
  readonly plugin: string;
  readonly command: CniCommand;
  readonly cniCode: number | null;
  constructor(plugin: string, command: CniCommand, message: string, cniCode: number | null) {
    super(message);
    this.plugin = plugin;
    this.command = command;
    this.cniCode = cniCode;
  }
}

/** A plugin ran past its deadline and was killed with its process group. */
export class CniPluginTimeout extends DeadlineExceeded {
  readonly plugin: string;
  readonly command: CniCommand;
  constructor(plugin: string, command: CniCommand, timeoutMs: number) {
    super(`CNI plugin "${plugin}" ${command} timed out after ${timeoutMs} ms and was killed`);
    this.plugin = plugin;
    this.command = command;
  }
}

interface Exit {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** The environment of a plugin: ours (PATH: plugins call iptables, ip…) minus stray CNI_* vars. */
function pluginEnv(inv: PluginInvocation): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CNI_')) env[k] = v;
  env.PATH ??= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  return {
    ...env,
    CNI_COMMAND: inv.command,
    CNI_CONTAINERID: inv.containerId,
    CNI_NETNS: inv.netns,
    CNI_IFNAME: inv.ifName,
    CNI_ARGS: inv.cniArgs,
    CNI_PATH: inv.binDirs.join(':'),
  };
}

async function spawnPlugin(inv: PluginInvocation): Promise<Exit> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(pluginEnv(inv))) if (v !== undefined) env[k] = v;
  const r = await spawnProgram({ file: inv.pluginPath, args: [], env, input: JSON.stringify(inv.stdin), timeoutMs: inv.timeoutMs, processGroup: true });
  if (r.spawnError) throw new CniPluginError(inv.type, inv.command, `CNI plugin "${inv.type}" ${inv.command}: cannot run ${inv.pluginPath}: ${r.spawnError}`, null);
  return { code: r.code, signal: r.signal, stdout: r.stdout, stderr: r.stderr, timedOut: r.timedOut };
}

/** Turns a failed plugin's output into one line a person can act on. */
function failureMessage(inv: PluginInvocation, exit: Exit): { message: string; cniCode: number | null } {
  const head = `CNI plugin "${inv.type}" ${inv.command} failed`;
  let body: CniErrorBody | null = null;
  try {
    const parsed: unknown = JSON.parse(exit.stdout);
    if (typeof parsed === 'object' && parsed !== null) body = parsed;
  } catch {
    // not the spec's error JSON: fall back to stderr
  }
  if (body && typeof body.msg === 'string') {
    const details = typeof body.details === 'string' && body.details !== '' ? `: ${body.details}` : '';
    const code = typeof body.code === 'number' ? body.code : null;
    return { message: `${head}: ${body.msg}${details}${code === null ? '' : ` (CNI error code ${code})`}`, cniCode: code };
  }
  const why = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
  const detail = tail(exit.stderr || exit.stdout);
  return { message: `${head} (${why})${detail ? `: ${detail}` : ''}`, cniCode: null };
}

/**
 * Runs the plugin. Resolves with its parsed stdout (ADD: the result; others: null when empty);
 * rejects with CniPluginTimeout past the deadline, CniPluginError when it failed.
 */
export async function invokePlugin(inv: PluginInvocation): Promise<unknown> {
  const exit = await spawnPlugin(inv);
  if (exit.timedOut) throw new CniPluginTimeout(inv.type, inv.command, inv.timeoutMs);
  if (exit.code !== 0) {
    const { message, cniCode } = failureMessage(inv, exit);
    throw new CniPluginError(inv.type, inv.command, message, cniCode);
  }
  const out = exit.stdout.trim();
  if (out === '') return null;
  try {
    return JSON.parse(out) as unknown;
  } catch (err) {
    throw new CniPluginError(inv.type, inv.command, `CNI plugin "${inv.type}" ${inv.command} printed no valid JSON: ${(err as Error).message}: ${tail(out, 3)}`, null);
  }
}
