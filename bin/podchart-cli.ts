/**
 * podchart: the operator's view of a node. Reads the daemon's database directly, so it works
 * while podchartd is down. It only reads (issue 12, item 9): SQLite's read-only mode, no migration
 * (the daemon may be running concurrently, in WAL mode, and only it may move the schema).
 */
import { parseRow, type RowContexts } from '../storage/rows.js';
import { existsSync, readFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { sandboxMachine } from '../machines/sandbox.machine.js';
import { containerMachine } from '../machines/container.machine.js';
import { chartGraph, toMermaid } from '../inspector/chart-graph.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from '../actors/registry.js';
import { readTokenFile } from '../inspector/access.js';
import { loadConfig, parseArgs } from '../config/config.js';
import type { SandboxContext } from '../machines/sandbox.types.js';
import { SchemaMismatch, Store, type ActorRow } from '../storage/store.js';
import { explain } from '../inspector/explain.js';

export interface Output {
  log(s: string): void;
  error(s: string): void;
}

export const USAGE = `Usage: podchart <command> [flags]

Commands:
  pods                 list pod sandboxes and their states
  inspect <ref>        show one pod sandbox or container: state, chart, context and history
                       (<ref> is a full id, a name, a unique id prefix, or a pod name)
  explain <ref>        why a pod sandbox or container is in its state, in words: since when, what
                       caused it, its process and network, what it waits for (a removed one by
                       its full id, while its history is kept)
  chart sandbox|container
                       print a chart as Mermaid (stateDiagram-v2), drawn from the machine itself
  events               follow every actor's transitions live (from the daemon's inspector)
  version              print the podchart and CRI API versions
  help                 show this text

Flags:
  --root DIR           podchartd's state directory (default: from the config file, else /var/lib/podchart)
  --config FILE        podchartd's config file (default: /etc/podchart/config.json)
  --json               machine-readable output (pods, inspect, explain)
  --limit N            transitions to show in inspect, or read by explain (default 50)
  --inspector ADDR     the inspector's host:port for events (default: from the config, 127.0.0.1:9680)
  --count N            events: stop after N transitions`;

/** A failure the operator caused or must act on: printed as is, with this exit code. */
class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

interface Flags {
  root?: string;
  config?: string;
  json: boolean;
  limit: number;
  inspector?: string;
  count: number | null;
  positional: string[];
}

function parseFlags(argv: readonly string[]): Flags {
  const flags: Flags = { json: false, limit: 50, count: null, positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const [flag, inline] = arg.startsWith('--') && eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new CliError(`flag ${flag} needs a value`, 2);
      return v;
    };
    if (flag === '--root') flags.root = value();
    else if (flag === '--config') flags.config = value();
    else if (flag === '--json') flags.json = true;
    else if (flag === '--inspector') flags.inspector = value();
    else if (flag === '--count') {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1) throw new CliError('--count needs a positive integer', 2);
      flags.count = n;
    }
    else if (flag === '--limit') {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1) throw new CliError('--limit needs a positive integer', 2);
      flags.limit = n;
    } else if (flag.startsWith('-') && flag !== '-') throw new CliError(`unknown flag ${flag}\n\n${USAGE}`, 2);
    else flags.positional.push(arg);
  }
  return flags;
}

function rootDir(flags: Flags): string {
  if (flags.root !== undefined) return flags.root;
  return loadConfig(parseArgs(flags.config !== undefined ? ['--config', flags.config] : [])).rootDir;
}

function openStore(flags: Flags): Store {
  const root = rootDir(flags);
  const path = join(root, 'podchart.db');
  if (!existsSync(path)) {
    throw new CliError(`no podchart state at ${path}: has podchartd ever run with --root ${root}?`);
  }
  try {
    return Store.openReadOnly(path);
  } catch (err) {
    if (err instanceof SchemaMismatch) throw new CliError(err.message);
    throw err;
  }
}

interface Pod {
  id: string;
  state: string;
  context: Partial<SandboxContext>;
}

/**
 * A row's context as this podchart reads it (storage/rows.ts: upgraded from older versions). One
 * that does not check out is still worth showing, as far as it parses: the id and state are real.
 */
function readContext<K extends 'sandbox' | 'container'>(kind: K, row: ActorRow): Partial<RowContexts[K]> {
  const parsed = parseRow(kind, row);
  if (parsed.ok) return parsed.context;
  try {
    return JSON.parse(row.context) as Partial<RowContexts[K]>;
  } catch {
    return {};
  }
}

function toPod(row: ActorRow): Pod {
  return { id: row.id, state: row.state, context: readContext('sandbox', row) };
}

export function criState(state: string): 'READY' | 'NOTREADY' {
  return state === 'RUNNING' ? 'READY' : 'NOTREADY';
}

/** "3m ago" from a created_at in nanoseconds since the epoch (a decimal string). */
export function age(createdAtNs: string | undefined, nowMs: number): string {
  if (!createdAtNs || !/^\d+$/.test(createdAtNs)) return '-';
  const seconds = Math.max(0, Math.floor((nowMs - Number(BigInt(createdAtNs) / 1_000_000n)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 48 * 3600) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86400)}d ago`;
}

function truncate(s: string, max: number): string {
  const line = s.replace(/\s+/g, ' ');
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, col) => Math.max(...rows.map((r) => (r[col] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, col) => cell.padEnd(widths[col] ?? 0)).join('   ').trimEnd()).join('\n');
}

function pods(store: Store, flags: Flags, out: Output): number {
  const list = store.loadSandboxes().map(toPod);
  if (flags.json) {
    const json = list.map(({ id, state, context: c }) => ({
      id,
      name: c.spec?.metadata?.name ?? null,
      namespace: c.spec?.metadata?.namespace ?? null,
      state,
      pid: c.pid ?? null,
      exit: c.exit ?? null,
      lastError: c.lastError?.message ?? null,
      createdAt: c.spec?.createdAt ?? null,
    }));
    out.log(JSON.stringify(json, null, 2));
    return 0;
  }
  const now = Date.now();
  const header = ['POD ID', 'NAME', 'NAMESPACE', 'STATE', 'CRI', 'CREATED', 'PID', 'LAST ERROR'];
  const rows = list.map(({ id, state, context: c }) => [
    id.slice(0, 13),
    c.spec?.metadata?.name ?? '?',
    c.spec?.metadata?.namespace ?? '?',
    state,
    criState(state),
    age(c.spec?.createdAt, now),
    c.pid == null ? '-' : String(c.pid),
    c.lastError ? truncate(c.lastError.message, 60) : '',
  ]);
  out.log(table([header, ...rows]));
  return 0;
}

/** The operator's convenience: the pod's own name (metadata.name), when only one sandbox has it. */
function byPodName(rows: ActorRow[], ref: string): ActorRow | undefined {
  const matches = rows.filter((r) => toPod(r).context.spec?.metadata?.name === ref);
  if (matches.length > 1) {
    const ids = matches.map((r) => r.id.slice(0, 12)).join(', ');
    throw new CliError(`pod name "${ref}" is ambiguous: it matches ${matches.length} sandboxes (${ids}); give an id`);
  }
  return matches[0];
}

type Found = { kind: 'sandbox'; row: ActorRow } | { kind: 'container'; id: string };

/** A pod or container by full id, name, unique id prefix, or pod name (inspect and explain). */
function resolveActor(store: Store, command: string, flags: Flags): Found {
  const ref = flags.positional[0];
  if (ref === undefined || flags.positional.length > 1) throw new CliError(`${command} takes one pod or container reference\n\n${USAGE}`, 2);
  const registry = new Registry();
  registry.load(store.names());
  let id: string | null;
  let containerId: string | null;
  try {
    id = registry.resolve(ref, 'sandbox');
    containerId = id === null ? registry.resolve(ref, 'container') : null;
  } catch (err) {
    throw new CliError((err as Error).message); // an ambiguous prefix: the registry names the candidates
  }
  if (containerId) return { kind: 'container', id: containerId };
  const rows = store.loadSandboxes();
  const row = id === null ? byPodName(rows, ref) : rows.find((r) => r.id === id);
  if (!row) throw new CliError(`no pod sandbox or container matches "${ref}"`);
  return { kind: 'sandbox', row };
}

/** Why an actor is in its state, in words (inspector/explain.ts); a removed one by its full id. */
function explainActor(store: Store, flags: Flags, out: Output): number {
  const ref = flags.positional[0] ?? '';
  const gone = /^[0-9a-f]{64}$/.test(ref) && flags.positional.length === 1 ? store.removedActor(ref) : null;
  let kind: 'sandbox' | 'container';
  let id: string;
  let state: string;
  let context: unknown;
  if (gone && !store.loadContainer(ref) && !store.loadSandboxes().some((r) => r.id === ref)) {
    ({ kind, id } = gone);
    state = 'removed';
    context = null;
  } else {
    const found = resolveActor(store, 'explain', flags);
    const row = found.kind === 'sandbox' ? found.row : store.loadContainer(found.id);
    if (!row) throw new CliError(`no container matches "${ref}"`);
    kind = found.kind;
    id = row.id;
    state = row.state;
    context = readContext(kind, row);
  }
  const why = explain(kind, state, context, store.history(id, flags.limit));
  if (flags.json) {
    out.log(JSON.stringify({ id, kind, state, ...why }, null, 2));
    return 0;
  }
  const spec = (context as { spec?: { name?: string } } | null)?.spec;
  out.log(`${kind === 'sandbox' ? 'pod sandbox' : 'container'} ${id.slice(0, 13)}${spec?.name ? ` (${spec.name})` : ''}, ${state}: ${why.summary}`);
  for (const line of why.details) out.log(`  - ${line}`);
  return 0;
}

function inspect(store: Store, flags: Flags, out: Output): number {
  const found = resolveActor(store, 'inspect', flags);
  if (found.kind === 'container') return inspectContainer(store, found.id, flags, out);
  const { row } = found;
  const pod = toPod(row);
  const history = store.history(pod.id, flags.limit);
  if (flags.json) {
    out.log(JSON.stringify({ id: pod.id, state: pod.state, cri: criState(pod.state), updatedAt: row.updatedAt, context: pod.context, history }, null, 2));
    return 0;
  }
  out.log(`ID:       ${pod.id}`);
  out.log(`NAME:     ${pod.context.spec?.name ?? '?'}`);
  out.log(`STATE:    ${pod.state} (CRI ${criState(pod.state)})`);
  out.log(`UPDATED:  ${new Date(row.updatedAt).toISOString()}`);
  out.log('CHART (sandbox; * marks the current state; `podchart chart sandbox` prints it for a renderer):');
  for (const line of chartText(chartGraph(sandboxMachine), pod.state)) out.log(line);
  out.log(`CONTEXT:\n${JSON.stringify(pod.context, null, 2)}`);
  printHistory(history, flags, out);
  return 0;
}

/** A container: its state, its chart with that state marked, its context and history. */
function inspectContainer(store: Store, id: string, flags: Flags, out: Output): number {
  const row = store.loadContainer(id);
  if (!row) throw new CliError(`no container matches "${id}"`);
  const context = readContext('container', row);
  const history = store.history(id, flags.limit);
  if (flags.json) {
    out.log(JSON.stringify({ id, kind: 'container', sandboxId: row.sandboxId, state: row.state, updatedAt: row.updatedAt, context, history }, null, 2));
    return 0;
  }
  out.log(`ID:       ${id} (container)`);
  out.log(`NAME:     ${context.spec?.name ?? '?'}`);
  out.log(`POD:      ${row.sandboxId}`);
  out.log(`STATE:    ${row.state}`);
  out.log(`UPDATED:  ${new Date(row.updatedAt).toISOString()}`);
  out.log('CHART (container; * marks the current state):');
  for (const line of chartText(chartGraph(containerMachine), row.state)) out.log(line);
  out.log(`CONTEXT:\n${JSON.stringify(context, null, 2)}`);
  printHistory(history, flags, out);
  return 0;
}

function printHistory(history: ReturnType<Store['history']>, flags: Flags, out: Output): void {
  out.log(`HISTORY (oldest first, at most ${flags.limit}):`);
  if (history.length === 0) out.log('  (none)');
  for (const t of history) {
    const cause = t.cause ? `  (${t.cause === 'restore' ? 'restore decision' : t.cause})` : '';
    out.log(`  ${new Date(t.at).toISOString()}  ${t.event}  ${t.from ?? '∅'} → ${t.to}${cause}${t.error ? `  error: ${t.error}` : ''}`);
  }
}

/** The chart as text: each state with its way out, the current one marked. */
export function chartText(graph: ReturnType<typeof chartGraph>, current: string): string[] {
  const width = Math.max(...graph.states.map((s) => s.id.length));
  return graph.states
    .filter((s) => !graph.states.some((c) => c.parent === s.id))
    .map((s) => {
      const lit = current === s.id || current.startsWith(`${s.id}.`);
      const exits = graph.transitions
        .filter((t) => t.from === s.id && t.to !== s.id)
        .map((t) => `${t.event}${t.guard ? `[${t.guard}]` : ''} → ${t.to}`);
      return `  ${lit ? '*' : ' '} ${s.id.padEnd(width)}  ${exits.join(', ') || '(final)'}`;
    });
}

/** Follows the daemon's transitions live (the inspector's event stream), one line each. */
function events(flags: Flags, out: Output): Promise<number> {
  const config = loadConfig(parseArgs(flags.config ? ['--config', flags.config] : []));
  const address = flags.inspector ?? config.inspectorAddress;
  if (!address) throw new CliError('the inspector is switched off (inspectorAddress is ""): events come from it');
  const headers = config.inspectorTokenFile ? { authorization: `Bearer ${readTokenFile(config.inspectorTokenFile)}` } : {};
  return new Promise((resolve) => {
    let printed = 0;
    const req = httpGet(`http://${address}/api/events`, { headers }, (res) => {
      out.error(`following transitions at ${address} (Ctrl-C stops)`);
      let buf = '';
      res.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const lines = buf.slice(0, i).split('\n');
          buf = buf.slice(i + 2);
          const data = lines.find((l) => l.startsWith('data: '));
          // Named events (sessions opening and closing) are for the page; transitions have none.
          if (!data || lines.some((l) => l.startsWith('event: '))) continue;
          const t = JSON.parse(data.slice(6)) as { at: number; kind: string; actorId: string; event: string; from: string | null; to: string; error: string | null };
          out.log(`${new Date(t.at).toISOString()}  ${t.kind} ${t.actorId.slice(0, 12)}  ${t.event}  ${t.from ?? '∅'} → ${t.to}${t.error ? `  error: ${t.error}` : ''}`);
          if (flags.count !== null && ++printed >= flags.count) {
            req.destroy();
            resolve(0);
          }
        }
      });
      res.on('end', () => resolve(0));
    });
    req.on('error', (err) => {
      out.error(`podchart: cannot reach the inspector at ${address}: ${err.message}`);
      resolve(1);
    });
  });
}

/** The version in the package.json that ships this file, found by walking up from it. */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'podchart' && pkg.version) return pkg.version;
    }
    const parent = dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}

export async function main(argv: string[], out: Output): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        out.log(USAGE);
        return 0;
      case 'chart': {
        const kind = rest[0];
        const machine = kind === 'sandbox' ? sandboxMachine : kind === 'container' ? containerMachine : null;
        if (!machine || rest.length !== 1) throw new CliError(`chart takes "sandbox" or "container"\n\n${USAGE}`, 2);
        out.log(toMermaid(chartGraph(machine)).trimEnd());
        return 0;
      }
      case 'events':
        return await events(parseFlags(rest), out);
      case 'version':
        out.log(`podchart ${packageVersion()}`);
        out.log('CRI API: v1 (runtime.v1)');
        return 0;
      case 'pods':
      case 'inspect':
      case 'explain': {
        const flags = parseFlags(rest);
        if (command === 'pods' && flags.positional.length > 0) throw new CliError(`pods takes no arguments\n\n${USAGE}`, 2);
        const store = openStore(flags);
        try {
          if (command === 'explain') return explainActor(store, flags, out);
          return command === 'pods' ? pods(store, flags, out) : inspect(store, flags, out);
        } finally {
          store.close();
        }
      }
      default:
        out.error(`podchart: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    out.error(`podchart: ${(err as Error).message}`);
    return err instanceof CliError ? err.exitCode : 1;
  }
}
