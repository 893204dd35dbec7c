/**
 * Names inside a layer: chain IDs, tar entry paths and OCI whiteout names. Everything here is
 * pure string work; nothing touches the filesystem.
 */
import { InvalidArgumentError } from '../contracts/errors';
import { InvalidLayerError } from './errors';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';
/** xattr overlayfs reads to hide a lower directory's entries. */
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';

const CHAIN_ID = /^sha256:([0-9a-f]{64})$/;
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** The hex part of a chain ID (`sha256:<64 hex>`); anything else is refused before it touches a path. */
export function chainIdHex(chainId: string): string {
  const m = CHAIN_ID.exec(chainId);
  if (!m) throw new InvalidArgumentError(`invalid chain ID ${JSON.stringify(chainId)}: expected sha256:<64 hex digits>`);
  return m[1];
}

/** Checks a container id before it becomes a directory name. */
export function checkContainerId(id: string): string {
  if (!CONTAINER_ID.test(id)) throw new InvalidArgumentError(`invalid container id ${JSON.stringify(id)}`);
  return id;
}

/**
 * Splits a tar entry name into clean components relative to the root. A leading `/` is dropped
 * (absolute names land under the root); `.` and empty parts vanish; `..` may only climb back
 * out of parts the name itself went into, so `../x` and `/../x` are errors. `[]` is the root.
 */
export function entryComponents(name: string): string[] {
  if (name.includes('\0')) throw new InvalidLayerError(`entry ${JSON.stringify(name)} contains a NUL byte`);
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) throw new InvalidLayerError(`entry ${JSON.stringify(name)} escapes the root`);
      out.pop();
      continue;
    }
    out.push(part);
  }
  return out;
}

export type WhiteoutKind = { kind: 'whiteout'; target: string } | { kind: 'opaque' } | null;

/**
 * Classifies an entry's base name: `.wh.NAME` deletes NAME, `.wh..wh..opq` makes its directory
 * opaque. `.wh.`, `.wh..`, `.wh...`, names with `/` and other `.wh..wh.*` forms are invalid.
 */
export function whiteoutOf(base: string, entryName: string): WhiteoutKind {
  if (!base.startsWith(WHITEOUT_PREFIX)) return null;
  if (base === OPAQUE_WHITEOUT) return { kind: 'opaque' };
  const target = base.slice(WHITEOUT_PREFIX.length);
  if (target === '' || target === '.' || target === '..' || target.startsWith(WHITEOUT_PREFIX)) {
    throw new InvalidLayerError(`entry ${JSON.stringify(entryName)} is not a valid whiteout`);
  }
  return { kind: 'whiteout', target };
}

/** True when a raw entry name has a `..` component anywhere (whiteouts may not use them at all). */
export function hasDotDot(name: string): boolean {
  return name.split('/').includes('..');
}
