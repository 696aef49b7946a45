/**
 * What the inspector may show of an actor's context: everything but secrets. Env values often
 * come from Kubernetes Secrets, a secret or projected volume's host path names it, and auth
 * fields are credentials; each is replaced by a marker, keeping the key so a reader still sees
 * that it is set.
 */

export const REDACTED = '<redacted>';

/** Keys whose value is a credential wherever they appear. */
const SECRET_KEYS = new Set(['password', 'auth', 'identitytoken', 'registrytoken', 'token', 'secret', 'authorization']);
/** kubelet's secret-bearing volume plugins, as they appear in a mount's host path. */
const SECRET_VOLUME = /kubernetes\.io~(secret|projected|csi)/;

/** A deep copy of `value` with every secret replaced by REDACTED. */
export function redactSecrets<T>(value: T): T {
  return walk(value, '') as T;
}

function walk(value: unknown, key: string): unknown {
  if (Array.isArray(value)) {
    if (key === 'envs') return value.map(redactEnv);
    return value.map((v) => walk(v, ''));
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (SECRET_KEYS.has(k.toLowerCase()) && typeof v === 'string' && v !== '') out[k] = REDACTED;
      else if ((k === 'hostPath' || k === 'host_path') && typeof v === 'string' && SECRET_VOLUME.test(v)) out[k] = REDACTED;
      else out[k] = walk(v, k);
    }
    return out;
  }
  return value;
}

/** An env entry keeps its key; its value goes. */
function redactEnv(entry: unknown): unknown {
  if (!entry || typeof entry !== 'object') return REDACTED;
  const { key } = entry as { key?: unknown };
  return { key, value: REDACTED };
}
