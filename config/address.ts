/** host:port settings (the inspector's, the streaming server's): one parser, one message. */
import { InvalidArgument } from '../errors/catalogue.js';

/** "127.0.0.1:9680" or "[::1]:9680" → host and port (0 picks a free one); else INVALID_ARGUMENT naming `key`. */
export function parseAddress(address: string, key: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!host || !(port <= 65535)) throw new InvalidArgument(`${key} must be host:port (port 0 picks one), not "${address}"`);
  return { host, port };
}

/** localhost, ::1 or 127.0.0.0/8: reachable from this host only. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}
