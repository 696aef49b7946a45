/**
 * What a CRI call's log line may carry: the fields that identify the call (image name, pod and
 * container metadata, ids), one function per method, like the handler table in server.ts. A method
 * not in the table logs none of its request. Never the rest: PullImage's AuthConfig, a container's
 * envs, command, args and annotations (kubectl's last-applied-configuration holds a pod's literal
 * env values), ExecSync's cmd (probes such as `redis-cli -a <password> ping`) — issue 11, item 2.
 * The CRI proto marks the AuthConfig secrets `debug_redact`; env values come from Kubernetes Secrets.
 *
 * LOG_REDACT is the second net, for pino's `redact` where the root logger is built: should a
 * request, a spec or credentials ever be logged whole again, these paths are censored.
 */

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

/**
 * pino `redact` paths: each of those at the top of a log object and one or two levels down, which
 * covers a request logged whole (`request.auth`, `request.config.envs`) and a spec or credentials
 * logged under any name (`spec.config.envs`, `ctx.creds`).
 */
export const LOG_REDACT = {
  paths: [...SECRET_KEYS, ...CONFIG_KEYS].flatMap((k) => [k, `*.${k}`, `*.*.${k}`]),
  censor: '[redacted]',
};
