/**
 * Docker's default seccomp profile, on by default, in a real berthd with the default config; the
 * security options that change it (unconfined, a profile file, --privileged); and the session
 * keyring each container gets, checked against the keyring berthd itself runs in.
 *
 * A static probe (compiled here with gcc -static, bound into containers read-only) makes the calls
 * busybox cannot: add_key, keyctl, mbind, clone3, personality, i386 `int 0x80`.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import koffi from 'koffi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, removeAllAndStop, runProgram, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { hasCommand, isRoot, rootReason } from '../helpers/env';
import { makeTempDir, pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

const PROBE_C = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/keyctl.h>
static long ring(const char *s) {
  return !strcmp(s, "@u") ? KEY_SPEC_USER_KEYRING : !strcmp(s, "@us") ? KEY_SPEC_USER_SESSION_KEYRING : KEY_SPEC_SESSION_KEYRING;
}
static void report(const char *what, long r) {
  if (r < 0) printf("%s errno %d\n", what, errno);
  else printf("%s ok\n", what);
}
int main(int argc, char **argv) {
  const char *m = argc > 1 ? argv[1] : "";
  if (!strcmp(m, "add") && argc == 4) report("add_key", syscall(SYS_add_key, "user", argv[3], "v", 1, ring(argv[2])));
  else if (!strcmp(m, "keyctl")) report("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
  else if (!strcmp(m, "session")) {
    char d[256] = "";
    long n = syscall(SYS_keyctl, KEYCTL_DESCRIBE, KEY_SPEC_SESSION_KEYRING, d, sizeof d - 1);
    if (n < 0) printf("session errno %d\n", errno); else printf("session %s\n", strrchr(d, ';') + 1);
  } else if (!strcmp(m, "find") && argc == 4) {
    long r = syscall(SYS_keyctl, KEYCTL_SEARCH, ring(argv[2]), "user", argv[3], 0);
    printf("%s %s\n", argv[2], r < 0 ? "missing" : "found");
  } else if (!strcmp(m, "mbind")) report("mbind", syscall(SYS_mbind, (void *)0, 0UL, 0, (void *)0, 0UL, 0U));
  else if (!strcmp(m, "clone3")) { long r = syscall(435, NULL, 0); printf("clone3 errno %d\n", r < 0 ? errno : 0); }
  else if (!strcmp(m, "personality")) report("personality", syscall(SYS_personality, 0xffffffffUL));
  else if (!strcmp(m, "i386") && argc == 3) {
    long ret = !strcmp(argv[2], "getpid") ? 20 : 21; /* syscall_32.tbl: getpid 20, mount 21 */
    __asm__ volatile("int $0x80" : "+a"(ret) : "b"(0), "c"(0), "d"(0) : "memory", "r8", "r9", "r10", "r11");
    printf("i386-%s %ld\n", argv[2], ret);
  } else { fprintf(stderr, "usage\n"); return 2; }
  return 0;
}
`;

const KEYCTL_JOIN_SESSION_KEYRING = 1;
const SYS_KEYCTL: Partial<Record<string, number>> = { x64: 250, arm64: 219 };

/** Joins this thread (and so every process it spawns, berthd included) to a new named session keyring. */
function joinSessionKeyring(name: string): void {
  const syscall = koffi.load('libc.so.6').func('long syscall(long nr, ...)');
  const rc = syscall(SYS_KEYCTL[process.arch]!, 'int', KEYCTL_JOIN_SESSION_KEYRING, 'str', name) as number;
  if (rc < 0) throw new Error(`keyctl(JOIN_SESSION_KEYRING, ${name}) failed`);
}

const seccompField = (out: string) => out.match(/^Seccomp:\s*(\d)/m)?.[1];

describe.skipIf(!isRoot || !SYS_KEYCTL[process.arch])(`Docker's default seccomp profile and per-container keyrings (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let work: string;
  let img: string;
  let probeDir: string;
  const tag = randomBytes(6).toString('hex');
  const hostProbe = (...args: string[]) => execFileSync(path.join(probeDir, 'probe'), args, { encoding: 'utf8' });

  beforeAll(async () => {
    work = await makeTempDir('berth-seccomp-default-');
    probeDir = path.join(work, 'probe');
    await fs.mkdir(probeDir);
    await fs.writeFile(path.join(work, 'probe.c'), PROBE_C);
    execFileSync('gcc', ['-static', '-O2', '-o', path.join(probeDir, 'probe'), path.join(work, 'probe.c')]);
    registry = await startRegistry();
    img = `${registry.host}/seccomp-default/busybox:latest`;
    await pushBusybox(registry.host, 'seccomp-default/busybox:latest', {});
    // berthd inherits this keyring: a container that shared berthd's would put keys in it.
    joinSessionKeyring(`berth-test-${tag}`);
    expect(hostProbe('session')).toBe(`session berth-test-${tag}\n`);
    daemon = await startDaemon();
    expectOk(await daemon.cli(['pull', '-q', img]));
  }, 120_000);

  afterAll(async () => {
    if (daemon) expect(await removeAllAndStop(daemon)).toEqual([]);
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  const run = (args: string[], cmd: string[]) => daemon.cli(['run', '--rm', '--network', 'none', '-v', `${probeDir}:/probe:ro`, ...args, img, ...cmd]);

  it('a default container has the filter; unshare, mount, add_key, keyctl and mbind fail with EPERM', async () => {
    const res = await run(
      [],
      [
        'sh',
        '-c',
        [
          'grep "^Seccomp:" /proc/self/status',
          'unshare -Ur true 2>&1 || echo unshare-refused',
          'mkdir -p /mnt/t; mount -t tmpfs none /mnt/t 2>&1 || echo mount-refused',
          '/probe/probe add @u berth-u-' + tag,
          '/probe/probe add @s berth-s-' + tag,
          '/probe/probe keyctl',
          '/probe/probe mbind',
          '/probe/probe clone3',
          '/probe/probe personality',
        ].join('; '),
      ],
    );
    expect(res.code).toBe(0);
    expect(seccompField(res.stdout)).toBe('2');
    expect(res.stdout).toMatch(/unshare.*Operation not permitted\nunshare-refused\n/);
    expect(res.stdout).toMatch(/mount: permission denied.*\nmount-refused\n/);
    expect(res.stdout).toContain('add_key errno 1\nadd_key errno 1\nkeyctl errno 1\nmbind errno 1\n');
    // clone3 answers ENOSYS so libc falls back to clone; personality(0xffffffff) is a query Docker allows.
    expect(res.stdout).toContain('clone3 errno 38\npersonality ok\n');
    // Nothing reached the host's keyrings: root's user keyring, its user session keyring, berthd's session keyring.
    expect(hostProbe('find', '@u', `berth-u-${tag}`)).toBe('@u missing\n');
    expect(hostProbe('find', '@s', `berth-s-${tag}`)).toBe('@s missing\n');
    expect(hostProbe('find', '@us', `berth-s-${tag}`)).toBe('@us missing\n');
  });

  it('ordinary programs still work: sh, ls, cat, pipes, a TCP round trip with nc over loopback', async () => {
    const res = await daemon.cli([
      'run',
      '--rm',
      img,
      'sh',
      '-c',
      // The client retries until the listener is up; `wait` lets the server finish writing.
      'ls / | grep -c bin; cat /etc/hostname >/dev/null && echo cat-ok; busybox nc -l -p 7070 > /tmp/got & server=$!; ' +
        'n=0; until echo over-tcp | busybox nc 127.0.0.1 7070 2>/dev/null || [ $n -ge 100 ]; do n=$((n+1)); sleep 0.05; done; wait $server; cat /tmp/got; id -u',
    ]);
    expectOk(res);
    expect(res.stdout).toBe('1\ncat-ok\nover-tcp\n0\n');
  });

  it('the i386 ABI gets the same profile by its own numbers: getpid works, mount (21) is refused', async () => {
    if (process.arch !== 'x64' || !/^i386-getpid [1-9]/.test(hostProbe('i386', 'getpid'))) return; // no IA32 emulation here
    const res = expectOk(await run([], ['sh', '-c', '/probe/probe i386 getpid; /probe/probe i386 mount']));
    expect(res.stdout).toMatch(/^i386-getpid [1-9]\d*\ni386-mount -1\n$/); // -EPERM
  });

  it("exec sessions get the container's filter", async () => {
    const id = expectOk(await daemon.cli(['run', '-d', img, 'sleep', '30'])).stdout.trim();
    const exec = await daemon.cli(['exec', id, 'sh', '-c', 'grep "^Seccomp:" /proc/self/status; unshare -Ur true 2>&1 || echo unshare-refused']);
    expect(seccompField(exec.stdout)).toBe('2');
    expect(exec.stdout).toContain('unshare-refused\n');
    expectOk(await daemon.cli(['rm', '-f', id]));
  });

  it('--security-opt seccomp=unconfined removes the filter: unshare -Ur works again', async () => {
    const res = expectOk(await run(['--security-opt', 'seccomp=unconfined'], ['sh', '-c', 'grep "^Seccomp:" /proc/self/status; unshare -Ur true && echo unshared']));
    expect(seccompField(res.stdout)).toBe('0');
    expect(res.stdout).toContain('unshared\n');
  });

  it('--privileged has no filter, as with Docker', async () => {
    const res = expectOk(await run(['--privileged'], ['grep', '^Seccomp:', '/proc/self/status']));
    expect(seccompField(res.stdout)).toBe('0');
  });

  it('a profile file: the CLI sends its JSON and the container gets exactly that profile', async () => {
    const file = path.join(work, 'no-mkdir.json');
    await fs.writeFile(file, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] }, null, 2));
    const res = await run(
      ['--security-opt', `seccomp=${file}`],
      ['sh', '-c', 'grep "^Seccomp:" /proc/self/status; mkdir /made 2>&1 || echo mkdir-refused; touch /file && echo touch-ok; unshare -Ur true && echo unshared'],
    );
    expectOk(res);
    expect(seccompField(res.stdout)).toBe('2');
    expect(res.stdout).toMatch(/mkdir: can't create directory '\/made': Operation not permitted\nmkdir-refused\ntouch-ok\nunshared\n/);
  });

  it.skipIf(!hasCommand('docker'))('the docker CLI sends a profile file the same way, and sees the builtin profile in docker info', async () => {
    const file = path.join(work, 'docker-no-mkdir.json');
    await fs.writeFile(file, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }] }));
    const env = { DOCKER_HOST: `unix://${daemon.socket}`, DOCKER_CONFIG: path.join(work, 'docker-config'), DOCKER_CLI_HINTS: 'false' };
    const res = expectOk(
      await runProgram('docker', ['run', '--rm', '--security-opt', `seccomp=${file}`, img, 'sh', '-c', 'mkdir /made 2>/dev/null || echo mkdir-refused; grep "^Seccomp:" /proc/self/status'], { env }),
      'docker run',
    );
    expect(res.stdout).toMatch(/^mkdir-refused\nSeccomp:\s+2\n$/);
    const info = expectOk(await runProgram('docker', ['info', '--format', '{{json .SecurityOptions}}'], { env }), 'docker info');
    expect(JSON.parse(info.stdout)).toContain('name=seccomp,profile=builtin');
  });

  it('refuses a bad profile or an unknown security option with a 400 naming it, and keeps serving', async () => {
    const create = (SecurityOpt: string[]) => daemon.api('/containers/create', { method: 'POST', body: { Image: img, Cmd: ['true'], HostConfig: { SecurityOpt } } });
    const badAction = await create([`seccomp=${JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOPE' }] })}`]);
    expect(badAction.status).toBe(400);
    expect((badAction.json as { message: string }).message).toMatch(/seccomp profile: syscalls\[0\]\.action: unknown value "SCMP_ACT_NOPE"/);
    const badJson = await create(['seccomp={"defaultAction":']);
    expect(badJson.status).toBe(400);
    expect((badJson.json as { message: string }).message).toMatch(/seccomp profile: not valid JSON/);
    const badDefault = await create([`seccomp=${JSON.stringify({ syscalls: [] })}`]);
    expect((badDefault.json as { message: string }).message).toMatch(/defaultAction: unknown value nothing/);
    const unknown = await create(['seccomp=unconfined', 'frobnicate=yes']);
    expect(unknown.status).toBe(400);
    expect((unknown.json as { message: string }).message).toMatch(/invalid --security-opt "frobnicate=yes"/);

    const file = path.join(work, 'bad-action.json');
    await fs.writeFile(file, JSON.stringify({ defaultAction: 'SCMP_ACT_BOGUS' }));
    const cli = await run(['--security-opt', `seccomp=${file}`], ['true']);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toMatch(/defaultAction: unknown value "SCMP_ACT_BOGUS"/);
    const missing = await run(['--security-opt', `seccomp=${path.join(work, 'nope.json')}`], ['true']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/opening seccomp profile \(.*nope\.json\) failed/);
    // A rule that could never apply is only found when compiling for the container: its start fails, naming it.
    const clash = path.join(work, 'clash.json');
    await fs.writeFile(
      clash,
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [
          { names: ['mkdir'], action: 'SCMP_ACT_LOG' },
          { names: ['mkdir'], action: 'SCMP_ACT_ERRNO' },
        ],
      }),
    );
    const started = await run(['--security-opt', `seccomp=${clash}`], ['true']);
    expect(started.code).not.toBe(0);
    expect(started.stderr).toMatch(/isolator\.seccomp.*mkdir has a rule without args already/);
    expect((await daemon.api('/_ping')).status).toBe(200);
  });

  it('each container joins its own session keyring, even unconfined; exec sessions join the same one', async () => {
    const id = expectOk(
      await daemon.cli(['run', '-d', '--security-opt', 'seccomp=unconfined', '-v', `${probeDir}:/probe:ro`, img, 'sh', '-c', `/probe/probe add @s berth-c-${tag}; /probe/probe session; sleep 30`]),
    ).stdout.trim();
    const logs = await (async () => {
      for (let i = 0; i < 50; i++) {
        const out = expectOk(await daemon.cli(['logs', id])).stdout;
        if (out.includes('session')) return out;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('the container printed nothing');
    })();
    expect(logs).toBe(`add_key ok\nsession _ses.${id}\n`);
    // Not in berthd's session keyring, which the test shares, nor in root's user session keyring.
    expect(hostProbe('find', '@s', `berth-c-${tag}`)).toBe('@s missing\n');
    expect(hostProbe('find', '@us', `berth-c-${tag}`)).toBe('@us missing\n');
    const exec = expectOk(await daemon.cli(['exec', id, '/probe/probe', 'find', '@s', `berth-c-${tag}`]));
    expect(exec.stdout).toBe('@s found\n');
    const other = expectOk(await run(['--security-opt', 'seccomp=unconfined'], ['sh', '-c', `/probe/probe session; /probe/probe find @s berth-c-${tag}`]));
    expect(other.stdout).toMatch(/^session _ses\.[0-9a-f]{64}\n@s missing\n$/);
    expect(other.stdout).not.toContain(id);
    expectOk(await daemon.cli(['rm', '-f', id]));
  });

  it('/info and berth info list the profile as dockerd and docker info do', async () => {
    const info = (await daemon.api('/info')).json as { SecurityOptions: string[] };
    expect(info.SecurityOptions).toContain('name=seccomp,profile=builtin');
    expect(expectOk(await daemon.cli(['info'])).stdout).toContain('Security Options:\n seccomp\n  Profile: builtin\n');
  });
});
