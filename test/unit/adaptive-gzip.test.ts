import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { AdaptiveGzip } from '../../core/layers/compression';

async function gzipAll(parts: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(parts), new AdaptiveGzip(), new Writable({ write: (c, _e, cb) => (out.push(c), cb()) }));
  return Buffer.concat(out);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const text = (mb: number) => Buffer.from('a line of very compressible text\n'.repeat(Math.ceil((mb << 20) / 33))).subarray(0, mb << 20);

describe('AdaptiveGzip', () => {
  it('writes one standard gzip member that round-trips random, text and mixed data', async () => {
    const cases = {
      empty: [] as Buffer[],
      random: [randomBytes(3 << 20)],
      text: [text(3)],
      mixed: [randomBytes(3 << 20), text(4), randomBytes(1 << 20), text(2)],
    };
    for (const [name, parts] of Object.entries(cases)) {
      const gz = await gzipAll(parts);
      const input = Buffer.concat(parts);
      expect(gz.subarray(0, 3), name).toEqual(Buffer.from([0x1f, 0x8b, 8]));
      expect(sha(gunzipSync(gz)), name).toBe(sha(input));
    }
  });

  it('stores incompressible windows and compresses the compressible ones', async () => {
    const random = randomBytes(4 << 20);
    const gzRandom = await gzipAll([random]);
    // Stored blocks cost 5 bytes per 64 KiB: within 1% of the input, never a deflate expansion.
    expect(gzRandom.length).toBeLessThan(random.length * 1.01);
    const mixed = [randomBytes(4 << 20), text(6)];
    const gzMixed = await gzipAll(mixed);
    // The 6 MiB of text after the random part still shrinks to almost nothing.
    expect(gzMixed.length).toBeLessThan((4 << 20) * 1.01 + (1 << 20));
  });
});
