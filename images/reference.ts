/**
 * Image references, normalized the way Docker and containerd do (distribution/reference
 * `ParseNormalizedNamed`): `busybox` is docker.io/library/busybox:latest, the first path component is
 * a registry host only when it looks like one, and a digest-only reference has no tag.
 */
import { InvalidArgument } from '../errors/catalogue.js';
import type { ImageReference } from './types.js';

const DOCKER_DOMAIN = 'docker.io';
const LEGACY_DOCKER_DOMAIN = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';
const DEFAULT_TAG = 'latest';

// The grammar of distribution/reference/regexp.go: a host is dot-separated labels with an optional
// port (or a bracketed IPv6 address); a path component is lowercase alphanumerics joined by '.', '_',
// '__' or runs of '-'.
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]+)?$`);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
/** Longest reference taken at all (name, tag and digest together are far shorter when valid). */
const MAX_REFERENCE_BYTES = 4096;
/** distribution's NameTotalLengthMax. */
const MAX_NAME_LENGTH = 255;

/** Parses and normalizes an image reference; anything malformed is InvalidArgument naming the problem. */
export function parseReference(text: string): ImageReference {
  const input = text.trim();
  if (input === '') throw new InvalidArgument('image reference is empty');
  const shown = text.length > 300 ? `${text.slice(0, 128)}… (${text.length} characters)` : text;
  if (Buffer.byteLength(text) > MAX_REFERENCE_BYTES) throw new InvalidArgument(`image reference is ${Buffer.byteLength(text)} bytes: at most ${MAX_REFERENCE_BYTES} ("${shown}")`);
  const bad = (why: string): InvalidArgument => new InvalidArgument(`invalid image reference "${shown}": ${why.length > 300 ? `${why.slice(0, 300)}…` : why}`);

  let rest = input;
  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) {
      throw bad(digest.startsWith('sha256:') ? `digest "${digest}" is not sha256 followed by 64 lowercase hex digits` : `unsupported digest "${digest}" (only sha256 is accepted)`);
    }
  }

  // A ':' after the last '/' starts the tag; one before it belongs to a host's port.
  let tag: string | null = null;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw bad(`tag "${tag}" must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'`);
  }
  if (rest === '') throw bad('repository name is empty');

  const { domain, path } = splitDomain(rest);
  if (!DOMAIN_RE.test(domain)) throw bad(`registry host "${domain}" is not a valid host[:port]`);
  // The grammar takes any digits as a port; a URL does not (issue 12, item 14: "Invalid URL").
  const port = /:([0-9]+)$/.exec(domain)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) throw bad(`registry port ${port} is not between 1 and 65535`);
  if (path === '') throw bad('repository name is empty');
  if (path !== path.toLowerCase()) throw bad('repository name must be lowercase');
  for (const component of path.split('/')) {
    if (!PATH_COMPONENT_RE.test(component)) {
      throw bad(component === '' ? 'repository path has an empty component' : `repository path component "${component}" has invalid characters`);
    }
  }
  const name = `${domain}/${path}`;
  if (name.length > MAX_NAME_LENGTH) throw bad(`repository name is longer than ${MAX_NAME_LENGTH} characters`);

  if (tag === null && digest === null) tag = DEFAULT_TAG;
  const ref: Omit<ImageReference, 'full'> = { domain, path, tag, digest, name };
  return { ...ref, full: formatReference(ref) };
}

/** The canonical string: domain/path[:tag][@digest]. */
export function formatReference(ref: Pick<ImageReference, 'domain' | 'path' | 'tag' | 'digest'>): string {
  return `${ref.domain}/${ref.path}${ref.tag === null ? '' : `:${ref.tag}`}${ref.digest === null ? '' : `@${ref.digest}`}`;
}

/**
 * The first component is a host only if it has a '.' or ':', is "localhost", or has uppercase letters
 * (which a repository path never may) — distribution/reference `splitDockerDomain`.
 */
function splitDomain(name: string): { domain: string; path: string } {
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  const isHost = slash !== -1 && (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase());
  let domain = isHost ? first : DOCKER_DOMAIN;
  let path = isHost ? name.slice(slash + 1) : name;
  if (domain === LEGACY_DOCKER_DOMAIN) domain = DOCKER_DOMAIN;
  if (domain === DOCKER_DOMAIN && !path.includes('/')) path = OFFICIAL_PREFIX + path;
  return { domain, path };
}
