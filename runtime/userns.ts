/**
 * User namespaces (LinuxSandboxSecurityContext.namespace_options.userns_options, issue 16 item 6):
 * refused, with the reason, where the pod asks for one of its own. A pod in a user namespace
 * needs its root filesystem and volumes mapped to its ids, which takes idmapped mounts: runc has
 * them from 1.2 (`runc features` lists the "idmap" mount option), and podchart does not make them
 * yet. Without them the pod would run with every file owned by an unmapped id, or, worse, with
 * no user namespace at all and the host's root: so the request is refused, never ignored.
 * Status says so too (user_namespaces: false for every handler), and kubelet, seeing that,
 * refuses `hostUsers: false` pods before they reach the runtime.
 */
import { InvalidArgument, Unsupported } from '../errors/catalogue.js';
import type { NamespaceOption } from './cri-container-types.js';

export function checkUserNamespace(options: Pick<NamespaceOption, 'usernsOptions'> | null | undefined, field: string): void {
  const userns = options?.usernsOptions;
  if (!userns || userns.mode === 'NODE') return;
  if (userns.mode !== 'POD') {
    throw new InvalidArgument(`${field}.userns_options.mode must be NODE (the host's user namespace) or POD (one of the pod's own), got ${String(userns.mode)}`);
  }
  throw new Unsupported(
    `${field}.userns_options asks for a user namespace of the pod's own (mode POD), which this node does not support: ` +
      'the pod\'s root filesystem and volumes would need idmapped mounts (runc 1.2 or newer, whose `runc features` lists "idmap"), and podchart does not create them yet. ' +
      'Run the pod in the host\'s user namespace (hostUsers: true, mode NODE); Status reports user_namespaces as unsupported for every runtime handler',
  );
}
