/**
 * Container operations for the CRI handlers: each one finds the container's actor (a child of its
 * pod's actor), sends one event, and waits until the chart has settled and committed.
 */
import type { ContainerContext, ContainerSpecRecord } from '../machines/container.types.js';
import { NotFound, Refused } from '../errors/catalogue.js';
import type { ContainerConfig } from '../runtime/cri-container-types.js';
import { actorFailure, request, settle, stateName } from './actor-util.js';
import type { ContainerActor, ContainerSnapshot, Supervisor } from './supervisor.js';

/** Why an idle container refuses an event (work in flight is waited for: actor-util `request`). */
function why(state: string): string {
  switch (state) {
    case 'REMOVE_FAILED':
      return 'its removal failed; RemoveContainer retries it';
    case 'EXITED':
      return 'it has exited, and a container is never restarted: create a new one';
    case 'RUNNING':
      return 'it is already running';
    default:
      return `its state is ${state}`;
  }
}

export class ContainerService {
  constructor(private readonly supervisor: Supervisor) {}

  /** CreateContainer: reserve the name, persist the intent, spawn under the pod, CREATE, wait. */
  async create(id: string, spec: ContainerSpecRecord, timeoutMs: number): Promise<string> {
    this.supervisor.assertServing();
    const pod = this.supervisor.sandboxActor(spec.sandboxId);
    if (!pod) throw new NotFound(`pod sandbox ${spec.sandboxId} not found`);
    const event = { type: 'ADD_CONTAINER' as const, id, input: { id, spec } };
    if (!pod.getSnapshot().can(event)) {
      throw new Refused(`pod sandbox ${spec.sandboxId} is not ready (${stateName(pod.getSnapshot())}): containers can be created only in a ready pod`);
    }
    const initial: ContainerContext = {
      id, spec, pid: null, pidStartTime: null, startedAt: null, exit: null, stopTimeoutSec: 10, lastError: null, resources: null, podReady: false,
    };
    this.supervisor.store.insertContainer(id, spec.sandboxId, spec.name, 'UNKNOWN', initial);
    this.supervisor.registry.add({ id, name: spec.name, kind: 'container' });
    const actor = this.supervisor.spawnContainer(spec.sandboxId, event);
    actor.send({ type: 'CREATE' });
    await this.supervisor.assertCommitted(`container:${id}`);
    const snapshot = await settle<ContainerSnapshot>(actor, timeoutMs, `container ${id}`);
    await this.supervisor.commitChecks(`container:${id}`).settled();
    if (snapshot.matches('CREATED')) return id;
    throw actorFailure(`container ${spec.name} could not be created`, snapshot.context.lastError, stateName(snapshot), ' (everything it made was removed)');
  }

  async start(id: string, timeoutMs: number): Promise<void> {
    // A container joins its pod's namespaces through the pause process: in a pod that is not
    // running, that pid may be gone, or reused by another process (issue 12, item 6). The chart
    // refuses START then (its podReady guard); this says why.
    const notReady = (state: string): string => {
      const view = this.supervisor.containerView(id);
      const podId = view?.context.spec.sandboxId ?? '';
      const pod = this.supervisor.sandboxActor(podId)?.getSnapshot();
      if (state !== 'CREATED' || !view || view.context.podReady || !pod) return why(state);
      return `its pod sandbox ${podId} is not ready (${stateName(pod)}); containers start only in a ready pod`;
    };
    // A TARGET pid namespace: its pin outlives the target, but a namespace whose first
    // process has exited takes no new one.
    const target = this.targetOf(id);
    if (target && !this.supervisor.containerActor(target)?.getSnapshot().matches('RUNNING')) {
      throw new Refused(`cannot start container ${id}: the container whose pid namespace it shares (${target}) is no longer running`);
    }
    const snapshot = await this.request(id, { type: 'START' }, timeoutMs, notReady);
    if (snapshot.matches('RUNNING') || (snapshot.matches('EXITED') && snapshot.context.exit?.reason !== 'StartError')) return;
    const failure = snapshot.context.lastError?.message ?? stateName(snapshot);
    // The runtime's own words for a command the image does not have (runc: `exec: "x": executable
    // file not found in $PATH`, or `stat /x: no such file or directory`): the request's fault, and
    // one a person can fix, not an internal error (issue 12, item 14).
    // runc's logfmt escapes the quotes: `exec: \"x\": …`.
    const missing = /exec: \\?"([^"\\]{0,256})\\?": (executable file not found|stat [^:]{0,300}: no such file or directory)/.exec(failure);
    if (missing) {
      throw new Refused(`starting container ${id} failed: its command ${JSON.stringify(missing[1])} is not in the image (${missing[2]}): set ContainerConfig.command to a program the image has`);
    }
    throw actorFailure(`starting container ${id} failed`, snapshot.context.lastError, stateName(snapshot));
  }

  /** The container whose pid namespace this one joins (namespace_options.pid TARGET), or null. */
  private targetOf(id: string): string | null {
    const config = this.supervisor.containerView(id)?.context.spec.config as unknown as ContainerConfig | undefined;
    const options = config?.linux?.securityContext?.namespaceOptions;
    return options?.pid === 'TARGET' && options.targetId ? options.targetId : null;
  }

  /** StopContainer: idempotent; resolves once the container has exited. */
  async stop(id: string, timeoutSec: number, timeoutMs: number): Promise<void> {
    const snapshot = await this.request(id, { type: 'STOP', timeoutSec }, timeoutMs);
    // Removed meanwhile (a RemoveContainer in flight): a stop of what is gone succeeds.
    if (snapshot.status === 'done' || snapshot.matches('EXITED') || snapshot.matches('CREATED')) return;
    throw actorFailure(`stopping container ${id} failed`, snapshot.context.lastError, stateName(snapshot));
  }

  /**
   * RemoveContainer: forced when running; resolves once it is gone. Concurrent calls share one
   * removal: each resolves when it is gone, or rejects with the same error (REMOVE_FAILED).
   */
  async remove(id: string, timeoutMs: number): Promise<void> {
    const snapshot = await this.request(id, { type: 'REMOVE' }, timeoutMs);
    if (snapshot.status === 'done') return;
    throw actorFailure(`removing container ${id} failed`, snapshot.context.lastError, stateName(snapshot));
  }

  async update(id: string, resources: Record<string, unknown>, timeoutMs: number): Promise<void> {
    const snapshot = await this.request(id, { type: 'UPDATE', resources }, timeoutMs);
    if (snapshot.context.lastError === null && snapshot.matches('RUNNING')) return;
    throw actorFailure(`updating container ${id} failed`, snapshot.context.lastError, stateName(snapshot));
  }

  private request(id: string, event: Parameters<ContainerActor['send']>[0], timeoutMs: number, whyNot = why): Promise<ContainerSnapshot> {
    this.supervisor.assertServing();
    const actor = this.supervisor.containerActor(id);
    if (!actor) throw new NotFound(`container ${id} not found`);
    return request<ContainerSnapshot>(actor, event, timeoutMs, `container ${id}`, whyNot, this.supervisor.commitChecks(`container:${id}`));
  }
}
