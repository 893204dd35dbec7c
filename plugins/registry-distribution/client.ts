/**
 * The OCI distribution-spec v2 client. It only moves bytes: the core parses manifests, picks
 * platforms and verifies blob digests. The operations live by side (pull.ts, push.ts, login.ts);
 * what every request goes through (endpoints, ping, auth, retries, redirects) is session.ts.
 */
import type { Readable } from 'node:stream';
import type { BlobRequestOptions, CredentialStore, Descriptor, FetchedManifest, ImageRef, Logger, Registry, RegistryCredentials, RegistryRequestOptions } from '../../core/plugin';
import { isValidHost, type DistributionConfig } from './config';
import { login } from './login';
import { getBlob, getManifest } from './pull';
import { hasBlob, putBlob, putManifest } from './push';
import { RegistrySession } from './session';

export class DistributionRegistry implements Registry {
  readonly fallback = true;
  private readonly session: RegistrySession;

  constructor(config: DistributionConfig, credentialStore: () => CredentialStore | undefined, log: Logger) {
    this.session = new RegistrySession(config, credentialStore, log);
  }

  /** Tokens fetched from token servers so far. */
  get tokensFetched(): number {
    return this.session.tokens.fetched;
  }

  claims(ref: ImageRef): boolean {
    return typeof ref.domain === 'string' && isValidHost(ref.domain);
  }

  /** Close idle keep-alive sockets. */
  close(): void {
    this.session.close();
  }

  getManifest(ref: ImageRef, reference: string, opts?: RegistryRequestOptions): Promise<FetchedManifest> {
    return getManifest(this.session, ref, reference, opts);
  }

  getBlob(ref: ImageRef, desc: Descriptor, opts?: BlobRequestOptions): Promise<Readable> {
    return getBlob(this.session, ref, desc, opts);
  }

  login(host: string, credentials: RegistryCredentials, opts?: RegistryRequestOptions): Promise<void> {
    return login(this.session, host, credentials, opts);
  }

  hasBlob(ref: ImageRef, desc: Descriptor, opts?: RegistryRequestOptions): Promise<boolean> {
    return hasBlob(this.session, ref, desc, opts);
  }

  putBlob(ref: ImageRef, desc: Descriptor, body: () => Readable, opts?: RegistryRequestOptions & { mountFrom?: string[] }): Promise<'pushed' | 'exists' | 'mounted'> {
    return putBlob(this.session, ref, desc, body, opts);
  }

  putManifest(ref: ImageRef, reference: string, manifest: FetchedManifest, opts?: RegistryRequestOptions): Promise<void> {
    return putManifest(this.session, ref, reference, manifest, opts);
  }
}
