/**
 * What a CRI call's log line may carry: the fields that identify the call (image name, pod and
 * container metadata, ids), one function per method, like the handler table in server.ts. A method
 * not in the table logs none of its request. Never the rest: PullImage's AuthConfig, a container's
 * envs, command, args and annotations (kubectl's last-applied-configuration holds a pod's literal
 * env values), ExecSync's cmd (probes such as `redis-cli -a <password> ping`) — issue 11, item 2.
 * The CRI proto marks the AuthConfig secrets `debug_redact`; env values come from Kubernetes Secrets.
 *
 * LOG_FORMATTERS is the second net, given to pino where the root logger is built: should a
 * request, a spec or credentials ever be logged whole again, their secret fields are censored.
 */

import type { Bindings, ChildLoggerOptions, Logger } from 'pino';

/** Pod and container metadata: names and uids, never labels or annotations. */
interface Metadata {
  name?: string;
  namespace?: string;
  uid?: string;
  attempt?: number;
}

// The requests as proto-loader decodes them: only the fields read here are typed.
interface Req {
  podSandboxId?: string;
  containerId?: string;
  runtimeHandler?: string;
  timeout?: string | number;
  verbose?: boolean;
  tty?: boolean;
  stdin?: boolean;
  cmd?: string[];
  config?: { metadata?: Metadata | null; image?: { image?: string } | null } | null;
  sandboxConfig?: { metadata?: Metadata | null } | null;
  image?: { image?: string } | null;
  auth?: { serverAddress?: string; username?: string; password?: string; auth?: string; identityToken?: string; registryToken?: string } | null;
  runtimeConfig?: { networkConfig?: { podCidr?: string } | null } | null;
}

type Fields = Record<string, unknown>;

function metadata(m: Metadata | null | undefined): Fields | undefined {
  if (!m) return undefined;
  const out: Fields = {};
  for (const key of ['name', 'namespace', 'uid', 'attempt'] as const) if (m[key] !== undefined && m[key] !== '') out[key] = m[key];
  return out;
}

const container = (r: Req): Fields => ({ containerId: r.containerId });
const sandbox = (r: Req): Fields => ({ podSandboxId: r.podSandboxId });
const image = (r: Req): Fields => ({ image: r.image?.image });

/**
 * The program of an exec, not its arguments: a path names no secret, an argument may be one.
 * The streaming server logs an exec session the same way.
 */
const exec = (r: Req): Fields => ({ containerId: r.containerId, program: r.cmd?.[0], args: Math.max(0, (r.cmd?.length ?? 0) - 1) });

export const CALL_FIELDS: Record<string, (req: Req) => Fields> = {
  Status: (r) => ({ verbose: r.verbose }),
  UpdateRuntimeConfig: (r) => ({ podCidr: r.runtimeConfig?.networkConfig?.podCidr }),
  RunPodSandbox: (r) => ({ pod: metadata(r.config?.metadata), runtimeHandler: r.runtimeHandler || undefined }),
  StopPodSandbox: sandbox,
  RemovePodSandbox: sandbox,
  PodSandboxStatus: sandbox,
  PodSandboxStats: sandbox,
  CreateContainer: (r) => ({ podSandboxId: r.podSandboxId, container: metadata(r.config?.metadata), image: r.config?.image?.image, pod: metadata(r.sandboxConfig?.metadata) }),
  StartContainer: container,
  StopContainer: (r) => ({ containerId: r.containerId, timeout: r.timeout }),
  RemoveContainer: container,
  ContainerStatus: container,
  ContainerStats: container,
  UpdateContainerResources: container,
  UpdatePodSandboxResources: sandbox,
  CheckpointContainer: container,
  CheckpointPod: sandbox,
  ReopenContainerLog: container,
  ExecSync: (r) => ({ ...exec(r), timeout: r.timeout }),
  Exec: (r) => ({ ...exec(r), tty: r.tty, stdin: r.stdin }),
  Attach: (r) => ({ containerId: r.containerId, tty: r.tty, stdin: r.stdin }),
  // Whether credentials came, and for which host; never what they are.
  PullImage: (r) => ({
    image: r.image?.image,
    withCredentials: Boolean(r.auth && (r.auth.username || r.auth.password || r.auth.auth || r.auth.identityToken || r.auth.registryToken)),
    serverAddress: r.auth?.serverAddress || undefined,
  }),
  ImageStatus: image,
  RemoveImage: image,
};

/** The identifying fields of one call; nothing for a method the table does not list. */
export function callFields(method: string, request: unknown): Fields {
  const pick = CALL_FIELDS[method];
  if (!pick || typeof request !== 'object' || request === null) return {};
  return pick(request);
}

/** Fields that hold a secret wherever they appear. */
const SECRET_KEYS = ['auth', 'creds', 'credentials', 'password', 'identityToken', 'registryToken', 'authorization', 'envs', 'cmd'];
/** Config fields that may hold secrets: kubelet expands $(VAR) into command and args; annotations, see above. */
const CONFIG_KEYS = ['config.command', 'config.args', 'config.annotations', 'sandboxConfig.annotations'];

const CENSOR = '[redacted]';
const SECRET = new Set(SECRET_KEYS);
/** The CONFIG_KEYS as parent → children. */
const CONFIG_SECRET = new Map<string, Set<string>>();
for (const path of CONFIG_KEYS) {
  const [parent = '', child = ''] = path.split('.');
  CONFIG_SECRET.set(parent, (CONFIG_SECRET.get(parent) ?? new Set()).add(child));
}
/** How far below the top a secret key is still looked for: `request.config.envs` is two levels down. */
const CENSOR_DEPTH = 2;

/**
 * A copy of a log object (or a child's bindings) with every secret field at the top or one or two
 * levels down replaced by "[redacted]": a request logged whole (`request.auth`,
 * `request.config.envs`) and a spec or credentials logged under any name (`spec.config.envs`,
 * `ctx.creds`). The object itself is never changed; one without secrets is returned as it is.
 *
 * Hand-written instead of pino's `redact` (@pinojs/redact), on purpose: the same rule as wildcard
 * paths (`k`, `*.k`, `*.*.k`) cost ~34 µs per line there against ~3 µs without redaction, measured
 * on the transition line that every actor writes (a 200-pod restore writes about 1200 of them).
 * This walk visits the few keys a log line has.
 */
export function censorSecrets<T>(value: T): T {
  return censorAt(value, 0);
}

function censorAt<T>(value: T, depth: number): T {
  if (typeof value !== 'object' || value === null || depth > CENSOR_DEPTH || ArrayBuffer.isView(value)) return value;
  const source = value as Record<string, unknown>;
  let copy: Record<string, unknown> | null = null;
  for (const key of Object.keys(source)) {
    const field = source[key];
    let next = SECRET.has(key) ? CENSOR : censorAt(field, depth + 1);
    const children = CONFIG_SECRET.get(key);
    if (children && typeof next === 'object' && next !== null) next = censorKeys(next as Record<string, unknown>, children);
    if (next === field) continue;
    copy ??= copyOf(source);
    copy[key] = next;
  }
  return (copy ?? value) as T;
}

function censorKeys(source: Record<string, unknown>, keys: ReadonlySet<string>): Record<string, unknown> {
  let copy: Record<string, unknown> | null = null;
  for (const key of keys) {
    if (!(key in source)) continue;
    copy ??= copyOf(source);
    copy[key] = CENSOR;
  }
  return copy ?? source;
}

/** A shallow copy that keeps an array an array, and an Error an Error with its message and stack. */
function copyOf(source: Record<string, unknown>): Record<string, unknown> {
  if (Array.isArray(source)) return [...source] as unknown as Record<string, unknown>;
  return Object.defineProperties(Object.create(Object.getPrototypeOf(source) as object | null) as Record<string, unknown>, Object.getOwnPropertyDescriptors(source));
}

/** pino `formatters`: every line's fields pass censorSecrets (a child's bindings: censorChildBindings). */
export const LOG_FORMATTERS = {
  log: (object: Record<string, unknown>): Record<string, unknown> => censorSecrets(object),
};

/**
 * Makes every child of this root logger, and theirs, bind censored fields. pino runs
 * `formatters.bindings` on the root's base only, never on a child's bindings, and has no other
 * hook for them; a child is created from its parent's prototype, so this one method serves all.
 */
export function censorChildBindings(root: Logger): Logger {
  // pino's child() is generic over custom levels; this wrapper passes them through untouched.
  type ChildFn = (this: unknown, bindings: Bindings, options?: ChildLoggerOptions) => unknown;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with each child's own `this`
  const child = root.child as unknown as ChildFn;
  const censoredChild: ChildFn = function (bindings, options) {
    return child.call(this, censorSecrets(bindings), options);
  };
  root.child = censoredChild as unknown as Logger['child'];
  return root;
}
