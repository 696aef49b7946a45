/** CreateContainer: validate, resolve the pod and the image, let a new child of the pod's actor create it. */
import { join, posix } from 'node:path';
import { AlreadyExists, InvalidArgument, NotFound, Refused } from '../errors/catalogue.js';
import type { ContainerSpecRecord } from '../machines/container.types.js';
import type { ContainerConfig, LinuxContainerSecurityContext } from '../runtime/cri-container-types.js';
import { realLogDirectory, secureLogFile, type LogFile } from '../runtime/log-path.js';
import { nowNs } from '../actors/actor-util.js';
import type { CriContext } from './context.js';
import { imageConfig } from './image-view.js';
import { checkAbsolutePath, checkText, MAX_PATH_BYTES, quote, checkStringMap, MAX_ANNOTATIONS_BYTES, MAX_LABELS_BYTES, requireId, requireImageRef, requireString } from './validate.js';
import { checkContainerConfig } from './container-validate.js';

/** seed 002: k8s_<container>_<pod>_<namespace>_<uid>_<attempt>. */
export function containerName(container: string, pod: { name: string; namespace: string; uid: string }, attempt: number): string {
  return ['k8s', container, pod.name, pod.namespace, pod.uid, String(attempt)].join('_');
}

/**
 * log_path is relative to the pod's log_directory and must stay inside it: by its text here (no
 * leading "/", no "..", a file name last), by what is on disk in `logFileBeneath`.
 */
export function checkLogPath(logPath: string): string {
  if (logPath === '') return logPath;
  checkText(logPath, 'ContainerConfig.log_path', MAX_PATH_BYTES);
  if (logPath.startsWith('/')) throw new InvalidArgument(`ContainerConfig.log_path must be relative to the pod's log_directory, got ${quote(logPath)}`);
  if (logPath.split('/').includes('..')) throw new InvalidArgument(`ContainerConfig.log_path must not contain "..", got ${quote(logPath)}`);
  const normalized = posix.normalize(logPath);
  if (normalized === '.' || normalized.endsWith('/')) throw new InvalidArgument(`ContainerConfig.log_path must name a file, got ${quote(logPath)}`);
  return normalized;
}

/**
 * The log file beneath the pod's log_directory, refused (INVALID_ARGUMENT, before any actor or
 * record exists) when a symbolic link or a non-directory below the directory would carry it
 * elsewhere, or the file is there and is not a regular file. Nothing is made here: the create
 * effect makes the file, checking again (issue 11, item 5).
 */
async function logFileBeneath(logDirectory: string, logPath: string): Promise<LogFile | null> {
  if (!logPath || !logDirectory) return null;
  const file = { root: await realLogDirectory(logDirectory), relative: logPath };
  await secureLogFile(file, 'check');
  return file;
}

/**
 * A group alone names no user to run as: refused, as containerd refuses it (generateUserString:
 * "user group is specified without user") and critest expects, before any actor exists.
 */
function checkRunAsGroup(sc: LinuxContainerSecurityContext | null | undefined): void {
  if (sc?.runAsGroup && !sc.runAsUser && !sc.runAsUsername) {
    throw new InvalidArgument(`LinuxContainerSecurityContext.run_as_group (${sc.runAsGroup.value}) requires run_as_user or run_as_username`);
  }
}

/** CRI signal enum name ("SIGNAL_SIGTERM", "SIGNAL_SIGRTMINPLUS1") → what runc kill takes. */
function stopSignal(config: ContainerConfig, imageSignal: string | undefined): string {
  const fromConfig = String(config.stopSignal ?? '');
  if (fromConfig && fromConfig !== 'SIGNAL_RUNTIME_DEFAULT') {
    return fromConfig.replace(/^SIGNAL_/, '').replace('PLUS', '+').replace('MINUS', '-');
  }
  return imageSignal || 'SIGTERM';
}

/**
 * A TARGET pid namespace (ephemeral containers, `kubectl debug --target`) is a running container
 * of the same pod (issue 12, item 6), named by its full id in what is recorded: its namespace is
 * pinned at create, and a container of another pod, or one that has exited, has none to share.
 */
function checkPidTarget(config: ContainerConfig, podId: string, ctx: CriContext): void {
  const options = config.linux?.securityContext?.namespaceOptions;
  if (options?.pid !== 'TARGET') return;
  const ref = requireId(options.targetId, 'NamespaceOption.target_id');
  const id = ctx.supervisor.findContainer(ref);
  const target = id ? ctx.supervisor.containerView(id) : null;
  if (!id || !target) throw new NotFound(`NamespaceOption.target_id: container ${quote(ref)} not found`);
  if (target.context.spec.sandboxId !== podId) {
    throw new InvalidArgument(`NamespaceOption.target_id: container ${id} belongs to another pod sandbox (${target.context.spec.sandboxId}); a TARGET must be in the same pod`);
  }
  if (target.state !== 'RUNNING') {
    throw new Refused(`NamespaceOption.target_id: container ${id} is ${target.state}, not running: it has no pid namespace to share`);
  }
  options.targetId = id;
}

export async function createContainer(req: { podSandboxId: string; config: ContainerConfig | null }, ctx: CriContext) {
  const podRef = requireId(req.podSandboxId, 'pod_sandbox_id');
  const config = req.config;
  if (!config) throw new InvalidArgument('CreateContainerRequest.config is required');
  const name = requireString(config.metadata?.name, 'ContainerConfig.metadata.name');
  const imageRef = requireImageRef(config.image?.image, 'ContainerConfig.image.image');
  checkStringMap(config.labels ?? {}, 'ContainerConfig.labels', MAX_LABELS_BYTES);
  checkStringMap(config.annotations ?? {}, 'ContainerConfig.annotations', MAX_ANNOTATIONS_BYTES);
  const logPath = checkLogPath(config.logPath ?? '');
  checkRunAsGroup(config.linux?.securityContext);
  checkContainerConfig(config);
  for (const [i, m] of (config.mounts ?? []).entries()) {
    checkAbsolutePath(m.containerPath, `ContainerConfig.mounts[${i}].container_path`, false);
    checkAbsolutePath(m.hostPath, `ContainerConfig.mounts[${i}].host_path`, false);
  }
  for (const [i, d] of (config.devices ?? []).entries()) {
    checkAbsolutePath(d.containerPath, `ContainerConfig.devices[${i}].container_path`, false);
    checkAbsolutePath(d.hostPath, `ContainerConfig.devices[${i}].host_path`, false);
  }
  const podId = ctx.supervisor.findSandbox(podRef);
  const pod = podId ? ctx.supervisor.view(podId) : null;
  if (!podId || !pod) throw new NotFound(`pod sandbox ${quote(podRef)} not found`);
  checkPidTarget(config, podId, ctx);
  // The one await before create(): from the image and name look-ups to the reservation, none.
  const logFile = await logFileBeneath(pod.context.spec.logDirectory, logPath);
  const image = ctx.images.find(imageRef);
  if (!image) throw new NotFound(`image ${quote(imageRef)} is not present on this node: pull it first`);
  const attempt = config.metadata?.attempt ?? 0;
  const fullName = containerName(name, pod.context.spec.metadata, attempt);
  const holder = ctx.supervisor.registry.holderOf(fullName);
  if (holder) throw new AlreadyExists(`container name "${fullName}" is already reserved for ${holder.kind} ${holder.id}; remove it first or use another attempt number`);
  const id = ctx.supervisor.registry.newId();
  const spec: ContainerSpecRecord = {
    name: fullName,
    metadata: { name, attempt },
    sandboxId: podId,
    image: imageRef,
    imageId: image.id,
    imageRef: image.repoDigests[0] ?? image.id,
    config: config as unknown as Record<string, unknown>,
    labels: config.labels ?? {},
    annotations: config.annotations ?? {},
    logPath: logFile ? join(pod.context.spec.logDirectory, logFile.relative) : '',
    ...(logFile ? { logFile } : {}),
    dir: join(ctx.config.rootDir, 'containers', id),
    stateDir: join(ctx.config.runDir, 'containers', id),
    runtimeHandler: pod.context.spec.runtimeHandler,
    runtimePath: pod.context.spec.runtimePath,
    stopSignal: stopSignal(config, imageConfig(image).config?.StopSignal),
    tty: config.tty ?? false,
    stdin: config.stdin ?? false,
    stdinOnce: config.stdinOnce ?? false,
    createdAt: nowNs(),
  };
  await ctx.containers.create(id, spec, ctx.timeoutMs);
  return { containerId: id };
}
