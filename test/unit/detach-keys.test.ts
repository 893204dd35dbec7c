import { describe, expect, it } from 'vitest';
import { DetachWatcher, parseDetachKeys } from '../../core/api/detach-keys';

describe('detach keys', () => {
  it("parses dockerd's spelling", () => {
    expect([...parseDetachKeys('ctrl-p,ctrl-q')]).toEqual([16, 17]);
    expect([...parseDetachKeys('ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_')]).toEqual([0, 27, 28, 29, 30, 31]);
    expect([...parseDetachKeys('a,ctrl-x')]).toEqual([97, 24]);
    expect(() => parseDetachKeys('ctrl-1')).toThrow(/Invalid detach keys.*ctrl-1/);
    expect(() => parseDetachKeys('shift-a')).toThrow(/Invalid detach keys/);
  });

  it('detaches on the whole sequence, across chunks, and passes partial matches on', () => {
    const w = new DetachWatcher(parseDetachKeys('ctrl-p,ctrl-q'));
    expect(w.feed(Buffer.from('ab\x10'))).toEqual({ pass: Buffer.from('ab'), detach: false });
    expect(w.feed(Buffer.from('x'))).toEqual({ pass: Buffer.from('\x10x'), detach: false });
    expect(w.feed(Buffer.from('\x10\x10'))).toEqual({ pass: Buffer.from('\x10'), detach: false });
    expect(w.feed(Buffer.from('\x11rest'))).toEqual({ pass: Buffer.from(''), detach: true });
  });

  it('a one-key sequence detaches at once', () => {
    const w = new DetachWatcher(parseDetachKeys('ctrl-x'));
    expect(w.feed(Buffer.from('hi\x18more'))).toEqual({ pass: Buffer.from('hi'), detach: true });
  });
});
