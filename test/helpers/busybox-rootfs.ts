/** A root filesystem made from the host's static busybox (no berth code: the conformance suites use it too). */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const BUSYBOX = '/bin/busybox';

/** Applets linked when busybox has them. */
const APPLETS = [
  'sh',
  'cat',
  'echo',
  'ls',
  'hostname',
  'id',
  'mount',
  'umount',
  'grep',
  'sleep',
  'true',
  'false',
  'ps',
  'ip',
  'ifconfig',
  'tty',
  'test',
  'touch',
  'mkdir',
  'rm',
  'wc',
  'head',
  'env',
  'stat',
  'readlink',
  'dd',
  'pwd',
  'stty',
  'kill',
  'whoami',
  'od',
  'tr',
  'cut',
];

/** Build a busybox rootfs at `dir`: /bin with applet links, /etc/passwd with `app` (uid 1000). */
export function buildBusyboxRootfs(dir: string): string {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: install busybox-static`);
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'home/app', 'root', 'data']) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  copyFileSync(BUSYBOX, join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  const available = new Set(execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n'));
  for (const applet of APPLETS) if (available.has(applet)) symlinkSync('busybox', join(dir, 'bin', applet));
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\ntty:x:5:\napp:x:1000:\nnogroup:x:65534:\n');
  return dir;
}
