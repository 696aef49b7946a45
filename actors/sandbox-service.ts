/**
 * Pod operations for the CRI handlers, beside container-service.ts: each one finds the pod's
 * actor, sends one event, and waits until the chart has settled and committed. What a pod's stop
 * or removal does to its containers is the chart's business (machines/sandbox.machine.ts).
 */
import type { PodResources, SandboxEvent, SandboxSpec } from '../machines/sandbox.types.js';
import { NotFound } from '../errors/catalogue.js';
import { actorFailure, request, settle, stateName } from './actor-util.js';
import type { SandboxSnapshot, Supervisor } from './supervisor.js';

export class SandboxService {
  constructor(private readonly supervisor: Supervisor) {}

  /**
   * RunPodSandbox: the intent persisted, the actor spawned, CREATE, and wait until creation has
   * settled. On failure the chart has rolled back (or left a NOTREADY pod).
   */
  async run(spec: SandboxSpec, id: string, timeoutMs: number): Promise<string> {
    this.supervisor.assertServing();
    const actor = this.supervisor.spawnSandbox(spec, id);
    actor.send({ type: 'CREATE' });
    await this.supervisor.assertCommitted(`sandbox:${id}`);
    const snapshot = await settle<SandboxSnapshot>(actor, timeoutMs, `pod sandbox ${id}`);
    await this.supervisor.commitChecks(`sandbox:${id}`).settled();
    if (snapshot.matches('RUNNING')) return id;
    const left = snapshot.status === 'done' ? 'everything it created was removed' : 'it is left NOTREADY for removal';
    throw actorFailure(`pod sandbox ${spec.name} could not be started`, snapshot.context.lastError, stateName(snapshot), ` (${left})`);
  }

  /** StopPodSandbox: idempotent; resolves once the pod is stopped and torn down. */
  async stop(id: string, timeoutMs: number, graceSec: number): Promise<void> {
    const snapshot = await this.request(id, { type: 'STOP', timeoutSec: graceSec }, timeoutMs);
    // Removed meanwhile (a RemovePodSandbox in flight): a stop of what is gone succeeds.
    if (snapshot.status === 'done' || (snapshot.matches('STOPPED') && snapshot.context.tornDown)) return;
    throw actorFailure(`stopping pod sandbox ${id} failed`, snapshot.context.lastError, stateName(snapshot));
  }

  /**
   * RemovePodSandbox: its containers first, then the pod; resolves once everything is gone.
   * Concurrent calls share one removal (the chart joins them): each gets its outcome.
   */
  async remove(id: string, timeoutMs: number): Promise<void> {
    const snapshot = await this.request(id, { type: 'REMOVE' }, timeoutMs);
    if (snapshot.status === 'done') return;
    throw actorFailure(`removing pod sandbox ${id} failed`, snapshot.context.lastError, stateName(snapshot));
  }

  /** UpdatePodSandboxResources: resolves once the pod's cgroup has them (and the pod is RUNNING again). */
  async updateResources(id: string, resources: PodResources, timeoutMs: number): Promise<void> {
    const snapshot = await this.request(id, { type: 'UPDATE_RESOURCES', resources }, timeoutMs);
    if (snapshot.matches('RUNNING') && snapshot.context.lastError === null) return;
    throw actorFailure(`updating the resources of pod sandbox ${id} failed`, snapshot.context.lastError, stateName(snapshot));
  }

  private request(id: string, event: SandboxEvent, timeoutMs: number): Promise<SandboxSnapshot> {
    this.supervisor.assertServing();
    const actor = this.supervisor.sandboxActor(id);
    if (!actor) throw new NotFound(`pod sandbox ${id} not found`);
    // Work in flight (the `busy` tag) is waited for, so a refusal is from an idle state.
    return request<SandboxSnapshot>(actor, event, timeoutMs, `pod sandbox ${id}`, (state) => `its state is ${state}`, this.supervisor.commitChecks(`sandbox:${id}`));
  }
}
