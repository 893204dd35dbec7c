/**
 * Connecting to Unix sockets whose path is longer than sun_path allows (108 bytes): deep state
 * roots put attach sockets past it. The directory is opened and the socket reached through
 * /proc/self/fd/N/NAME, a short path the kernel resolves to the same inode.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

const SUN_PATH_MAX = 107;

export function connectUnix(socketPath: string): net.Socket {
  if (Buffer.byteLength(socketPath) <= SUN_PATH_MAX) return net.connect(socketPath);
  let fd: number;
  try {
    fd = fs.openSync(path.dirname(socketPath), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch (err) {
    const sock = new net.Socket();
    process.nextTick(() => sock.destroy(err as Error));
    return sock;
  }
  const sock = net.connect(`/proc/self/fd/${fd}/${path.basename(socketPath)}`);
  const close = () => {
    try {
      fs.closeSync(fd);
    } catch {
      /* already closed */
    }
  };
  sock.once('connect', close);
  sock.once('error', close);
  return sock;
}
