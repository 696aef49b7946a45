/**
 * UpdatePodSandboxResources (issue 16, item 4): the pod's resources, plus its overhead, on the
 * pod's cgroup (its cgroup_parent), through the pod's actor (machines/sandbox.machine.ts UPDATING:
 * the request persisted first, the cgroup written by runtime/pod-cgroup.ts).
 *
 * The containers stay consistent with their pod: a running container whose memory limit, or CPU
 * quota per period, is above the pod's new one is lowered to it first, with UpdateContainerResources'
 * own path (runc update, the container's record), so that no container is promised more than
 * its pod has; the kernel also refuses a v1 pod quota below a child's.
 */
import { InvalidArgument, NotFound, Refused } from '../errors/catalogue.js';
import type { ContainerView } from '../actors/views.js';
import { checkResources } from '../runtime/container-spec.js';
import type { LinuxContainerResources } from '../runtime/cri-container-types.js';
import { podLimits, resourceInt, type PodLimits } from '../runtime/pod-cgroup.js';
import type { CriContext } from './context.js';
import { quote, requireId } from './validate.js';

type Resources = Record<string, unknown>;

/** The container's resources lowered to fit the pod's limits, or null when they already fit. */
export function fittedToPod(current: Resources, pod: PodLimits): Resources | null {
  const fitted: Resources = { ...current };
  const memory = resourceInt(current, 'memoryLimitInBytes');
  if (pod.memoryLimitInBytes > 0n && memory > pod.memoryLimitInBytes) fitted['memoryLimitInBytes'] = String(pod.memoryLimitInBytes);
  const quota = resourceInt(current, 'cpuQuota');
  const period = resourceInt(current, 'cpuPeriod') || 100_000n;
  const podPeriod = pod.cpuPeriod || 100_000n;
  // Compared per period, as the kernel compares them: quota / period.
  if (pod.cpuQuota > 0n && quota > 0n && quota * podPeriod > pod.cpuQuota * period) fitted['cpuQuota'] = String((pod.cpuQuota * period) / podPeriod);
  return fitted['memoryLimitInBytes'] === current['memoryLimitInBytes'] && fitted['cpuQuota'] === current['cpuQuota'] ? null : fitted;
}

/** What a container's cgroup has now: as UpdateContainerResources last set it, else as created. */
function currentResources(view: ContainerView): Resources {
  const created = (view.context.spec.config as { linux?: { resources?: Resources | null } | null }).linux?.resources ?? {};
  return view.context.resources ?? created;
}

export async function updatePodSandboxResources(req: { podSandboxId: string; overhead: Resources | null; resources: Resources | null }, ctx: CriContext) {
  const ref = requireId(req.podSandboxId, 'pod_sandbox_id');
  const id = ctx.supervisor.findSandbox(ref);
  const pod = id ? ctx.supervisor.view(id) : null;
  if (!id || !pod) throw new NotFound(`pod sandbox ${quote(ref)} not found`);
  if (!req.resources && !req.overhead) return {};
  for (const [field, r] of [['resources', req.resources], ['overhead', req.overhead]] as const) {
    if (!r) continue;
    try {
      checkResources(r as unknown as LinuxContainerResources);
    } catch (err) {
      throw err instanceof InvalidArgument ? new InvalidArgument(`UpdatePodSandboxResourcesRequest.${field}: ${err.message}`) : err;
    }
  }
  if (!pod.ready) throw new Refused(`pod sandbox ${id} is not ready (${pod.state}): its resources are applied only while it runs`);
  if (!pod.context.spec.cgroupParent) {
    throw new Refused(`pod sandbox ${id} has no cgroup of its own (it was run without linux.cgroup_parent): there is no pod cgroup to apply resources to; set each container's with UpdateContainerResources`);
  }
  const limits = podLimits(req.resources, req.overhead);
  for (const containerId of pod.context.containerIds) {
    const view = ctx.supervisor.containerView(containerId);
    if (view?.criState !== 'CONTAINER_RUNNING') continue;
    const fitted = fittedToPod(currentResources(view), limits);
    if (fitted) await ctx.containers.update(containerId, fitted, ctx.timeoutMs);
  }
  await ctx.sandboxes.updateResources(id, { resources: req.resources, overhead: req.overhead }, ctx.timeoutMs);
  return {};
}
