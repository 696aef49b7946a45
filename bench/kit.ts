/**
 * The critest conformance kit (../shared/critest and ../shared/cri-tools, see its README): its
 * loopback registry serves containerd's pause image and critest's images, and its cri-tools hold
 * the stock critest. Found beside the repository, else at the workplace's /work/shared.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** The kit's registry, which serves registry.k8s.io's and gcr.io's paths. */
export const KIT_REGISTRY = 'http://127.0.0.1:5000';

/** The folder holding critest/ and cri-tools/, or null when there is no kit. */
export function findKit(repo: string): string | null {
  return [join(repo, '..', 'shared'), '/work/shared'].find((d) => existsSync(join(d, 'critest', 'critest.sh')) && existsSync(join(d, 'cri-tools', 'critest'))) ?? null;
}

/** Installs what the kit needs (when missing), starts its registry and pushes its images. */
export function startKitRegistry(repo: string, kitRoot: string): void {
  const kit = join(kitRoot, 'critest');
  execFileSync('bash', ['-c', `source "${repo}/scripts/apt-ensure.sh" && apt_ensure bench docker-registry skopeo umoci jq gcc libc6-dev curl && bash "${kit}/registry/start.sh" && bash "${kit}/images/build-and-push.sh" >/dev/null`], { stdio: 'inherit' });
}
