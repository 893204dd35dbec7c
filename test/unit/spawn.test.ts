/** spawnWithChannel: posix_spawn with a two-way channel on fd 3, what runtime.native starts its launcher with. */
import { closeSync, existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { spawnWithChannel } from '../../core/sys/spawn';
import { libcCalls } from '../../core/sys/syscalls';

function readAll(s: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString()));
    s.on('end', () => resolve(text));
    s.on('close', () => resolve(text));
  });
}

describe('spawnWithChannel', () => {
  it('gives the child stderr and a two-way fd 3, its own session, default signals, and reaps it', async () => {
    // The child reports its session, its ignored signals (Node itself ignores SIGPIPE), echoes one
    // line back from fd 3, and exits 7.
    const script = 'ps=$(cut -d" " -f6 /proc/self/stat); echo "sid $ps pid $$" >&3; grep SigIgn /proc/self/status >&3; read line <&3; echo "got $line" >&2; exit 7';
    const child = spawnWithChannel('sh', ['-c', script]);
    const fromChannel = readAll(child.channel);
    const fromStderr = readAll(child.stderr);
    child.channel.write('hello\n');
    const status = await child.exited;
    const lines = (await fromChannel).trim().split('\n');
    const [, sid, , pid] = lines[0].split(' ');
    expect(sid).toBe(pid);
    expect(Number(pid)).toBe(child.pid);
    // SIGPIPE (bit 12) is back to its default; glibc's own signals 32 and 33 posix_spawn leaves
    // ignored (the launcher resets those for the container's process).
    const ignored = BigInt('0x' + lines[1].split(/\s+/)[1]);
    expect(ignored & ~0x180000000n).toBe(0n);
    expect(await fromStderr).toBe('got hello\n');
    expect(status >> 8).toBe(7);
    // Reaped: no zombie left under berthd's pid.
    expect(existsSync(`/proc/${child.pid}`) && readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(' ')[2] === 'Z').toBe(false);
  });

  it('gives the child nothing on stdin and stdout, and no descriptor past 3', async () => {
    // A descriptor opened without O_CLOEXEC (Node always sets it; a native module may not).
    const open = libcCalls().koffi.load('libc.so.6').func('int open(const char *path, int flags)') as unknown as (p: string, f: number) => number;
    const leaky = open('/dev/null', 0);
    try {
      // Read from a subshell: /proc/$$ is the parent shell, whose descriptors are as spawned.
      const child = spawnWithChannel('sh', ['-c', 'in=$(readlink /proc/$$/fd/0); out=$(readlink /proc/$$/fd/1); fds=$(ls /proc/$$/fd); echo $in $out $fds >&3']);
      const out = (await readAll(child.channel)).trim().split(' ');
      await child.exited;
      expect(out.slice(0, 2)).toEqual(['/dev/null', '/dev/null']);
      expect(out.slice(2)).not.toContain(String(leaky));
      expect(out.slice(2).slice(0, 4)).toEqual(['0', '1', '2', '3']);
    } finally {
      closeSync(leaky);
    }
  });

  it('names a program it cannot run', () => {
    expect(() => spawnWithChannel('/nonexistent/berth-launch', [])).toThrow(/posix_spawn \/nonexistent\/berth-launch: ENOENT/);
  });

  it('reaps many children that exit at once', async () => {
    const children = Array.from({ length: 20 }, () => spawnWithChannel('true', []));
    const statuses = await Promise.all(children.map((c) => c.exited));
    expect(statuses.every((s) => s === 0)).toBe(true);
    for (const c of children) (c.channel.destroy(), c.stderr.destroy());
  });
});
