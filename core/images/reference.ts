/**
 * Image references, normalised the way Docker does (distribution/reference):
 *   busybox                     -> docker.io/library/busybox:latest
 *   127.0.0.1:5000/app:1        -> 127.0.0.1:5000/app:1
 *   repo@sha256:<64 hex>        -> pinned by digest (no tag)
 */
import type { ImageRef } from '../contracts/types';
import { InvalidArgumentError } from '../contracts/errors';

export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DOMAIN = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$/;
const MAX_NAME = 255;

export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}

function looksLikeDomain(first: string): boolean {
  return first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase();
}

function validDomain(domain: string): boolean {
  if (domain.startsWith('[')) {
    // IPv6 literal with optional port: [::1]:5000 (hex and colons only, as distribution/reference)
    return /^\[[0-9a-fA-F:]+\](?::\d+)?$/.test(domain);
  }
  const [host, port, ...rest] = domain.split(':');
  if (rest.length || (port !== undefined && !/^\d+$/.test(port))) return false;
  return host.split('.').every((c) => DOMAIN_COMPONENT.test(c));
}

/** Parse and normalise a reference; throws InvalidArgumentError naming the input. */
export function parseReference(input: string, opts: { defaultTag?: boolean; defaultDomain?: string } = {}): ImageRef {
  const bad = (why: string) => new InvalidArgumentError(`invalid reference format: "${input}": ${why}`);
  if (!input) throw bad('empty');
  // A bare 64-hex string is an image ID, never a repository name (Docker refuses it the same way).
  if (/^[a-f0-9]{64}$/.test(input)) throw bad('cannot specify 64-byte hexadecimal strings as a repository name');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw bad('digest must be sha256:<64 hex> or sha512:<128 hex>');
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) throw bad(`tag "${tag}" is not valid`);
  }
  let domain = opts.defaultDomain ?? DEFAULT_DOMAIN;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0 && looksLikeDomain(rest.slice(0, slash))) {
    domain = rest.slice(0, slash);
    path = rest.slice(slash + 1);
    if (!validDomain(domain)) throw bad(`registry host "${domain}" is not valid`);
  }
  if (!path) throw bad('repository name is empty');
  if (domain === LEGACY_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = OFFICIAL_PREFIX + path;
  for (const component of path.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      throw bad(component.toLowerCase() === component ? `repository name component "${component}" is not valid` : 'repository name must be lowercase');
    }
  }
  if (domain.length + 1 + path.length > MAX_NAME) throw bad(`repository name longer than ${MAX_NAME} characters`);
  if (!tag && !digest && opts.defaultTag !== false) tag = 'latest';
  return { domain, path, tag, digest };
}

/** `docker.io/library/busybox` */
export function repositoryName(ref: ImageRef): string {
  return `${ref.domain}/${ref.path}`;
}

/** The fully qualified form: `docker.io/library/busybox:latest`, `host/repo@sha256:...`. */
export function formatReference(ref: ImageRef): string {
  return repositoryName(ref) + (ref.tag ? `:${ref.tag}` : '') + (ref.digest ? `@${ref.digest}` : '');
}

/** Docker's short display form: `busybox:latest`, `myuser/app:1`, `127.0.0.1:5000/app:1`. */
export function familiarName(ref: ImageRef): string {
  if (ref.domain !== DEFAULT_DOMAIN) return repositoryName(ref);
  // Only `library/<name>` is shortened: `library/foo/bar` must stay as is to parse back to itself.
  const rest = ref.path.startsWith(OFFICIAL_PREFIX) ? ref.path.slice(OFFICIAL_PREFIX.length) : undefined;
  return rest !== undefined && !rest.includes('/') ? rest : ref.path;
}

export function familiarReference(ref: ImageRef): string {
  return familiarName(ref) + (ref.tag ? `:${ref.tag}` : '') + (ref.digest ? `@${ref.digest}` : '');
}
