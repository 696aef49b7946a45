/**
 * fast-check arbitraries of persisted contexts, and of their corruptions, for rows.test.ts. Typed
 * against the context interfaces, so they follow the types as the schemas must (rows.ts).
 */
import fc from 'fast-check';
import type { ContainerContext, ContainerSpecRecord } from '../machines/container.types.js';
import type { SandboxContext, SandboxSpec } from '../machines/sandbox.types.js';
import type { ActorKind } from './store.js';

// zod drops a `__proto__` key from a record (it would set the prototype), so no arbitrary key is
// that: no label, annotation or sysctl of a real pod is (kubelet validates their syntax).
const key = fc.string({ unit: 'binary', maxLength: 12 }).filter((k) => k !== '__proto__');
const text = fc.string({ unit: 'binary', maxLength: 16 });
const map = fc.dictionary(key, text, { maxKeys: 3, noNullPrototype: true });
const json = fc.dictionary(key, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3, noNullPrototype: true });
const ns = fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }).map(String);
const int = fc.integer();
const strings = fc.array(text, { maxLength: 3 });

const sandboxSpec: fc.Arbitrary<SandboxSpec> = fc.record({
  name: text,
  metadata: fc.record({ name: text, uid: text, namespace: text, attempt: fc.nat() }),
  hostname: text,
  logDirectory: text,
  labels: map,
  annotations: map,
  runtimeHandler: text,
  runtimePath: text,
  dns: fc.option(fc.record({ servers: strings, searches: strings, options: strings })),
  portMappings: fc.array(fc.record({ protocol: text, containerPort: fc.nat(65535), hostPort: fc.nat(65535), hostIp: text }), { maxLength: 2 }),
  cgroupParent: text,
  namespaces: fc.record({ network: text, pid: text, ipc: text }),
  sysctls: map,
  oomScoreAdj: fc.integer({ min: -1000, max: 1000 }),
  shmSizeBytes: fc.maxSafeNat(),
  rootDir: text,
  stateDir: text,
  netnsPath: fc.option(text),
  createdAt: ns,
});

const id = fc.stringMatching(/^[0-9a-f]{64}$/);

const resourceMap = fc.option(fc.dictionary(text, fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3, noNullPrototype: true }));
const podResources = fc.record({ resources: resourceMap, overhead: resourceMap });

export const sandboxContext: fc.Arbitrary<SandboxContext> = fc.record({
  id,
  spec: sandboxSpec,
  pid: fc.option(fc.nat()),
  pidStartTime: fc.option(text),
  exit: fc.option(fc.record({ code: int, at: ns })),
  tornDown: fc.boolean(),
  stopTimeoutSec: fc.nat(),
  lastError: fc.option(fc.record({ code: fc.integer({ min: 1, max: 16 }), message: text })),
  containerIds: fc.array(id, { maxLength: 3 }),
  containerPhases: fc.dictionary(id, fc.record({ phase: fc.constantFrom('idle', 'busy', 'running', 'failed'), error: fc.option(text) }), { maxKeys: 3, noNullPrototype: true }),
  network: fc.option(fc.record({ ip: text, additionalIps: strings, result: fc.jsonValue({ maxDepth: 2 }) })),
  resources: fc.option(podResources),
  resourcesRequested: fc.option(podResources),
});

const containerSpec: fc.Arbitrary<ContainerSpecRecord> = fc.record(
  {
    name: text,
    metadata: fc.record({ name: text, attempt: fc.nat() }),
    sandboxId: id,
    image: text,
    imageId: text,
    imageRef: text,
    config: json,
    labels: map,
    annotations: map,
    logPath: text,
    logFile: fc.record({ root: text, relative: text }),
    dir: text,
    stateDir: text,
    runtimeHandler: text,
    runtimePath: text,
    stopSignal: text,
    tty: fc.boolean(),
    stdin: fc.boolean(),
    stdinOnce: fc.boolean(),
    createdAt: ns,
  },
  // Older records lack these two (container.types.ts): both shapes are valid.
  { requiredKeys: ['name', 'metadata', 'sandboxId', 'image', 'imageId', 'imageRef', 'config', 'labels', 'annotations', 'logPath', 'dir', 'runtimeHandler', 'runtimePath', 'stopSignal', 'tty', 'stdin', 'stdinOnce', 'createdAt'] },
);

export const containerContext: fc.Arbitrary<ContainerContext> = fc.record({
  id,
  spec: containerSpec,
  pid: fc.option(fc.nat()),
  pidStartTime: fc.option(text),
  startedAt: fc.option(ns),
  exit: fc.option(fc.record({ code: int, at: ns, reason: text, message: text })),
  stopTimeoutSec: fc.nat(),
  lastError: fc.option(fc.record({ code: fc.integer({ min: 1, max: 16 }), message: text })),
  resources: fc.option(json),
  podReady: fc.boolean(),
});

/**
 * Where a corruption must be caught. Inside an opaque value (the CRI config, resources, the CNI
 * result) anything goes, so nothing below one is touched; an entry of a free-keyed record may go
 * (a label less is a valid pod), and so may an optional field.
 */
const OPAQUE: Record<ActorKind, string[]> = {
  sandbox: ['network.result', 'resources.resources', 'resources.overhead', 'resourcesRequested.resources', 'resourcesRequested.overhead'],
  container: ['spec.config', 'resources'],
};
const RECORDS: Record<ActorKind, string[]> = {
  sandbox: ['spec.labels', 'spec.annotations', 'spec.sysctls', 'containerPhases'],
  container: ['spec.labels', 'spec.annotations'],
};
const OPTIONAL: Record<ActorKind, string[]> = { sandbox: [], container: ['spec.logFile', 'spec.stateDir'] };
/** Fields that take any JSON value: only their absence is wrong. */
const ANY: Record<ActorKind, string[]> = { sandbox: ['network.result'], container: [] };

interface Site {
  path: string[];
  /** Deleting it must be refused (a required field of one of our records). */
  required: boolean;
  /** Giving it a value of another type must be refused. */
  typed: boolean;
}

function sites(kind: ActorKind, value: unknown, path: string[] = []): Site[] {
  const here = path.join('.');
  if (OPAQUE[kind].includes(here) || value === null || typeof value !== 'object') return [];
  const parentIsFree = Array.isArray(value) || RECORDS[kind].includes(here);
  return Object.entries(value).flatMap(([k, v]) => {
    const child = [...path, k];
    const at = child.join('.');
    return [{ path: child, required: !parentIsFree && !OPTIONAL[kind].includes(at), typed: !ANY[kind].includes(at) }, ...sites(kind, v, child)];
  });
}

/** A JSON value of another type than `v`, that no field typed like `v` (or nullable) takes. */
function wrongType(v: unknown): unknown {
  if (typeof v === 'string') return 42;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return String(v);
  if (v === null) return true;
  return 7; // an object or an array
}

/** A copy of `context` with one field deleted or given a wrong type, and what was done. */
export function mutate(kind: ActorKind, context: object): fc.Arbitrary<{ context: unknown; what: string }> {
  const all = sites(kind, context);
  const deletable = all.filter((s) => s.required);
  const retype = fc.constantFrom(...all.filter((s) => s.typed)).map((s) => ({ site: s, del: false }));
  const del = fc.constantFrom(...deletable).map((s) => ({ site: s, del: true }));
  return fc.oneof(retype, del).map(({ site, del: isDelete }) => {
    const copy = JSON.parse(JSON.stringify(context)) as Record<string, unknown>;
    let parent: Record<string, unknown> = copy;
    for (const k of site.path.slice(0, -1)) parent = parent[k] as Record<string, unknown>;
    const last = site.path[site.path.length - 1] ?? '';
    if (isDelete) delete parent[last];
    else parent[last] = wrongType(parent[last]);
    return { context: copy, what: `${isDelete ? 'deleting' : 'retyping'} ${site.path.join('.')}` };
  });
}
