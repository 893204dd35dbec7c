/**
 * How much a peer has yet to read of what was written to a stream socket (ioctl SIOCOUTQ). On
 * Unix sockets this counts bytes the receiver has not consumed, so a writer can tell when the
 * peer has read a response's headers before it sends the body.
 */
import { libcCalls } from './syscalls';

const SIOCOUTQ = 0x5411;

type Ioctl = (fd: number, request: number, out: number[]) => number;
let ioctl: Ioctl | undefined;

/** Unread bytes in the socket's send queue, or undefined when the kernel cannot tell. */
export function unreadBytes(fd: number): number | undefined {
  if (!ioctl) {
    const { koffi } = libcCalls();
    ioctl = koffi.load('libc.so.6').func('int ioctl(int fd, unsigned long request, _Out_ int *value)') as unknown as Ioctl;
  }
  const out = [0];
  return ioctl!(fd, SIOCOUTQ, out) === 0 ? out[0] : undefined;
}
