/**
 * Versioned rows with upgraders (issue 13, item 7). A persisted actor row is read back only
 * through parseRow: JSON-parsed, brought up to SNAPSHOT_VERSION one step at a time, checked
 * against a schema of the context and against the chart's state names. containerd versions its
 * status file the same way (`store/container/status.go`, statusVersion) and refuses what it
 * cannot read; a row refused here goes to quarantine (Store.quarantine), never into an actor.
 *
 * Assumptions this rests on:
 *  - a row's `version` is the shape of its context: a field added, removed or retyped in
 *    machines/*.types.ts bumps SNAPSHOT_VERSION and adds an upgrader from the previous one;
 *  - upgraders are pure and total: given anything they return something (the schema judges it);
 *  - a version newer than this code is refused, not guessed at: a downgrade must not silently
 *    drop fields the newer code relies on.
 */
import { z } from 'zod';
import { Code } from '../errors/catalogue.js';
import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { sandboxMachine } from '../machines/sandbox.machine.js';
import { containerMachine } from '../machines/container.machine.js';
import type { SandboxContext } from '../machines/sandbox.types.js';
import type { ContainerContext } from '../machines/container.types.js';
import type { ActorKind } from './store.js';

/** Bumped when the shape of a persisted context changes (containerd's statusVersion). */
export const SNAPSHOT_VERSION = 4;

// Nanoseconds since the epoch as a decimal string (int64 does not fit a JS number).
const ns = z.string().regex(/^\d+$/, 'expected nanoseconds as a decimal string');
const stringMap = z.record(z.string());
// `.strict()` on our own records: a key this code does not know means the row was written with a
// different shape under the same version, which is the drift this module exists to catch.
const exitInfo = z.object({ code: z.number().int(), at: ns }).strict();

const sandboxSpec = z
  .object({
    name: z.string(),
    metadata: z.object({ name: z.string(), uid: z.string(), namespace: z.string(), attempt: z.number().int() }).strict(),
    hostname: z.string(),
    logDirectory: z.string(),
    labels: stringMap,
    annotations: stringMap,
    runtimeHandler: z.string(),
    runtimePath: z.string(),
    dns: z.object({ servers: z.array(z.string()), searches: z.array(z.string()), options: z.array(z.string()) }).strict().nullable(),
    portMappings: z.array(
      z.object({ protocol: z.string(), containerPort: z.number().int(), hostPort: z.number().int(), hostIp: z.string() }).strict(),
    ),
    cgroupParent: z.string(),
    namespaces: z.object({ network: z.string(), pid: z.string(), ipc: z.string() }).strict(),
    sysctls: stringMap,
    oomScoreAdj: z.number().int(),
    shmSizeBytes: z.number().int(),
    rootDir: z.string(),
    stateDir: z.string(),
    netnsPath: z.string().nullable(),
    createdAt: ns,
    pauseProcess: z.boolean().optional(),
  })
  .strict();

const podNetwork = z
  .object({
    ip: z.string(),
    additionalIps: z.array(z.string()),
    // The CNI result is kept verbatim (any JSON), but it must be there: DEL is given it.
    result: z.unknown().refine((v): boolean => v !== undefined, 'Required'), // not a type predicate: the type stays unknown
  })
  .strict();

// An effect's failure with the gRPC code it carried (machines/last-error.ts): since version 3.
const lastError = z.object({ code: z.number().int().min(1).max(16), message: z.string() }).strict().nullable();

const containerReport = z.object({ phase: z.enum(['idle', 'busy', 'running', 'failed']), error: z.string().nullable() }).strict();

const podResources = z.object({ resources: z.record(z.unknown()).nullable(), overhead: z.record(z.unknown()).nullable() }).strict();

export const sandboxContextSchema = z
  .object({
    id: z.string().min(1),
    spec: sandboxSpec,
    pid: z.number().int().nullable(),
    pidStartTime: z.string().nullable(),
    exit: exitInfo.nullable(),
    tornDown: z.boolean(),
    stopTimeoutSec: z.number(),
    lastError,
    containerIds: z.array(z.string()),
    containerPhases: z.record(containerReport),
    network: podNetwork.nullable(),
    resources: podResources.nullable(),
    resourcesRequested: podResources.nullable(),
  })
  .strict();

const containerSpec = z
  .object({
    name: z.string(),
    metadata: z.object({ name: z.string(), attempt: z.number().int() }).strict(),
    sandboxId: z.string(),
    image: z.string(),
    imageId: z.string(),
    imageRef: z.string(),
    // The CRI ContainerConfig as proto-loader gave it: its own schema is the proto's, not ours.
    config: z.record(z.unknown()),
    labels: stringMap,
    annotations: stringMap,
    logPath: z.string(),
    logFile: z.object({ root: z.string(), relative: z.string() }).strict().optional(),
    dir: z.string(),
    stateDir: z.string().optional(),
    runtimeHandler: z.string(),
    runtimePath: z.string(),
    stopSignal: z.string(),
    tty: z.boolean(),
    stdin: z.boolean(),
    stdinOnce: z.boolean(),
    createdAt: ns,
  })
  .strict();

export const containerContextSchema = z
  .object({
    id: z.string().min(1),
    spec: containerSpec,
    pid: z.number().int().nullable(),
    pidStartTime: z.string().nullable(),
    startedAt: ns.nullable(),
    exit: z.object({ code: z.number().int(), at: ns, reason: z.string(), message: z.string() }).strict().nullable(),
    stopTimeoutSec: z.number(),
    lastError,
    resources: z.record(z.unknown()).nullable(),
    podReady: z.boolean(),
  })
  .strict();

/*
 * Compile-time drift check: the build fails when a schema and its interface part. Plain mutual
 * assignability misses an optional field present on one side only, so both sides are compared
 * with every key made required (types, at every depth), and by the set of paths that may be
 * absent. `unknown` is left alone by both: `-?` would narrow it to `{} | null`, and whether zod
 * marks an unknown-typed key optional differs by version.
 */
type DeepRequired<T> = unknown extends T
  ? unknown
  : T extends readonly (infer E)[]
    ? DeepRequired<E>[]
    : T extends object
      ? { [K in keyof T]-?: DeepRequired<T[K]> }
      : T;
type OptionalPaths<T, P extends string = ''> = T extends readonly (infer E)[]
  ? OptionalPaths<E, `${P}[].`>
  : T extends object
    ? { [K in keyof T & string]-?: (unknown extends T[K] ? never : undefined extends T[K] ? `${P}${K}` : never) | OptionalPaths<NonNullable<T[K]>, `${P}${K}.`> }[keyof T & string]
    : never;
type Mutual<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Same<A, B> = Mutual<DeepRequired<A>, DeepRequired<B>> extends true ? Mutual<OptionalPaths<A>, OptionalPaths<B>> : false;
const sandboxSchemaMatches: Same<z.infer<typeof sandboxContextSchema>, SandboxContext> = true;
const containerSchemaMatches: Same<z.infer<typeof containerContextSchema>, ContainerContext> = true;
void sandboxSchemaMatches;
void containerSchemaMatches;

export interface RowContexts {
  sandbox: SandboxContext;
  container: ContainerContext;
}

const SCHEMAS = { sandbox: sandboxContextSchema, container: containerContextSchema } as const;

export type Upgrader = (raw: unknown) => unknown;

/** Adds `key: value` to a plain object that lacks it; anything else is left for the schema to refuse. */
function fill(raw: unknown, defaults: Record<string, unknown>): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const out: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  for (const [key, value] of Object.entries(defaults)) if (!Object.hasOwn(out, key)) out[key] = value;
  return out;
}

/**
 * A version-2 lastError was its message alone; version 3 keeps the code with it. An old failure's
 * code is unknown: INTERNAL (13), which is what the CRI call that met it was answered with.
 */
function lastErrorWithCode(raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const old = (raw as Record<string, unknown>)['lastError'];
  return typeof old === 'string' ? { ...(raw as Record<string, unknown>), lastError: { code: Code.INTERNAL, message: old } } : raw;
}

/**
 * UPGRADERS[kind][v] turns a version-v context into a version v+1 one. 1 → 2: version 1 rows
 * were written by code that later grew fields without a bump: `network` (CNI, commit 732dae8),
 * `containerPhases` and `podReady` (f09d81f). Each gets the value the charts' initial context
 * gives a restored actor lacking it (machines/*.machine.ts `input.x ?? default`). 2 → 3:
 * lastError keeps its gRPC code (issue 13, item 2). 3 → 4: a pod's resources as
 * UpdatePodSandboxResources applied them (issue 16, item 4), none yet; containers are unchanged.
 */
export const UPGRADERS: { readonly [K in ActorKind]: Readonly<Record<number, Upgrader>> } = {
  sandbox: { 1: (raw) => fill(raw, { containerPhases: {}, network: null }), 2: lastErrorWithCode, 3: (raw) => fill(raw, { resources: null, resourcesRequested: null }) },
  container: { 1: (raw) => fill(raw, { podReady: false }), 2: lastErrorWithCode, 3: (raw) => raw },
};

/** Every state path of a chart, compound ones included ("STOPPING" and "STOPPING.pause"). */
export function statePaths(machine: AnyStateMachine): ReadonlySet<string> {
  const paths = new Set<string>();
  const visit = (node: AnyStateNode): void => {
    if (node.path.length > 0) paths.add(node.path.join('.'));
    for (const child of Object.values(node.states)) visit(child);
  };
  visit(machine.root);
  return paths;
}

// Compound paths are accepted too: rows from before the pod's substates (da69acd) say just
// "STOPPING" or "REMOVING", and restore decides on the top-level state (actors/restore.ts).
const STATES: { readonly [K in ActorKind]: ReadonlySet<string> } = {
  sandbox: statePaths(sandboxMachine),
  container: statePaths(containerMachine),
};

export interface RowInput {
  state: string;
  context: string;
  version: number;
}

export type ParsedRow<C> =
  | { ok: true; state: string; context: C; /** The version the row was written at. */ fromVersion: number }
  | { ok: false; reason: string };

/** At most this many schema issues are named in a reason; the rest are counted. */
const MAX_ISSUES = 5;

/** Paths, types and key names, never a value (zod quotes the value only for an enum): see parse. */
function issueText(i: z.ZodIssue): string {
  return i.code === z.ZodIssueCode.invalid_enum_value ? `expected one of ${i.options.join(', ')}` : i.message;
}

function describeIssues(error: z.ZodError): string {
  const named = error.issues.slice(0, MAX_ISSUES).map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${issueText(i)}`);
  const more = error.issues.length - named.length;
  return named.join('; ') + (more > 0 ? `; and ${more} more` : '');
}

/**
 * Reads one persisted row of `kind`. Never throws: a row it cannot read is a value with the
 * reason, for the caller to quarantine and log, so one bad row never stops restore of the rest.
 */
export function parseRow<K extends ActorKind>(kind: K, row: RowInput): ParsedRow<RowContexts[K]> {
  try {
    return parse(kind, row);
  } catch (err) {
    // Only an upgrader or a getter on a hostile row object could get here: still a reason.
    return { ok: false, reason: `${kind} row could not be read: ${err instanceof Error ? err.message : String(err)}` };
  }
}

function parse<K extends ActorKind>(kind: K, row: RowInput): ParsedRow<RowContexts[K]> {
  const { state, context, version } = row;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
    return { ok: false, reason: `${kind} row has no valid snapshot version (${JSON.stringify(version)})` };
  }
  if (version > SNAPSHOT_VERSION) {
    return {
      ok: false,
      reason: `${kind} row is at snapshot version ${version}, newer than this podchart knows (${SNAPSHOT_VERSION}): it was written by a newer podchart`,
    };
  }
  if (typeof state !== 'string' || !STATES[kind].has(state)) {
    return { ok: false, reason: `${kind} row is in state ${JSON.stringify(state)}, which the ${kind} chart does not have` };
  }
  if (typeof context !== 'string') return { ok: false, reason: `${kind} row's context is not text` };
  let raw: unknown;
  try {
    raw = JSON.parse(context);
  } catch (err) {
    // V8's message quotes the text around the fault, and a context holds env values: a reason
    // is logged and shown by the inspector, so it names the position only.
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    return { ok: false, reason: `${kind} row's context is not JSON${at === undefined ? '' : ` (at character ${at})`}` };
  }
  for (let v = version; v < SNAPSHOT_VERSION; v++) {
    const step = UPGRADERS[kind][v];
    if (!step) return { ok: false, reason: `no upgrader for a ${kind} row from snapshot version ${v} to ${v + 1}` };
    raw = step(raw);
  }
  const checked = SCHEMAS[kind].safeParse(raw);
  if (!checked.success) {
    return { ok: false, reason: `${kind} context (snapshot version ${version}) does not match version ${SNAPSHOT_VERSION}: ${describeIssues(checked.error)}` };
  }
  // The cast is what the drift check above proves, bar one spot zod cannot type: it infers the
  // unknown-typed `network.result` as optional, and its refine makes it required at run time.
  return { ok: true, state, context: checked.data as RowContexts[K], fromVersion: version };
}
