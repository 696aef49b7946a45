/**
 * The AppArmor profile a security context names. Localhost names a profile the node has loaded;
 * Unconfined is "unconfined"; RuntimeDefault gets none, since podchart does not ship an AppArmor
 * profile of its own yet (the container keeps the OCI runtime's default). By its syntax alone:
 * CreateContainer checks it in cri/ before anything is made (issue 13, item 2), and the create
 * effect uses it where the host has AppArmor.
 */
import { InvalidArgument } from '../errors/catalogue.js';
import { quote } from '../errors/quote.js';
import type { LinuxContainerSecurityContext } from './cri-container-types.js';

export function apparmorProfileName(sc: LinuxContainerSecurityContext | null | undefined): string | null {
  const profile = sc?.apparmor;
  if (profile) {
    switch (profile.profileType) {
      case 'RuntimeDefault':
        return null;
      case 'Unconfined':
        return 'unconfined';
      case 'Localhost': {
        const name = (profile.localhostRef ?? '').replace(/^localhost\//, '');
        if (name === '') throw new InvalidArgument('LinuxContainerSecurityContext.apparmor.localhost_ref is required for a Localhost profile');
        return name;
      }
      default:
        throw new InvalidArgument(`LinuxContainerSecurityContext.apparmor.profile_type ${quote(String(profile.profileType))} is not a SecurityProfile type: use RuntimeDefault, Unconfined or Localhost`);
    }
  }
  // The deprecated apparmor_profile spelling: "runtime/default", "localhost/<name>", "unconfined".
  const legacy = sc?.apparmorProfile ?? '';
  if (legacy === '' || legacy === 'runtime/default') return null;
  if (legacy === 'unconfined') return 'unconfined';
  if (legacy.startsWith('localhost/') && legacy.length > 'localhost/'.length) return legacy.slice('localhost/'.length);
  throw new InvalidArgument(`LinuxContainerSecurityContext.apparmor_profile ${quote(legacy)} is not runtime/default, unconfined or localhost/<name>`);
}
