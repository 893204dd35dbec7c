/**
 * `GET /images/json?filters=...` as dockerd applies them: dangling, label, before, since and
 * reference; any other key is a 400 `invalid filter 'x'`. Also docker's rule for untagged images:
 * one with children is a build intermediate, listed only with all=1 (and so never as dangling).
 */
import { InvalidArgumentError } from '../contracts/errors';

const ACCEPTED = new Set(['dangling', 'label', 'before', 'since', 'reference']);

/** What the filters look at of one image. */
export interface ImageFacts {
  id: string;
  /** Unix seconds. */
  created: number;
  /** Familiar repo:tag names. */
  tags: string[];
  repoDigests: string[];
  labels: Record<string, string>;
  hasChildren: boolean;
}

/** The filters' word on an image: left out, or listed with these tags (reference narrows them). */
export type ImageVerdict = { listed: false } | { listed: true; tags: string[] };

/** docker's filters.MatchKVList: every `key` or `key=value` must be among the labels. */
export function matchLabels(wanted: string[] | undefined, labels: Record<string, string> | null | undefined): boolean {
  return (wanted ?? []).every((l) => {
    const i = l.indexOf('=');
    const [k, v] = i < 0 ? [l, undefined] : [l.slice(0, i), l.slice(i + 1)];
    return labels?.[k] !== undefined && (v === undefined || labels[k] === v);
  });
}

/** docker's reference.FamiliarMatch: a shell pattern against `name:tag`, or against the name alone. */
export function matchReference(tag: string, pattern: string): boolean {
  const re = (p: string) =>
    new RegExp(
      '^' +
        p
          .split('*')
          .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
          .join('[^/]*') +
        '$',
    );
  return re(pattern).test(tag) || re(pattern).test(tag.slice(0, tag.lastIndexOf(':')));
}

/** docker's GetBoolOrDefault: one of true/1 or false/0, else `invalid filter 'k=v'`. */
export function boolFilter(filters: Record<string, string[]>, key: string): boolean | undefined {
  const values = filters[key];
  if (!values) return undefined;
  const t = values.some((v) => v === 'true' || v === '1');
  const f = values.some((v) => v === 'false' || v === '0');
  if (t === f) throw new InvalidArgumentError(`invalid filter '${key}=${values.join(',')}'`);
  return t;
}

/** Check the keys and values of `filters` and return the test for each image. `createdOf` resolves before/since references (throwing NotFound). */
export function imageFilter(filters: Record<string, string[]>, createdOf: (ref: string) => number, all: boolean): (img: ImageFacts) => ImageVerdict {
  for (const key of Object.keys(filters)) if (!ACCEPTED.has(key)) throw new InvalidArgumentError(`invalid filter '${key}'`);
  const dangling = boolFilter(filters, 'dangling');
  const before = filters.before?.length ? Math.min(...filters.before.map(createdOf)) : undefined;
  const since = filters.since?.length ? Math.max(...filters.since.map(createdOf)) : undefined;
  const patterns = filters.reference;
  return (img) => {
    if (before !== undefined && img.created >= before) return { listed: false };
    if (since !== undefined && img.created <= since) return { listed: false };
    if (filters.label && !matchLabels(filters.label, img.labels)) return { listed: false };
    const tags = patterns ? img.tags.filter((t) => patterns.some((p) => matchReference(t, p))) : img.tags;
    const named = tags.length > 0 || (!patterns && img.repoDigests.length > 0);
    if (!named) {
      if (patterns || dangling === false) return { listed: false };
      // Untagged with children: a build step under another image, shown only with -a.
      if (!all && img.hasChildren) return { listed: false };
      return { listed: true, tags };
    }
    if (dangling === true && tags.length) return { listed: false };
    return { listed: true, tags };
  };
}
