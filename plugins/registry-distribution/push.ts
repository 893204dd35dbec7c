/**
 * The push side: blobs (mounted from another repository when the registry allows, skipped when
 * present, else uploaded in a POST + PUT session, retried as a whole) and manifests.
 */
import type { Readable } from 'node:stream';
import { RegistryError, type Descriptor, type FetchedManifest, type ImageRef, type RegistryRequestOptions } from '../../core/plugin';
import type { Endpoint } from './endpoints';
import { TransportError, backoffMs, discard, isRetryableStatus, sleep } from './http';
import { REPO_PATH_RE, checkRef, refText } from './names';
import type { RegistrySession } from './session';

export async function hasBlob(session: RegistrySession, ref: ImageRef, desc: Descriptor, opts: RegistryRequestOptions = {}): Promise<boolean> {
  checkRef(ref, desc.digest);
  const ep = session.endpoints(ref.domain, false)[0];
  const res = await session.request(ep, [`repository:${ref.path}:pull,push`], opts, {
    method: 'HEAD',
    target: `/v2/${ref.path}/blobs/${desc.digest}`,
    followRedirects: true,
  });
  discard(res);
  if (res.statusCode === 200) return true;
  if (res.statusCode === 404) return false;
  throw await session.statusError(res, ep, `blob ${ref.domain}/${ref.path}@${desc.digest}`, 'blob unknown', opts);
}

export async function putBlob(
  session: RegistrySession,
  ref: ImageRef,
  desc: Descriptor,
  body: () => Readable,
  opts: RegistryRequestOptions & { mountFrom?: string[] } = {},
): Promise<'pushed' | 'exists' | 'mounted'> {
  checkRef(ref, desc.digest);
  const mountFrom = (opts.mountFrom ?? []).filter((from) => from !== ref.path && REPO_PATH_RE.test(from));
  const scopes = [`repository:${ref.path}:pull,push`, ...mountFrom.map((from) => `repository:${from}:pull`)];
  const ep = session.endpoints(ref.domain, false)[0];
  const what = `blob ${ref.domain}/${ref.path}@${desc.digest}`;
  const release = await session.slots.acquire(opts.signal);
  try {
    let upload: URL | undefined;
    for (const from of mountFrom) {
      const res = await session.request(ep, scopes, opts, {
        method: 'POST',
        target: `/v2/${ref.path}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`,
        headers: { 'Content-Length': 0 },
      });
      discard(res);
      if (res.statusCode === 201) return 'mounted';
      if (res.statusCode === 202 && res.headers.location) {
        // The registry could not mount but opened an upload session instead: use it.
        upload = new URL(res.headers.location, (await session.ping(ep, opts.signal)).base);
        break;
      }
    }
    if (!upload && (await hasBlob(session, ref, desc, opts))) return 'exists';
    for (let attempt = 0; ; attempt++) {
      try {
        if (!upload) upload = await startUpload(session, ep, ref, scopes, opts, what);
        const put = new URL(upload);
        put.searchParams.set('digest', desc.digest);
        const res = await session.request(ep, scopes, opts, {
          method: 'PUT',
          target: put,
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': desc.size },
          body,
          noRetry: true,
        });
        if (res.statusCode === 201 || res.statusCode === 204) {
          discard(res);
          return 'pushed';
        }
        const err = await session.statusError(res, ep, what, 'blob upload unknown', opts);
        if (!isRetryableStatus(res.statusCode ?? 0) || attempt >= session.config.retries) throw err;
      } catch (err) {
        if (!(err instanceof RegistryError && err.status === 502 && err.cause instanceof TransportError) || attempt >= session.config.retries) throw err;
      }
      upload = undefined; // a failed upload session is not reused
      await sleep(backoffMs(attempt, session.config.retryDelayMs), opts.signal);
    }
  } finally {
    release();
  }
}

export async function putManifest(session: RegistrySession, ref: ImageRef, reference: string, manifest: FetchedManifest, opts: RegistryRequestOptions = {}): Promise<void> {
  checkRef(ref, reference);
  const ep = session.endpoints(ref.domain, false)[0];
  const res = await session.request(ep, [`repository:${ref.path}:pull,push`], opts, {
    method: 'PUT',
    target: `/v2/${ref.path}/manifests/${reference}`,
    headers: { 'Content-Type': manifest.mediaType, 'Content-Length': manifest.bytes.length },
    body: () => manifest.bytes,
  });
  if (res.statusCode === 201 || res.statusCode === 200 || res.statusCode === 204) {
    discard(res);
    return;
  }
  throw await session.statusError(res, ep, `manifest ${refText(ref, reference)}`, 'manifest unknown', opts);
}

async function startUpload(session: RegistrySession, ep: Endpoint, ref: ImageRef, scopes: string[], opts: RegistryRequestOptions, what: string): Promise<URL> {
  const res = await session.request(ep, scopes, opts, {
    method: 'POST',
    target: `/v2/${ref.path}/blobs/uploads/`,
    headers: { 'Content-Length': 0 },
  });
  if (res.statusCode !== 202 || !res.headers.location) throw await session.statusError(res, ep, what, 'blob upload unknown', opts);
  discard(res);
  return new URL(res.headers.location, (await session.ping(ep, opts.signal)).base);
}
