import { PassThrough, Readable } from 'node:stream';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { chainIdHex, entryComponents, layerCompression, openLayerStream, whiteoutOf } from '../../core/layers';

describe('layer names', () => {
  it('cleans entry names and refuses escapes', () => {
    expect(entryComponents('./a/b/')).toEqual(['a', 'b']);
    expect(entryComponents('/abs/path')).toEqual(['abs', 'path']);
    expect(entryComponents('a/../b')).toEqual(['b']);
    expect(() => entryComponents('../x')).toThrow('invalid layer: entry "../x" escapes the root');
    expect(() => entryComponents('/../x')).toThrow(/escapes the root/);
    expect(() => entryComponents('a/../../x')).toThrow(/escapes the root/);
  });

  it('classifies whiteouts and refuses bad ones', () => {
    expect(whiteoutOf('.wh.foo', 'd/.wh.foo')).toEqual({ kind: 'whiteout', target: 'foo' });
    expect(whiteoutOf('.wh..wh..opq', 'd/.wh..wh..opq')).toEqual({ kind: 'opaque' });
    expect(whiteoutOf('foo', 'foo')).toBeNull();
    for (const bad of ['.wh.', '.wh..', '.wh...', '.wh..wh.plnk']) expect(() => whiteoutOf(bad, bad)).toThrow(/not a valid whiteout/);
  });

  it('validates chain IDs before they become paths', () => {
    expect(chainIdHex(`sha256:${'a'.repeat(64)}`)).toBe('a'.repeat(64));
    expect(() => chainIdHex('sha256:../../etc')).toThrow(/invalid chain ID/);
    expect(() => chainIdHex(`sha512:${'a'.repeat(64)}`)).toThrow(/invalid chain ID/);
  });
});

describe('openLayerStream', () => {
  const read = async (s: Readable) => {
    const chunks: Buffer[] = [];
    for await (const c of s) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString();
  };

  it('maps media types to compressions', () => {
    expect(layerCompression('application/vnd.oci.image.layer.v1.tar')).toBe('none');
    expect(layerCompression('application/vnd.oci.image.layer.v1.tar+gzip')).toBe('gzip');
    expect(layerCompression('application/vnd.docker.image.rootfs.diff.tar.gzip')).toBe('gzip');
    expect(() => layerCompression('text/plain')).toThrow(/unsupported layer media type "text\/plain"/);
  });

  it('decompresses gzip and rejects trailing bytes', async () => {
    const gz = zlib.gzipSync(Buffer.from('hello'));
    expect(await read(openLayerStream(Readable.from([gz]), 'application/vnd.oci.image.layer.v1.tar+gzip'))).toBe('hello');
    await expect(read(openLayerStream(Readable.from([Buffer.concat([gz, Buffer.alloc(8)])]), 'application/vnd.oci.image.layer.v1.tar+gzip'))).rejects.toThrow(
      'invalid layer: 8 bytes of trailing data after the gzip stream',
    );
    await expect(read(openLayerStream(Readable.from([Buffer.from('not gzip')]), 'application/vnd.oci.image.layer.v1.tar+gzip'))).rejects.toThrow(/bad gzip data/);
  });

  it('refuses zstd clearly on a Node without it', () => {
    const blob = new PassThrough();
    expect(() => openLayerStream(blob, 'application/vnd.oci.image.layer.v1.tar+zstd')).toThrow(/zstd-compressed layers .* are not supported/);
    expect(blob.destroyed).toBe(true);
  });
});
