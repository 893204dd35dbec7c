/**
 * The daemon's list filters (core/containers/filters.ts, core/images/filters.ts) as dockerd applies
 * them, and the CLI's `--filter` flags as the `filters` query docker sends.
 */
import { describe, expect, it } from 'vitest';
import { containerFilter, type ContainerFacts } from '../../core/containers/filters';
import { imageFilter, matchReference, type ImageFacts } from '../../core/images/filters';
import type { ContainerRecord } from '../../core/containers/record';
import { filtersQuery } from '../../core/cli/args';
import { imageContexts } from '../../core/cli/formatters';

function container(name: string, over: { status?: string; exit?: number; started?: boolean; labels?: Record<string, string>; created: string; image?: string; health?: string }): ContainerFacts {
  const rec = {
    Id: `${name.padEnd(12, '0')}${'f'.repeat(52)}`,
    Name: `/${name}`,
    Created: over.created,
    Image: over.image ?? 'sha256:base',
    Config: { Image: 'busybox', Labels: over.labels ?? {} },
    State: {
      Status: over.status ?? 'exited',
      Running: over.status === 'running',
      ExitCode: over.exit ?? 0,
      StartedAt: over.started === false ? '0001-01-01T00:00:00Z' : over.created,
      ...(over.health ? { Health: { Status: over.health } } : {}),
    },
  } as unknown as ContainerRecord;
  return {
    rec,
    networks: { bridge: { NetworkID: 'abcdef0123' } },
    mounts: name === 'web' ? [{ Name: 'data', Destination: '/data' }] : [],
    ports: name === 'web' ? [{ PrivatePort: 80, PublicPort: 8080, Type: 'tcp' }] : [],
  };
}

const ALL = [
  container('web', { status: 'running', labels: { tier: 'front' }, created: '2026-01-01T00:00:01Z', health: 'healthy' }),
  container('job', { exit: 3, labels: { tier: 'batch', team: 'a' }, created: '2026-01-01T00:00:02Z', image: 'sha256:child' }),
  container('new', { status: 'created', started: false, created: '2026-01-01T00:00:03Z' }),
];

const lookups = {
  container: (ref: string) => {
    const found = ALL.find((c) => c.rec.Name === `/${ref}` || c.rec.Id.startsWith(ref));
    if (!found) throw new Error(`No such container: ${ref}`);
    return found.rec;
  },
  imageAndDescendants: (ref: string) => (ref === 'busybox' ? ['sha256:base', 'sha256:child'] : ref === 'child' ? ['sha256:child'] : []),
};

const names = (filters: Record<string, string[]>) => {
  const f = containerFilter(filters, lookups);
  return ALL.filter(f.match).map((c) => c.rec.Name.slice(1));
};

describe('container filters (dockerd daemon/list.go)', () => {
  it.each([
    [{ status: ['running'] }, ['web']],
    [{ status: ['exited', 'created'] }, ['job', 'new']],
    [{ exited: ['3'] }, ['job']],
    [{ exited: ['0'] }, []], // "new" never ran: no exit code to match
    [{ name: ['^/w'] }, ['web']],
    [{ name: ['e'] }, ['web', 'new']],
    [{ id: ['job0'] }, ['job']],
    [{ label: ['tier'] }, ['web', 'job']],
    [{ label: ['tier=batch', 'team'] }, ['job']],
    [{ ancestor: ['busybox'] }, ['web', 'job', 'new']],
    [{ ancestor: ['child'] }, ['job']],
    [{ ancestor: ['nothing'] }, []],
    [{ volume: ['data'] }, ['web']],
    [{ volume: ['/data'] }, ['web']],
    [{ network: ['bridge'] }, ['web', 'job', 'new']],
    [{ network: ['abcdef'] }, ['web', 'job', 'new']],
    [{ network: ['other'] }, []],
    [{ health: ['healthy'] }, ['web']],
    [{ health: ['none'] }, ['job', 'new']],
    [{ before: ['job'] }, ['web']],
    [{ since: ['web'] }, ['job', 'new']],
    [{ publish: ['8080'] }, ['web']],
    [{ expose: ['80/tcp'] }, ['web']],
    [{ expose: ['81-90'] }, []],
  ])('%j -> %j', (filters, want) => expect(names(filters)).toEqual(want));

  it('status asks for every state (as dockerd sets All)', () => {
    expect(containerFilter({ status: ['exited'] }, lookups).impliesAll).toBe(true);
    expect(containerFilter({ exited: ['0'] }, lookups).impliesAll).toBe(false);
  });

  it.each([
    [{ colour: ['red'] }, "invalid filter 'colour'"],
    [{ status: ['sleeping'] }, "invalid filter 'status=sleeping'"],
    [{ health: ['great'] }, "invalid filter 'health=great'"],
    [{ exited: ['x'] }, "invalid filter 'exited=x'"],
  ])('%j is refused: %s', (filters, message) => {
    expect(() => containerFilter(filters, lookups)).toThrow(message);
  });

  it('before/since name a container that must exist', () => {
    expect(() => containerFilter({ before: ['ghost'] }, lookups)).toThrow('No such container: ghost');
  });
});

function image(id: string, tags: string[], over: Partial<ImageFacts> = {}): ImageFacts {
  return { id, created: 100, tags, repoDigests: [], labels: {}, hasChildren: false, ...over };
}

describe('image filters (dockerd daemon/images/images.go)', () => {
  const imgs = [
    image('base', ['busybox:latest', 'reg.local/busybox:1'], { created: 10, labels: { os: 'tiny' } }),
    image('step', [], { created: 20, hasChildren: true }),
    image('app', ['app:1'], { created: 30, labels: { tier: 'web' } }),
    image('orphan', [], { created: 40 }),
    image('pinned', [], { created: 50, repoDigests: ['busybox@sha256:abc'] }),
  ];
  const createdOf = (ref: string) => imgs.find((i) => i.id === ref || i.tags.includes(ref))!.created;
  const listed = (filters: Record<string, string[]>, all = false) => {
    const f = imageFilter(filters, createdOf, all);
    return imgs.flatMap((i) => {
      const v = f(i);
      return v.listed ? [`${i.id}${v.tags.length ? `[${v.tags.join(',')}]` : ''}`] : [];
    });
  };

  it('a build step (untagged, with children) shows only with -a; a dangling one always', () => {
    expect(listed({})).toEqual(['base[busybox:latest,reg.local/busybox:1]', 'app[app:1]', 'orphan', 'pinned']);
    expect(listed({}, true)).toEqual(['base[busybox:latest,reg.local/busybox:1]', 'step', 'app[app:1]', 'orphan', 'pinned']);
  });

  it.each([
    [{ dangling: ['true'] }, ['orphan', 'pinned']],
    [{ dangling: ['false'] }, ['base[busybox:latest,reg.local/busybox:1]', 'app[app:1]', 'pinned']],
    [{ label: ['tier=web'] }, ['app[app:1]']],
    [{ label: ['os'] }, ['base[busybox:latest,reg.local/busybox:1]']],
    [{ reference: ['busybox'] }, ['base[busybox:latest]']],
    [{ reference: ['*/busybox:*'] }, ['base[reg.local/busybox:1]']],
    [{ before: ['app:1'] }, ['base[busybox:latest,reg.local/busybox:1]']],
    [{ since: ['app:1'] }, ['orphan', 'pinned']],
  ])('%j -> %j', (filters, want) => expect(listed(filters)).toEqual(want));

  it.each([
    [{ colour: ['red'] }, "invalid filter 'colour'"],
    [{ dangling: ['maybe'] }, "invalid filter 'dangling=maybe'"],
    [{ dangling: ['true', 'false'] }, "invalid filter 'dangling=true,false'"],
  ])('%j is refused: %s', (filters, message) => {
    expect(() => imageFilter(filters, createdOf, false)).toThrow(message);
  });

  it('reference patterns match name:tag or the name alone, * within one path component', () => {
    expect(matchReference('busybox:latest', 'busybox')).toBe(true);
    expect(matchReference('busybox:latest', 'busy*')).toBe(true);
    expect(matchReference('reg.local/busybox:1', 'busy*')).toBe(false);
    expect(matchReference('reg.local/busybox:1', 'reg.local/*:1')).toBe(true);
  });
});

describe('the CLI side', () => {
  it('--filter flags become the filters query docker sends', () => {
    expect(filtersQuery(['status=exited', 'status=created', 'label=a=b'])).toBe('{"status":{"exited":true,"created":true},"label":{"a=b":true}}');
    expect(filtersQuery([])).toBeUndefined();
    expect(() => filtersQuery(['nonsense'])).toThrow('bad format of filter (expected name=value)');
  });

  it('images rows as docker makes them: one per tag, per digest with --digests, <none> for the rest', () => {
    const img = { Id: `sha256:${'a'.repeat(64)}`, RepoTags: ['busybox:latest', 'busybox:1'], RepoDigests: ['busybox@sha256:d1', 'other@sha256:d2'], Created: 0, Size: 1000 };
    const rows = (digests: boolean) => imageContexts(img, { trunc: true, digests }).map((r) => `${r.Repository()}:${r.Tag()}@${r.Digest()} ${r.ID()}`);
    expect(rows(false)).toEqual([`busybox:latest@<none> ${'a'.repeat(12)}`, `busybox:1@<none> ${'a'.repeat(12)}`, `other:<none>@<none> ${'a'.repeat(12)}`]);
    expect(rows(true)).toEqual([`busybox:latest@sha256:d1 ${'a'.repeat(12)}`, `busybox:1@sha256:d1 ${'a'.repeat(12)}`, `other:<none>@sha256:d2 ${'a'.repeat(12)}`]);
    expect(imageContexts({ ...img, RepoTags: [], RepoDigests: [] }, { trunc: false, digests: false }).map((r) => `${r.Repository()}:${r.Tag()} ${r.ID()}`)).toEqual([`<none>:<none> ${img.Id}`]);
  });
});
