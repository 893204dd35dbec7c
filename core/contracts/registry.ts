import type { Readable } from 'node:stream';
import type { Descriptor, ImageRef } from './types';

/** Credentials for one registry, as Docker's X-Registry-Auth / config.json carry them. */
export interface RegistryCredentials {
  username?: string;
  password?: string;
  /** An identity token (OAuth refresh token) instead of a password. */
  identitytoken?: string;
  /** A ready bearer token for the registry. */
  registrytoken?: string;
}

export interface RegistryRequestOptions {
  signal?: AbortSignal;
  /** Credentials the client sent with this request; they win over stored ones. */
  credentials?: RegistryCredentials;
}

export interface FetchedManifest {
  /** The exact bytes the registry served (their sha256 is the manifest digest). */
  bytes: Buffer;
  mediaType: string;
}

export interface BlobRequestOptions extends RegistryRequestOptions {
  /** Bytes already received; the registry resumes from here with a Range request when it can. */
  offset?: number;
}

/**
 * A source of images. The core picks the first registry whose `claims` accepts a reference,
 * trying fallback registries (e.g. the distribution client, which claims every host) last.
 * Registries only move bytes: the core parses manifests, picks platforms and verifies every digest.
 */
export interface Registry {
  /** True for the catch-all registry that should be consulted after every specific one. */
  readonly fallback?: boolean;
  claims(ref: ImageRef): boolean;
  /** Fetch a manifest or index by tag or digest. Throws NotFoundError naming the reference. */
  getManifest(ref: ImageRef, reference: string, opts?: RegistryRequestOptions): Promise<FetchedManifest>;
  /** Stream a blob. The stream is not verified here; the content store checks digest and size. */
  getBlob(ref: ImageRef, desc: Descriptor, opts?: BlobRequestOptions): Promise<Readable>;
  /** Check credentials against the registry host (`berth login`). */
  login?(host: string, credentials: RegistryCredentials, opts?: RegistryRequestOptions): Promise<void>;
  /** Push side (optional until image building lands). */
  hasBlob?(ref: ImageRef, desc: Descriptor, opts?: RegistryRequestOptions): Promise<boolean>;
  putBlob?(ref: ImageRef, desc: Descriptor, body: () => Readable, opts?: RegistryRequestOptions & { mountFrom?: string[] }): Promise<'pushed' | 'exists' | 'mounted'>;
  putManifest?(ref: ImageRef, reference: string, manifest: FetchedManifest, opts?: RegistryRequestOptions): Promise<void>;
  /** berthd is shutting down: close idle connections. */
  close?(): Promise<void> | void;
}

export const Registry = Symbol.for('berth.Registry');
