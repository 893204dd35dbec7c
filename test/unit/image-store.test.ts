import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../../core/contracts/errors';
import { parseReference } from '../../core/images/reference';
import { ImageStore, chainIds, familiarTags, type ImageRecord } from '../../core/images/store';

const hex = (s: string) => createHash('sha256').update(s).digest('hex');
const digestOf = (s: string) => `sha256:${hex(s)}`;

function record(id: string, extra: Partial<ImageRecord> = {}): ImageRecord {
  return {
    id,
    configDigest: id,
    manifestDigest: undefined,
    layers: [],
    diffIds: [],
    chainIds: [],
    repoDigests: [],
    architecture: 'amd64',
    os: 'linux',
    size: 10,
    recorded: '2024-01-01T00:00:00.000Z',
    ...extra,
  };
}

describe('ImageStore', () => {
  let root: string;
  let store: ImageStore;

  beforeEach(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-images-'));
    store = new ImageStore(root);
    await store.open();
  });
  afterEach(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  const A = digestOf('image a');
  const B = digestOf('image b');
  const MANIFEST = digestOf('manifest a');

  it('adds, tags and resolves by full id, short id, name:tag and name@digest', async () => {
    await store.add(record(A, { manifestDigest: MANIFEST, repoDigests: [`127.0.0.1:5000/app@${MANIFEST}`] }), parseReference('127.0.0.1:5000/app:1'));
    await store.add(record(B), parseReference('busybox'));

    expect(store.resolve(A).id).toBe(A);
    expect(store.resolve(hex('image a')).id).toBe(A);
    expect(store.resolve(hex('image a').slice(0, 12)).id).toBe(A);
    expect(store.resolve(`sha256:${hex('image a').slice(0, 12)}`).id).toBe(A);
    expect(store.resolve('127.0.0.1:5000/app:1').id).toBe(A);
    expect(store.resolve(`127.0.0.1:5000/app@${MANIFEST}`).id).toBe(A);
    expect(store.resolve('busybox').id).toBe(B);
    expect(store.resolve('busybox:latest').id).toBe(B);
    expect(store.resolve('docker.io/library/busybox:latest').id).toBe(B);

    expect(store.tagsOf(A)).toEqual(['127.0.0.1:5000/app:1']);
    expect(familiarTags(store.tagsOf(B))).toEqual(['busybox:latest']);
  });

  it('unknown names are a NotFoundError naming them', async () => {
    await store.add(record(A), parseReference('app:1'));
    for (const name of ['app:2', 'other', `app@${MANIFEST}`, digestOf('nothing'), 'ffff', 'Not A Name']) {
      const err = (() => {
        try {
          store.resolve(name);
        } catch (e) {
          return e as Error;
        }
      })();
      expect(err).toBeInstanceOf(NotFoundError);
      expect(err!.message).toBe(`No such image: ${name}`);
    }
  });

  it('a digest reference only matches in the repository it was pulled from', async () => {
    await store.add(record(A, { manifestDigest: MANIFEST, repoDigests: [`127.0.0.1:5000/app@${MANIFEST}`] }));
    expect(store.find(`127.0.0.1:5000/other@${MANIFEST}`)).toBeUndefined();
    expect(store.find(`127.0.0.1:5000/app:ignored@${MANIFEST}`)?.id).toBe(A);
  });

  it('an ambiguous ID prefix is a 409', async () => {
    // Find two ids that share a 4-char prefix.
    const seen = new Map<string, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; !pair; i++) {
      const h = hex(`img ${i}`);
      const prior = seen.get(h.slice(0, 4));
      if (prior) pair = [prior, h];
      else seen.set(h.slice(0, 4), h);
    }
    await store.add(record(`sha256:${pair[0]}`));
    await store.add(record(`sha256:${pair[1]}`));
    expect(() => store.resolve(pair[0].slice(0, 4))).toThrow(ConflictError);
    expect(() => store.resolve(pair[0].slice(0, 4))).toThrow(/ambiguous/);
    expect(store.resolve(pair[0]).id).toBe(`sha256:${pair[0]}`);
  });

  it('a tag wins over an ID prefix that spells the same word (as in Docker)', async () => {
    // An image whose ID starts with "cafe", and another tagged cafe:latest.
    let i = 0;
    while (!hex(`cafe ${i}`).startsWith('cafe')) i++;
    const cafeId = digestOf(`cafe ${i}`);
    await store.add(record(cafeId));
    await store.add(record(B), parseReference('cafe'));
    expect(store.resolve('cafe').id).toBe(B);
    expect(store.resolve('cafe:latest').id).toBe(B);
    // With no such tag, the prefix still finds the image.
    await store.untag(parseReference('cafe'));
    expect(store.resolve('cafe').id).toBe(cafeId);
  });

  it('tagging a missing image is a NotFoundError and writes nothing', async () => {
    await expect(store.tag(A, parseReference('ghost'))).rejects.toBeInstanceOf(NotFoundError);
    expect(fs.existsSync(path.join(root, 'images', 'tags.json'))).toBe(false);
  });

  it('moves a tag, untags and deletes', async () => {
    await store.add(record(A), parseReference('app:1'));
    await store.add(record(B));
    await store.tag(B, parseReference('app:1'));
    expect(store.resolve('app:1').id).toBe(B);
    expect(store.tagsOf(A)).toEqual([]);

    await store.tag(A, parseReference('app:2'));
    await store.tag(A, parseReference('other/app'));
    expect(await store.untag(parseReference('app:2'))).toBe(true);
    expect(await store.untag(parseReference('app:2'))).toBe(false);
    expect(store.find('app:2')).toBeUndefined();
    expect(store.tagsOf(A)).toEqual(['docker.io/other/app:latest']);

    await store.delete(A);
    expect(store.get(A)).toBeUndefined();
    expect(store.find('other/app')).toBeUndefined();
    expect(fs.existsSync(path.join(root, 'images', `${hex('image a')}.json`))).toBe(false);
    expect(store.list().map((r) => r.id)).toEqual([B]);
  });

  it('adding an image again merges repo digests and keeps a known size', async () => {
    await store.add(record(A, { repoDigests: ['127.0.0.1:5000/a@' + MANIFEST], size: 42 }));
    await store.add(record(A, { repoDigests: ['127.0.0.1:5001/a@' + MANIFEST], size: 0 }));
    expect(store.get(A)!.repoDigests.sort()).toEqual(['127.0.0.1:5000/a@' + MANIFEST, '127.0.0.1:5001/a@' + MANIFEST]);
    expect(store.get(A)!.size).toBe(42);
  });

  it('refuses a record whose id is not a digest', async () => {
    await expect(store.add(record('sha256:../../etc/passwd'))).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(fs.readdirSync(path.join(root, 'images'))).toEqual([]);
  });

  it('reopening from disk restores records and tags', async () => {
    await store.add(record(A), parseReference('app:1'));
    await store.add(record(B), parseReference('127.0.0.1:5000/b:2'));
    await store.update(A, (r) => (r.size = 777));
    const reopened = new ImageStore(root);
    await reopened.open();
    expect(
      reopened
        .list()
        .map((r) => r.id)
        .sort(),
    ).toEqual([A, B].sort());
    expect(reopened.resolve('app:1').id).toBe(A);
    expect(reopened.resolve('127.0.0.1:5000/b:2').id).toBe(B);
    expect(reopened.get(A)!.size).toBe(777);
    // Records and tags are state: 0600 files in a 0700 directory.
    expect(fs.statSync(path.join(root, 'images')).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(root, 'images', 'tags.json')).mode & 0o777).toBe(0o600);
  });

  it('drops a dangling tag on open and rewrites tags.json', async () => {
    await store.add(record(A), parseReference('app:1'));
    const tagsFile = path.join(root, 'images', 'tags.json');
    const tags = JSON.parse(fs.readFileSync(tagsFile, 'utf8'));
    tags['docker.io/library/ghost:latest'] = B; // B has no record: a crash between writes
    fs.writeFileSync(tagsFile, JSON.stringify(tags));
    const reopened = new ImageStore(root);
    await reopened.open();
    expect(reopened.find('ghost')).toBeUndefined();
    expect(reopened.resolve('app:1').id).toBe(A);
    expect(JSON.parse(fs.readFileSync(tagsFile, 'utf8'))).toEqual({ 'docker.io/library/app:1': A });
    // No temp files are left next to it.
    expect(fs.readdirSync(path.join(root, 'images')).sort()).toEqual([`${hex('image a')}.json`, 'tags.json']);
  });
});

describe('chainIds', () => {
  it('follows the OCI image spec formula for three layers', () => {
    const diffIds = [digestOf('layer one'), digestOf('layer two'), digestOf('layer three')];
    // ChainID(L0) = DiffID(L0); ChainID(L0|...|Ln) = SHA256(ChainID(L0|...|Ln-1) + " " + DiffID(Ln))
    const c0 = diffIds[0];
    const c1 =
      'sha256:' +
      createHash('sha256')
        .update(Buffer.from(`${c0} ${diffIds[1]}`, 'ascii'))
        .digest('hex');
    const c2 =
      'sha256:' +
      createHash('sha256')
        .update(Buffer.from(`${c1} ${diffIds[2]}`, 'ascii'))
        .digest('hex');
    expect(chainIds(diffIds)).toEqual([c0, c1, c2]);
    expect(chainIds([])).toEqual([]);
    // Order matters: the same layers stacked differently are a different chain.
    expect(chainIds([diffIds[1], diffIds[0], diffIds[2]])[2]).not.toBe(c2);
  });

  it('matches a worked example computed independently', () => {
    const diffIds = [`sha256:${'a'.repeat(64)}`, `sha256:${'b'.repeat(64)}`];
    const expected = createHash('sha256')
      .update(`sha256:${'a'.repeat(64)} sha256:${'b'.repeat(64)}`)
      .digest('hex');
    expect(chainIds(diffIds)[1]).toBe(`sha256:${expected}`);
  });
});
