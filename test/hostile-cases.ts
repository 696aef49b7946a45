/**
 * The hostile-input campaign of issue 12 (items 10, 11, 13), as data: what each request changes
 * in a valid config, and the refusal it must get. test/hostile-input.e2e runs them for their codes
 * and messages; `npm run soak` runs them for what each one costs the daemon's event loop.
 */
export type HostileCase = [what: string, override: Record<string, unknown>, refusal: RegExp];

export const MIB = 'a'.repeat(1 << 20);
const kv = (key: string, value: string | Buffer = 'v'): { key: string; value: Buffer } => ({ key, value: Buffer.from(value) });
const resources = (r: Record<string, unknown>): Record<string, unknown> => ({ linux: { resources: r } });

/** CreateContainer config overrides, each refused with INVALID_ARGUMENT and a message matching the pattern. */
export const containerCases: HostileCase[] = [
  ['20 000 envs', { envs: Array.from({ length: 20_000 }, (_, i) => kv(`K${i}`)) }, /envs has 20000 entries; the limit is 10000/],
  ['a 1 MiB env value', { envs: [kv('BIG', MIB)] }, /envs\[0\] is \d+ bytes/],
  ['an env with a NUL', { envs: [kv('A', 'x\0y')] }, /envs\[0\] contains a NUL/],
  ['a 1 MiB command word', { command: [MIB] }, /command\[0\] is \d+ bytes/],
  ['2 MB of args', { args: Array.from({ length: 9000 }, () => 'b'.repeat(200)) }, /total \d+ bytes; the limit is 1048576/],
  ['a 1 MiB name', { metadata: { name: MIB } }, /metadata\.name is \d+ bytes; the limit is 253 \("a{20}/],
  ['a name with a newline', { metadata: { name: 'c\nd' } }, /metadata\.name must not contain control characters/],
  ['a relative working_dir', { workingDir: 'tmp' }, /working_dir must be an absolute path/],
  ['mount propagation 99', { mounts: [{ containerPath: '/m', hostPath: '/tmp', propagation: 99 }] }, /mounts\[0\]\.propagation "99" is not a MountPropagation/],
  ['a mount onto /proc/self', { mounts: [{ containerPath: '/proc/self', hostPath: '/tmp' }] }, /container_path "\/proc\/self" is in \/proc, where the runtime mounts only over/],
  ['2000 mounts', { mounts: Array.from({ length: 2000 }, (_, i) => ({ containerPath: `/m${i}`, hostPath: '/tmp' })) }, /mounts has 2000 entries; the limit is 1024/],
  ['a 1 MiB mount path', { mounts: [{ containerPath: `/${MIB}`, hostPath: '/tmp' }] }, /container_path is \d+ bytes; the limit is 4096/],
  ['2000 devices', { devices: Array.from({ length: 2000 }, () => ({ containerPath: '/dev/null', hostPath: '/dev/null', permissions: 'r' })) }, /devices has 2000 entries/],
  ['memory -5', resources({ memoryLimitInBytes: -5 }), /memory_limit_in_bytes must be zero \(unset\) or more, got -5/],
  ['oom_score_adj 5000', resources({ oomScoreAdj: 5000 }), /oom_score_adj must be between -1000 and 1000, got 5000/],
  ['cpuset_cpus "junk"', resources({ cpusetCpus: 'junk' }), /cpuset_cpus must be a CPU or memory-node list such as "0-3,6", got "junk"/],
  ['a 1 MiB log_path', { logPath: MIB }, /log_path is \d+ bytes/],
  ['a 1 MiB image', { image: { image: MIB } }, /image references are at most 4096/],
  // Checked in cri/, before any actor (issue 13, item 2):
  ['an unknown capability', { linux: { securityContext: { capabilities: { addCapabilities: ['NET_NOPE'] } } } }, /capabilities\.add_capabilities\[0\]: unknown capability "NET_NOPE"/],
  ['an unknown dropped capability', { linux: { securityContext: { capabilities: { dropCapabilities: ['CAP_FLY'] } } } }, /capabilities\.drop_capabilities\[0\]: unknown capability "CAP_FLY"/],
  ['a relative seccomp localhost_ref', { linux: { securityContext: { seccomp: { profileType: 'Localhost', localhostRef: 'prof.json' } } } }, /seccomp\.localhost_ref must be an absolute path without "\.\."/],
  ['a seccomp_profile_path of no known form', { linux: { securityContext: { seccompProfilePath: 'strict' } } }, /seccomp_profile_path "strict" is not runtime\/default, unconfined or localhost\/<path>/],
  ['an apparmor Localhost profile with no name', { linux: { securityContext: { apparmor: { profileType: 'Localhost', localhostRef: '' } } } }, /apparmor\.localhost_ref is required for a Localhost profile/],
];

/** PodSandboxConfig overrides, each refused the same way. */
export const podCases: HostileCase[] = [
  ['a NUL in the name', { metadata: { name: 'p\0q', namespace: 'e2e', uid: 'u1' } }, /metadata\.name must not contain control characters/],
  ['a NUL in the namespace', { metadata: { name: 'p', namespace: 'e2e\0', uid: 'u2' } }, /metadata\.namespace must not contain control characters/],
  ['a NUL in the uid', { metadata: { name: 'p', namespace: 'e2e', uid: 'u\x003' } }, /metadata\.uid must not contain control characters/],
  ['a 1 MiB name', { metadata: { name: MIB, namespace: 'e2e', uid: 'u4' } }, /metadata\.name is \d+ bytes; the limit is 253/],
  ['a 64-byte namespace', { metadata: { name: 'p', namespace: 'n'.repeat(64), uid: 'u5' } }, /metadata\.namespace is 64 bytes; the limit is 63/],
  ['a 1 MiB uid', { metadata: { name: 'p', namespace: 'e2e', uid: MIB } }, /metadata\.uid is \d+ bytes; the limit is 128/],
  ['a ";" in the uid (CNI_ARGS)', { metadata: { name: 'p', namespace: 'e2e', uid: 'u;K8S_POD_NAME=x' } }, /metadata\.uid must not contain ';', '=' or spaces/],
  ['a hostname with a newline', { hostname: 'web\nevil' }, /hostname .* is not a valid hostname/],
  ['a hostname with a NUL', { hostname: 'web\0' }, /hostname .* is not a valid hostname/],
  ['a hostname with a /', { hostname: 'web/x' }, /hostname .* is not a valid hostname/],
  ['a DNS option with a newline', { dnsConfig: { servers: ['10.0.0.10'], searches: [], options: ['ndots:5\nnameserver 6.6.6.6'] } }, /dns_config\.options\[0\] must not contain control characters/],
  ['a DNS server that is not an address', { dnsConfig: { servers: ['dns.example'], searches: [], options: [] } }, /dns_config\.servers\[0\] must be an IP address/],
  ['host_port -1', { portMappings: [{ protocol: 'TCP', containerPort: 80, hostPort: -1 }] }, /port_mappings\[0\]\.host_port must be between 0 \(none\) and 65535, got -1/],
  ['port protocol 99', { portMappings: [{ protocol: 99, containerPort: 80, hostPort: 8080 }] }, /port_mappings\[0\]\.protocol "99" is not a Protocol/],
  ['a 1 MiB sysctl key', { linux: { sysctls: { [`net.${MIB}`]: '1' } } }, /sysctls key is \d+ bytes/],
  ['a 1 MiB log_directory', { logDirectory: `/${MIB}` }, /log_directory is \d+ bytes; the limit is 4096/],
  ['a sysctl that is not namespaced', { linux: { sysctls: { 'kernel.panic': '10' } } }, /sysctl "kernel\.panic" is not namespaced: setting it would change the whole node/],
  ['a net sysctl in the host network', { linux: { sysctls: { 'net.ipv4.ip_forward': '1' }, securityContext: { namespaceOptions: { network: 'NODE' } } } }, /sysctl "net\.ipv4\.ip_forward" needs the pod's own network namespace/],
];

/** Calls with a 1 MiB id or image reference: [method, request, on the image service]. */
export const hugeIdCases: [method: string, request: Record<string, unknown>, image: boolean][] = [
  ['ContainerStatus', { containerId: MIB }, false],
  ['PodSandboxStatus', { podSandboxId: MIB }, false],
  ['StopContainer', { containerId: MIB, timeout: 1 }, false],
  ['RemovePodSandbox', { podSandboxId: MIB }, false],
  ['ExecSync', { containerId: MIB, cmd: ['true'] }, false],
  ['ImageStatus', { image: { image: MIB } }, true],
  ['PullImage', { image: { image: `docker.io/library/${MIB}:1` } }, true],
  ['RemoveImage', { image: { image: MIB } }, true],
];
