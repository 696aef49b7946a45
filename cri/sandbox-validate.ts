/**
 * RunPodSandbox's bounds, checked before any actor, record, netns or CNI call exists (issue 12,
 * items 11 and 13). The pod's name, namespace and uid travel in CNI_ARGS: one CNI refuses there
 * (a NUL, a ';', a 1 MiB value) fails the rollback's DEL the same way, and the pod could never be
 * removed. So they are refused here, by Kubernetes' own bounds, as are DNS, port and sysctl values
 * that would be written into resolv.conf or handed to the kernel unchecked.
 */
import { isIP } from 'node:net';
import { InvalidArgument } from '../errors/catalogue.js';
import type { PodSandboxConfig } from './types.js';
import { podSysctls } from '../runtime/container-spec.js';
import { checkUserNamespace } from '../runtime/userns.js';
import { checkText, MAX_NAMESPACE_BYTES, MAX_PATH_BYTES, MAX_POD_NAME_BYTES, MAX_UID_BYTES, quote } from './validate.js';

/** glibc reads at most 3 servers and 6 search domains (resolv.conf(5)); room for other resolvers. */
export const MAX_DNS_ENTRIES = 32;
export const MAX_PORT_MAPPINGS = 1024;
export const MAX_SYSCTLS = 256;
/** A sysctl's name under /proc/sys, and its value. */
const MAX_SYSCTL_KEY_BYTES = 253;
const MAX_SYSCTL_VALUE_BYTES = 4096;

/** What CNI_ARGS cannot carry (a ';' or '=' would forge another key), besides control characters. */
const CNI_ARG_UNSAFE = /[;=\s]/;
const PROTOCOLS: readonly unknown[] = ['TCP', 'UDP', 'SCTP', undefined, null, ''];

export function checkPodMetadata(m: { name: string; namespace: string; uid: string }): void {
  const fields = [
    [m.name, 'PodSandboxConfig.metadata.name', MAX_POD_NAME_BYTES],
    [m.namespace, 'PodSandboxConfig.metadata.namespace', MAX_NAMESPACE_BYTES],
    [m.uid, 'PodSandboxConfig.metadata.uid', MAX_UID_BYTES],
  ] as const;
  for (const [value, field, max] of fields) {
    checkText(value, field, max);
    if (CNI_ARG_UNSAFE.test(value)) throw new InvalidArgument(`${field} must not contain ';', '=' or spaces, got ${quote(value)}`);
  }
}

/** DNS servers are addresses; searches and options are single words written into resolv.conf. */
export function checkDns(dns: PodSandboxConfig['dnsConfig']): void {
  if (!dns) return;
  const lists = [[dns.servers ?? [], 'servers', 45], [dns.searches ?? [], 'searches', 253], [dns.options ?? [], 'options', 256]] as const;
  for (const [list, name, max] of lists) {
    const field = `PodSandboxConfig.dns_config.${name}`;
    if (list.length > MAX_DNS_ENTRIES) throw new InvalidArgument(`${field} has ${list.length} entries; the limit is ${MAX_DNS_ENTRIES}`);
    for (const [i, value] of list.entries()) {
      checkText(value, `${field}[${i}]`, max);
      if (/\s/.test(value) || value === '') throw new InvalidArgument(`${field}[${i}] must be one non-empty word, got ${quote(value)}`);
      if (name === 'servers' && isIP(value) === 0) throw new InvalidArgument(`${field}[${i}] must be an IP address, got ${quote(value)}`);
    }
  }
}

export function checkPortMappings(ports: PodSandboxConfig['portMappings']): void {
  if (ports.length > MAX_PORT_MAPPINGS) throw new InvalidArgument(`PodSandboxConfig.port_mappings has ${ports.length} entries; the limit is ${MAX_PORT_MAPPINGS}`);
  const port = (n: unknown): boolean => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 65535;
  for (const [i, p] of ports.entries()) {
    const field = `PodSandboxConfig.port_mappings[${i}]`;
    if (!PROTOCOLS.includes(p.protocol)) throw new InvalidArgument(`${field}.protocol ${quote(String(p.protocol))} is not a Protocol: use TCP, UDP or SCTP`);
    if (!port(p.containerPort)) throw new InvalidArgument(`${field}.container_port must be between 0 and 65535, got ${String(p.containerPort)}`);
    if (!port(p.hostPort)) throw new InvalidArgument(`${field}.host_port must be between 0 (none) and 65535, got ${String(p.hostPort)}`);
    const hostIp = checkText(p.hostIp ?? '', `${field}.host_ip`, 45);
    if (hostIp !== '' && isIP(hostIp) === 0) throw new InvalidArgument(`${field}.host_ip must be an IP address or empty, got ${quote(hostIp)}`);
  }
}

export function checkSysctls(sysctls: Record<string, string>, field: string): void {
  const entries = Object.entries(sysctls);
  if (entries.length > MAX_SYSCTLS) throw new InvalidArgument(`${field} has ${entries.length} entries; the limit is ${MAX_SYSCTLS}`);
  for (const [key, value] of entries) {
    checkText(key, `${field} key`, MAX_SYSCTL_KEY_BYTES);
    if (key === '' || key.includes('..') || /\s/.test(key)) throw new InvalidArgument(`${field} key ${quote(key)} is not a sysctl name`);
    checkText(value, `${field}[${quote(key)}]`, MAX_SYSCTL_VALUE_BYTES);
  }
}

/** Everything in a PodSandboxConfig that buildSandboxSpec does not check itself. */
export function checkSandboxConfig(config: PodSandboxConfig): void {
  checkDns(config.dnsConfig);
  checkPortMappings(config.portMappings ?? []);
  checkSysctls(config.linux?.sysctls ?? {}, 'PodSandboxConfig.linux.sysctls');
  // Namespaced sysctls only, and only in a namespace the pod has of its own (as kubelet checks):
  // refused here, before the pause container's create would fail with runc's words.
  const ns = config.linux?.securityContext?.namespaceOptions;
  checkUserNamespace(ns, 'PodSandboxConfig.linux.security_context.namespace_options');
  podSysctls(config.linux?.sysctls ?? {}, ns?.network === 'NODE', ns?.ipc === 'NODE');
  checkText(config.linux?.cgroupParent ?? '', 'PodSandboxConfig.linux.cgroup_parent', MAX_PATH_BYTES);
}
