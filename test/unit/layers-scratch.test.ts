import { syscalls, S_IFCHR, S_IFIFO, splitDev } from '../../core/sys/syscalls';
import fs from 'node:fs';
import { it } from 'vitest'; it('scratch', () => {
fs.rmSync('/tmp/sct', { recursive: true, force: true });
fs.mkdirSync('/tmp/sct');
syscalls.mknod('/tmp/sct/c', S_IFCHR | 0o644, 1, 3);
syscalls.mknod('/tmp/sct/f', S_IFIFO | 0o644, 0, 0);
const st = fs.lstatSync('/tmp/sct/c'); console.log(st.isCharacterDevice(), splitDev(st.rdev), fs.lstatSync('/tmp/sct/f').isFIFO());
fs.writeFileSync('/tmp/sct/x', 'x'); fs.symlinkSync('x', '/tmp/sct/l');
syscalls.lsetxattr('/tmp/sct/x', 'user.foo', Buffer.from('bar'));
syscalls.lsetxattr('/tmp/sct/x', 'trusted.overlay.opaque', Buffer.from('y'));
console.log(syscalls.llistxattr('/tmp/sct/x'), syscalls.lgetxattr('/tmp/sct/x', 'user.foo')?.toString(), syscalls.lgetxattr('/tmp/sct/x', 'user.none'), syscalls.llistxattr('/tmp/sct/l'));
try { syscalls.lsetxattr('/tmp/sct/l', 'user.foo', Buffer.from('bar')); } catch (e) { console.log(String(e)); }
fs.mkdirSync('/tmp/sct/m'); syscalls.mount('tmpfs', '/tmp/sct/m', 'tmpfs', 0, 'size=1m');
console.log(fs.readFileSync('/proc/self/mountinfo', 'utf8').includes('/tmp/sct/m'));
syscalls.umount2('/tmp/sct/m', 2);
try { syscalls.umount2('/tmp/sct/m', 2); } catch (e) { console.log(String(e), (e as any).code); }
fs.rmSync('/tmp/sct', { recursive: true });
});
