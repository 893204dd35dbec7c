import { describe, expect, it } from 'vitest';
import { BerthError, InvalidArgumentError, NotFoundError } from '../../core/contracts/errors';
import { MediaTypes, type Descriptor } from '../../core/contracts/types';
import { MAX_MANIFEST_BYTES, formatPlatform, hostPlatform, parseManifest, parsePlatform, selectPlatform, type ImageIndex } from '../../core/images/manifest';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const WHAT = '127.0.0.1:5000/app:1';

const ociManifest = {
  schemaVersion: 2,
  mediaType: MediaTypes.ociManifest,
  config: { mediaType: MediaTypes.ociConfig, digest: d('c'), size: 100 },
  layers: [
    { mediaType: MediaTypes.ociLayerGzip, digest: d('1'), size: 1000 },
    { mediaType: MediaTypes.ociLayer, digest: d('2'), size: 2000 },
  ],
};

function entry(platform: Descriptor['platform'], digest: string, mediaType: string = MediaTypes.ociManifest): Descriptor {
  return { mediaType, digest, size: 500, platform };
}

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

describe('parseManifest', () => {
  it('parses an OCI image manifest', () => {
    const m = parseManifest(json(ociManifest), MediaTypes.ociManifest, WHAT);
    expect(m.kind).toBe('manifest');
    if (m.kind !== 'manifest') return;
    expect(m.mediaType).toBe(MediaTypes.ociManifest);
    expect(m.config.digest).toBe(d('c'));
    expect(m.layers.map((l) => l.digest)).toEqual([d('1'), d('2')]);
  });

  it('takes the media type from Content-Type when the document omits it', () => {
    const { mediaType: _, ...bare } = ociManifest;
    const m = parseManifest(json(bare), `${MediaTypes.dockerManifest}; charset=utf-8`, WHAT);
    expect(m.mediaType).toBe(MediaTypes.dockerManifest);
  });

  it('parses a Docker schema2 manifest', () => {
    const m = parseManifest(
      json({
        schemaVersion: 2,
        mediaType: MediaTypes.dockerManifest,
        config: { mediaType: MediaTypes.dockerConfig, digest: d('c'), size: 10 },
        layers: [{ mediaType: MediaTypes.dockerLayerGzip, digest: d('a'), size: 5 }],
      }),
      'application/json',
      WHAT,
    );
    expect(m).toMatchObject({ kind: 'manifest', mediaType: MediaTypes.dockerManifest, layers: [{ digest: d('a') }] });
  });

  it('parses an OCI index and a Docker manifest list', () => {
    for (const mediaType of [MediaTypes.ociIndex, MediaTypes.dockerManifestList]) {
      const idx = parseManifest(json({ schemaVersion: 2, mediaType, manifests: [entry({ os: 'linux', architecture: 'amd64' }, d('a'))] }), mediaType, WHAT);
      expect(idx.kind).toBe('index');
      expect(idx.mediaType).toBe(mediaType);
      expect((idx as ImageIndex).manifests[0].platform).toEqual({ os: 'linux', architecture: 'amd64' });
    }
  });

  it('refuses schema 1 with a message that says so', () => {
    for (const [doc, type] of [
      [{ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }, 'application/json'],
      [{ schemaVersion: 2 }, MediaTypes.dockerSchema1Signed],
      [{ schemaVersion: 2, mediaType: MediaTypes.dockerSchema1 }, 'application/json'],
    ] as const) {
      const err = thrown(() => parseManifest(json(doc), type, WHAT));
      expect(err).toBeInstanceOf(BerthError);
      expect(err.message).toMatch(/schema 1/);
      expect(err.message).toContain(WHAT);
    }
  });

  it('refuses a manifest over 4 MiB before parsing it', () => {
    const big = Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20);
    expect(MAX_MANIFEST_BYTES).toBe(4 * 1024 * 1024);
    expect(thrown(() => parseManifest(big, MediaTypes.ociManifest, WHAT)).message).toMatch(/larger than 4194304 bytes/);
    // Exactly 4 MiB is still read (and here fails as JSON, not on size).
    const edge = Buffer.alloc(MAX_MANIFEST_BYTES, 0x20);
    expect(thrown(() => parseManifest(edge, MediaTypes.ociManifest, WHAT)).message).toMatch(/not valid JSON/);
  });

  it.each<[string, unknown, RegExp]>([
    ['a bad layer digest', { ...ociManifest, layers: [{ mediaType: MediaTypes.ociLayerGzip, digest: 'sha256:abc', size: 1 }] }, /layers\[0\]: unsupported or invalid digest "sha256:abc"/],
    ['a path-like digest', { ...ociManifest, layers: [{ mediaType: MediaTypes.ociLayerGzip, digest: `sha256:../../${'a'.repeat(58)}`, size: 1 }] }, /invalid digest/],
    ['a bad config digest', { ...ociManifest, config: { mediaType: MediaTypes.ociConfig, digest: 'md5:00', size: 1 } }, /config: unsupported or invalid digest/],
    ['a negative size', { ...ociManifest, config: { mediaType: MediaTypes.ociConfig, digest: d('c'), size: -1 } }, /invalid size -1/],
    ['a fractional size', { ...ociManifest, layers: [{ mediaType: MediaTypes.ociLayerGzip, digest: d('1'), size: 1.5 }] }, /invalid size 1.5/],
    ['an unsupported layer media type', { ...ociManifest, layers: [{ mediaType: 'application/vnd.example.weird', digest: d('1'), size: 1 }] }, /unsupported media type application\/vnd.example.weird/],
    ['layers that are not a list', { ...ociManifest, layers: { 0: 'x' } }, /layers is not a list/],
    ['no config', { schemaVersion: 2, mediaType: MediaTypes.ociManifest, layers: [] }, /has no config/],
    [
      'a bad index entry digest',
      { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [{ mediaType: MediaTypes.ociManifest, digest: 'nope', size: 1 }] },
      /manifests\[0\]: unsupported or invalid digest/,
    ],
    ['an index without manifests', { schemaVersion: 2, mediaType: MediaTypes.ociIndex }, /no manifests list/],
    ['schemaVersion 3', { ...ociManifest, schemaVersion: 3 }, /unsupported schemaVersion 3/],
    ['not an object', 'just a string', /not a JSON object/],
  ])('refuses %s', (_what, doc, message) => {
    const err = thrown(() => parseManifest(json(doc), MediaTypes.ociManifest, WHAT));
    expect(err).toBeInstanceOf(BerthError);
    expect(err.message).toMatch(message);
    expect(err.message).toContain(WHAT);
  });

  it('refuses bytes that are not JSON', () => {
    expect(thrown(() => parseManifest(Buffer.from('{oops'), MediaTypes.ociManifest, WHAT)).message).toMatch(/not valid JSON/);
  });
});

describe('selectPlatform', () => {
  const index: ImageIndex = {
    kind: 'index',
    mediaType: MediaTypes.ociIndex,
    manifests: [
      entry({ os: 'unknown', architecture: 'unknown' }, d('0')),
      entry({ os: 'linux', architecture: 'amd64' }, d('1')),
      entry({ os: 'linux', architecture: 'arm', variant: 'v6' }, d('2')),
      entry({ os: 'linux', architecture: 'arm', variant: 'v7' }, d('3')),
      entry({ os: 'linux', architecture: 'arm64', variant: 'v8' }, d('4')),
      entry({ os: 'windows', architecture: 'amd64' }, d('5')),
    ],
  };

  it('picks linux/amd64', () => {
    expect(selectPlatform(index, { os: 'linux', architecture: 'amd64' }, WHAT).digest).toBe(d('1'));
  });

  it('treats arm64 without a variant as arm64/v8, both ways', () => {
    expect(selectPlatform(index, { os: 'linux', architecture: 'arm64' }, WHAT).digest).toBe(d('4'));
    const noVariant: ImageIndex = { ...index, manifests: [entry({ os: 'linux', architecture: 'arm64' }, d('9'))] };
    expect(selectPlatform(noVariant, { os: 'linux', architecture: 'arm64', variant: 'v8' }, WHAT).digest).toBe(d('9'));
  });

  it('matches an exact variant', () => {
    expect(selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v7' }, WHAT).digest).toBe(d('3'));
    expect(selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v6' }, WHAT).digest).toBe(d('2'));
  });

  it('never picks an unknown/unknown attestation entry, even when it comes first', () => {
    const att: ImageIndex = {
      ...index,
      manifests: [entry({ os: 'unknown', architecture: 'unknown' }, d('0')), entry({ os: 'linux', architecture: 'amd64' }, d('1'))],
    };
    expect(selectPlatform(att, { os: 'linux', architecture: 'amd64' }, WHAT).digest).toBe(d('1'));
    expect(() => selectPlatform(att, { os: 'unknown', architecture: 'unknown' }, WHAT)).toThrow(NotFoundError);
  });

  it('skips entries without a platform and nested indexes', () => {
    const odd: ImageIndex = {
      ...index,
      manifests: [
        { mediaType: MediaTypes.ociManifest, digest: d('7'), size: 1 },
        entry({ os: 'linux', architecture: 'amd64' }, d('8'), MediaTypes.ociIndex),
        entry({ os: 'linux', architecture: 'amd64' }, d('1')),
      ],
    };
    expect(selectPlatform(odd, { os: 'linux', architecture: 'amd64' }, WHAT).digest).toBe(d('1'));
  });

  it('a missing platform is a NotFoundError listing what is available', () => {
    const err = thrown(() => selectPlatform(index, { os: 'linux', architecture: 's390x' }, WHAT));
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).status).toBe(404);
    expect(err.message).toContain('linux/s390x');
    expect(err.message).toContain(WHAT);
    expect(err.message).toContain('available: linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8, windows/amd64');
    expect(err.message).not.toContain('unknown');
    // A requested variant that the index lacks is not silently replaced by another.
    expect(() => selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v5' }, WHAT)).toThrow(/linux\/arm\/v5/);
  });

  it('an index with nothing usable says none', () => {
    const empty: ImageIndex = { ...index, manifests: [entry({ os: 'unknown', architecture: 'unknown' }, d('0'))] };
    expect(() => selectPlatform(empty, { os: 'linux', architecture: 'amd64' }, WHAT)).toThrow(/available: none/);
  });
});

describe('platform strings', () => {
  it('parses os/arch[/variant], normalising uname names', () => {
    expect(parsePlatform('linux/amd64')).toEqual({ os: 'linux', architecture: 'amd64', variant: undefined });
    expect(parsePlatform(' Linux/ARM64/v8 ')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(parsePlatform('linux/x86_64').architecture).toBe('amd64');
    expect(parsePlatform('linux/aarch64').architecture).toBe('arm64');
  });

  it.each(['linux', 'linux/', '/amd64', 'linux/arm/v7/extra', '', 'linux//v7'])('refuses %j naming it', (s) => {
    const err = thrown(() => parsePlatform(s));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toContain(`"${s}"`);
    expect(err.message).toMatch(/os\/arch\[\/variant\]/);
  });

  it('formats and reports the host platform', () => {
    expect(formatPlatform({ os: 'linux', architecture: 'arm', variant: 'v7' })).toBe('linux/arm/v7');
    expect(formatPlatform({ os: 'linux', architecture: 'amd64' })).toBe('linux/amd64');
    const host = hostPlatform();
    expect(host.os).toBe('linux');
    expect(host.architecture).toBe(process.arch === 'x64' ? 'amd64' : process.arch);
  });
});
