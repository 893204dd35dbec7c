/** What a distribution API path may hold (repository, tag, digest), checked before any request. */
import { InvalidArgumentError, type ImageRef } from '../../core/plugin';
import { isValidHost } from './config';

export const REPO_PATH_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** Refuse a host, repository or tag/digest that would not make a valid request path. */
export function checkRef(ref: ImageRef, reference: string): void {
  if (!isValidHost(ref.domain)) throw new InvalidArgumentError(`invalid registry host ${JSON.stringify(ref.domain)}`);
  if (!REPO_PATH_RE.test(ref.path)) throw new InvalidArgumentError(`invalid repository name ${JSON.stringify(ref.path)} for ${ref.domain}`);
  if (!TAG_RE.test(reference) && !DIGEST_RE.test(reference)) {
    throw new InvalidArgumentError(`invalid tag or digest ${JSON.stringify(reference)} for ${ref.domain}/${ref.path}`);
  }
}

/** `127.0.0.1:5000/busybox:tag` or `...@sha256:...`, for messages. */
export function refText(ref: ImageRef, reference: string): string {
  return `${ref.domain}/${ref.path}${reference.includes(':') ? '@' : ':'}${reference}`;
}
