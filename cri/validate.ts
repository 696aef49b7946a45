/** Request checks shared by the handlers: each failure names the field and what to send instead. */
import { isAbsolute, normalize } from 'node:path';
import { InvalidArgument } from '../errors/catalogue.js';
import { quote } from '../errors/quote.js';

/** Limits that keep one pod's metadata from bloating every List reply (Kubernetes' own bounds). */
export const MAX_KEY_BYTES = 317; // 253-byte prefix + "/" + 63-byte name
export const MAX_LABELS_BYTES = 64 * 1024;
export const MAX_ANNOTATIONS_BYTES = 256 * 1024;

export function requireString(value: string | undefined | null, field: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw new InvalidArgument(`${field} is required and must not be empty`);
  return value;
}

/** Longest id (or id prefix) taken: podchart's ids are 64 hex characters. */
export const MAX_ID_BYTES = 64;

/** A full id or a prefix of one: at most 64 characters, never echoed whole when it is not. */
export function requireId(value: string | undefined | null, field: string): string {
  const id = requireString(value, field);
  if (Buffer.byteLength(id) > MAX_ID_BYTES) throw new InvalidArgument(`${field} is ${Buffer.byteLength(id)} bytes: ids are at most ${MAX_ID_BYTES} (${quote(id)})`);
  return id;
}

/** Longest image reference taken (a valid one is far shorter: distribution caps the name at 255). */
export const MAX_IMAGE_REF_BYTES = 4096;

/** An image reference or id: present, and at most MAX_IMAGE_REF_BYTES. */
export function requireImageRef(value: string | undefined | null, field: string): string {
  const ref = requireString(value, field);
  if (Buffer.byteLength(ref) > MAX_IMAGE_REF_BYTES) throw new InvalidArgument(`${field} is ${Buffer.byteLength(ref)} bytes: image references are at most ${MAX_IMAGE_REF_BYTES} (${quote(ref)})`);
  return ref;
}

export { MAX_QUOTED_BYTES, quote } from '../errors/quote.js';

/** An absolute, normalized path without `..`; empty is allowed when `optional`. */
export function checkAbsolutePath(value: string, field: string, optional = true): string {
  if (value === '' && optional) return value;
  checkText(value, field, MAX_PATH_BYTES);
  if (!isAbsolute(value)) throw new InvalidArgument(`${field} must be an absolute path, got ${quote(value)}`);
  if (value.split('/').includes('..')) throw new InvalidArgument(`${field} must not contain "..", got ${quote(value)}`);
  return normalize(value);
}

export function checkStringMap(map: Record<string, string>, field: string, maxTotalBytes: number): void {
  let total = 0;
  for (const [key, value] of Object.entries(map)) {
    if (key === '') throw new InvalidArgument(`${field} has an empty key`);
    const keyBytes = Buffer.byteLength(key);
    if (keyBytes > MAX_KEY_BYTES) throw new InvalidArgument(`${field} key "${key.slice(0, 40)}…" is ${keyBytes} bytes; the limit is ${MAX_KEY_BYTES}`);
    total += keyBytes + Buffer.byteLength(value);
  }
  if (total > maxTotalBytes) throw new InvalidArgument(`${field} total ${total} bytes; the limit is ${maxTotalBytes}`);
}

/** The kernel's limit on a UTS hostname (HOST_NAME_MAX). */
export const MAX_HOSTNAME_BYTES = 64;
/** Letters, digits, '-', '_' and '.', starting and ending with a letter or digit (RFC 1123, plus '_'). */
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;

export function checkHostname(value: string, field: string): string {
  const bytes = Buffer.byteLength(value);
  const shown = quote(value);
  if (bytes > MAX_HOSTNAME_BYTES) throw new InvalidArgument(`${field} ${shown} is ${bytes} bytes; the limit is ${MAX_HOSTNAME_BYTES}`);
  if (!HOSTNAME.test(value)) {
    throw new InvalidArgument(`${field} ${shown} is not a valid hostname: use letters, digits, '-', '_' and '.', starting and ending with a letter or digit`);
  }
  return value;
}

/** Kubernetes' object-name bound (a DNS-1123 subdomain). Pod names are such names. */
export const MAX_POD_NAME_BYTES = 253;
/**
 * Container names: Kubernetes makes them DNS-1123 labels (63), but CRI clients other than kubelet
 * (critest: "container-for-update-resources-test-<uuid>", 72) send longer ones; the object-name
 * bound keeps replies small without refusing them.
 */
export const MAX_CONTAINER_NAME_BYTES = 253;
/** A namespace name is a DNS-1123 label. */
export const MAX_NAMESPACE_BYTES = 63;
/** A pod uid is a UUID (36); room for other clients' schemes. */
export const MAX_UID_BYTES = 128;
/** The kernel's PATH_MAX. */
export const MAX_PATH_BYTES = 4096;

/** C0 controls and DEL: never part of a name, path or option, and a NUL cuts a C string short. */
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * A string field of at most `maxBytes`, without control characters; never echoed whole. Empty is
 * allowed (the caller decides whether the field is required).
 */
export function checkText(value: string, field: string, maxBytes: number): string {
  if (typeof value !== 'string') throw new InvalidArgument(`${field} must be a string`);
  const bytes = Buffer.byteLength(value);
  if (bytes > maxBytes) throw new InvalidArgument(`${field} is ${bytes} bytes; the limit is ${maxBytes} (${quote(value)})`);
  if (CONTROL.test(value)) throw new InvalidArgument(`${field} must not contain control characters (NUL, newline, …), got ${quote(value)}`);
  return value;
}
