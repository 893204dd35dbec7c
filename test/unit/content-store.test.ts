import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError, NotFoundError } from '../../core/contracts/errors';
import { ContentStore, DigestMismatchError, SizeMismatchError, VerifyingStream, digestHex, sha256Digest } from '../../core/content/store';

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');

describe('ContentStore', () => {
  let root: string;
  let store: ContentStore;

  beforeEach(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-content-'));
    store = new ContentStore(root);
    await store.init();
  });
  afterEach(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  const ingestDirEntries = () => fs.readdirSync(store.ingestDir);
  const blobNames = () => fs.readdirSync(store.blobsDir);

  it('lays out content/blobs/sha256 and content/ingest as 0700 directories', () => {
    expect(store.blobsDir).toBe(path.join(root, 'content', 'blobs', 'sha256'));
    expect(store.ingestDir).toBe(path.join(root, 'content', 'ingest'));
    expect(fs.statSync(store.blobsDir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(store.ingestDir).mode & 0o777).toBe(0o700);
  });

  it('ingests a verified stream and commits it read-only', async () => {
    const data = Buffer.from('hello layer');
    const seen: number[] = [];
    await store.ingest({ digest: sha(data), size: data.length }, async () => Readable.from([data.subarray(0, 5), data.subarray(5)]), {
      onProgress: (n) => seen.push(n),
    });
    expect(await store.has(sha(data))).toBe(true);
    expect(await store.read(sha(data))).toEqual(data);
    expect(fs.statSync(store.blobPath(sha(data))).mode & 0o777).toBe(0o444);
    expect(seen).toEqual([5, data.length]);
    expect(ingestDirEntries()).toEqual([]);
    expect(await store.stat(sha(data))).toEqual({ mediaType: 'application/octet-stream', digest: sha(data), size: data.length });
  });

  it.each<[string, Buffer, (e: unknown) => void]>([
    ['too short', Buffer.from('hello'), (e) => expect(e).toBeInstanceOf(SizeMismatchError)],
    ['too long', Buffer.from('hello world and more'), (e) => expect(e).toBeInstanceOf(SizeMismatchError)],
    ['the wrong bytes', Buffer.from('HELLO WORLD'), (e) => expect(e).toBeInstanceOf(DigestMismatchError)],
  ])('refuses content that is %s, leaving no blob and no ingest file', async (_what, served, check) => {
    const want = Buffer.from('hello world');
    const err = await store.ingest({ digest: sha(want), size: want.length }, async () => Readable.from([served])).catch((e: unknown) => e);
    check(err);
    expect((err as Error).message).toContain(sha(want));
    expect(await store.has(sha(want))).toBe(false);
    expect(blobNames()).toEqual([]);
    expect(ingestDirEntries()).toEqual([]);
  });

  it('verifies the digest when no size is given', async () => {
    const want = Buffer.from('abc');
    await expect(store.ingest({ digest: sha(want) }, async () => Readable.from([Buffer.from('abd')]))).rejects.toBeInstanceOf(DigestMismatchError);
    await store.ingest({ digest: sha(want) }, async () => Readable.from([want]));
    expect(await store.read(sha(want))).toEqual(want);
  });

  it('a source that fails midway leaves nothing behind', async () => {
    const want = Buffer.alloc(1000, 1);
    const failing = async () =>
      new Readable({
        read() {
          this.push(want.subarray(0, 100));
          this.destroy(new Error('connection reset'));
        },
      });
    await expect(store.ingest({ digest: sha(want), size: 1000 }, failing)).rejects.toThrow(/connection reset/);
    expect(blobNames()).toEqual([]);
    expect(ingestDirEntries()).toEqual([]);
    await expect(
      store.ingest({ digest: sha(want), size: 1000 }, async () => {
        throw new Error('no route');
      }),
    ).rejects.toThrow(/no route/);
    expect(ingestDirEntries()).toEqual([]);
  });

  it('concurrent ingests of one digest call the source once', async () => {
    const data = Buffer.alloc(64 * 1024, 7);
    let calls = 0;
    const source = async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 20));
      return Readable.from([data]);
    };
    const expected = { digest: sha(data), size: data.length };
    await Promise.all([store.ingest(expected, source), store.ingest(expected, source), store.ingest(expected, source)]);
    expect(calls).toBe(1);
    // Once stored, it is not fetched again either.
    await store.ingest(expected, source);
    expect(calls).toBe(1);
    expect(await store.read(expected.digest)).toEqual(data);
  });

  it('a failed shared ingest fails every waiter, and a later ingest retries', async () => {
    const data = Buffer.from('retry me');
    let calls = 0;
    const bad = async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 10));
      return Readable.from([Buffer.from('garbage!')]);
    };
    const expected = { digest: sha(data), size: data.length };
    const results = await Promise.allSettled([store.ingest(expected, bad), store.ingest(expected, bad)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(calls).toBe(1);
    await store.ingest(expected, async () => Readable.from([data]));
    expect(await store.has(expected.digest)).toBe(true);
  });

  it('feeds a tap the same bytes and ends it on success', async () => {
    const data = Buffer.from('tapped bytes');
    const tap = new PassThrough();
    const received: Buffer[] = [];
    tap.on('data', (c: Buffer) => received.push(c));
    const ended = new Promise((r) => tap.on('end', r));
    await store.ingest({ digest: sha(data), size: data.length }, async () => Readable.from([data]), { tap });
    await ended;
    expect(Buffer.concat(received)).toEqual(data);
  });

  it('destroys the tap with the error on failure', async () => {
    const tap = new PassThrough();
    tap.resume();
    const tapError = new Promise<Error>((r) => tap.on('error', r));
    await expect(store.ingest({ digest: sha('x'), size: 1 }, async () => Readable.from([Buffer.from('y')]), { tap })).rejects.toBeInstanceOf(DigestMismatchError);
    expect(await tapError).toBeInstanceOf(DigestMismatchError);
  });

  it('put, read, has, list and delete', async () => {
    const a = Buffer.from('config a');
    const b = Buffer.from('manifest b');
    expect(await store.put(a)).toBe(sha(a));
    expect(await store.put(b, sha(b))).toBe(sha(b));
    expect(await store.put(a)).toBe(sha(a)); // idempotent
    await expect(store.put(a, sha(b))).rejects.toBeInstanceOf(DigestMismatchError);
    const listed = [];
    for await (const x of store.list()) listed.push(x);
    expect(listed.sort((x, y) => x.digest.localeCompare(y.digest))).toEqual(
      [
        { digest: sha(a), size: a.length },
        { digest: sha(b), size: b.length },
      ].sort((x, y) => x.digest.localeCompare(y.digest)),
    );
    await store.delete(sha(a));
    expect(await store.has(sha(a))).toBe(false);
    expect(await store.has(sha(b))).toBe(true);
    const err = await store.read(sha(a)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toContain(sha(a));
    expect(await store.stat(sha(a))).toBeUndefined();
    await store.delete(sha(a)); // deleting twice is fine
  });

  it('list ignores stray files in the blobs directory', async () => {
    await store.put(Buffer.from('real'));
    fs.writeFileSync(path.join(store.blobsDir, 'not-a-digest'), 'x');
    const listed = [];
    for await (const x of store.list()) listed.push(x.digest);
    expect(listed).toEqual([sha('real')]);
  });

  it('rehash detects a corrupted blob', async () => {
    const data = Buffer.from('precious bytes');
    const digest = await store.put(data);
    expect(await store.rehash(digest)).toBe(digest);
    const file = store.blobPath(digest);
    fs.chmodSync(file, 0o644);
    const bytes = fs.readFileSync(file);
    bytes[0] ^= 0xff;
    fs.writeFileSync(file, bytes);
    const actual = await store.rehash(digest);
    expect(actual).not.toBe(digest);
    expect(actual).toBe(sha(bytes));
  });

  it('init drops leftover ingest files but keeps committed blobs', async () => {
    const digest = await store.put(Buffer.from('kept'));
    fs.writeFileSync(path.join(store.ingestDir, `${'a'.repeat(64)}-deadbeef`), 'half a download');
    const reopened = new ContentStore(root);
    await reopened.init();
    expect(fs.readdirSync(reopened.ingestDir)).toEqual([]);
    expect(await reopened.read(digest)).toEqual(Buffer.from('kept'));
  });

  it('refuses digests that are not sha256:<64 lowercase hex> before touching a path', async () => {
    for (const bad of ['sha256:../../etc', `sha256:../../${'a'.repeat(58)}`, 'sha256:' + 'A'.repeat(64), 'sha512:' + 'a'.repeat(64), 'a'.repeat(64), '', `sha256:${'a'.repeat(64)}/x`]) {
      expect(() => digestHex(bad)).toThrow(InvalidArgumentError);
      expect(() => store.blobPath(bad)).toThrow(/invalid digest/);
      expect(await store.has(bad)).toBe(false);
      // A rejected promise, not a synchronous throw: callers chain .catch() on ingest.
      const p = store.ingest({ digest: bad }, async () => Readable.from([Buffer.from('x')]));
      await expect(p).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    expect(digestHex(`sha256:${'0'.repeat(64)}`)).toBe('0'.repeat(64));
  });
});

describe('VerifyingStream', () => {
  it('passes verified bytes through and fails before end on a mismatch', async () => {
    const ok = new VerifyingStream({ digest: sha256Digest('abc'), size: 3 });
    const chunks: Buffer[] = [];
    ok.on('data', (c: Buffer) => chunks.push(c));
    await new Promise<void>((resolve, reject) => {
      ok.on('end', resolve).on('error', reject);
      ok.end('abc');
    });
    expect(Buffer.concat(chunks).toString()).toBe('abc');

    const bad = new VerifyingStream({ digest: sha256Digest('abc'), size: 3 }, 'layer');
    let ended = false;
    bad.on('data', () => {}).on('end', () => (ended = true));
    const err = await new Promise<Error>((resolve) => {
      bad.on('error', resolve);
      bad.end('abd');
    });
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.message).toMatch(/^layer digest mismatch/);
    expect(ended).toBe(false);
  });
});
