import type { Readable } from 'node:stream';
import type { Descriptor } from './types';

/**
 * Core services a plugin may resolve from its context's container, by these tokens.
 * Only the read side of the content store is offered: plugins never write blobs directly.
 */
export interface BlobReader {
  has(digest: string): Promise<boolean>;
  open(digest: string): Readable;
  stat(digest: string): Promise<Descriptor | undefined>;
}

export const BlobReader = Symbol.for('berth.BlobReader');

/** Stored registry credentials (config.json auths and `berth login`). */
export interface CredentialStore {
  get(host: string): Promise<{ username?: string; password?: string; identitytoken?: string } | undefined>;
}

export const CredentialStore = Symbol.for('berth.CredentialStore');
