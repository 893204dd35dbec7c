/**
 * Node gives V8 no idle time, so a heap grown by a burst of work (a pull, a build, a hundred
 * starts) stays grown until allocation resumes: berthd's anonymous RSS stayed at 37 MB after it
 * loaded one small image; collected, it is 20 MB. When the daemon has done some work and then
 * gone quiet, ask V8 for full collections, which give the grown young generation and freed pages
 * back, then glibc for the free pages of its malloc arenas.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { mallocTrim } from '../sys/syscalls';

/** How often the daemon looks at its CPU time and resident set. */
const CHECK_MS = 2000;
/** CPU time in the last interval under which the daemon counts as idle (100 running containers cost it ~10-20 ms). */
const IDLE_MS = 50;
/** Growth of the resident set since the last collection that makes one worth it. */
const GROWN_BYTES = 2 * 1024 * 1024;
/** CPU time since the last collection that makes one worth it even when the resident set did not grow. */
const WORK_MS = 1000;

/** Starts the check; its timer never keeps the process alive. */
export function collectWhenIdle(): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  let last = cpuMs();
  let sinceCollection = 0;
  let rssAfter = process.memoryUsage.rss();
  const timer = setInterval(() => {
    const now = cpuMs();
    const spent = now - last;
    last = now;
    sinceCollection += spent;
    if (spent >= IDLE_MS) return;
    if (process.memoryUsage.rss() < rssAfter + GROWN_BYTES && sinceCollection < WORK_MS) return;
    // Twice: the first collection promotes what survives the young generation, the second frees
    // the old pages it left and lets V8 shrink the heap.
    gc();
    gc();
    // Worker threads (layer unpacking) and zlib free into malloc arenas that keep their pages.
    mallocTrim();
    rssAfter = process.memoryUsage.rss();
    last = cpuMs();
    sinceCollection = 0;
  }, CHECK_MS);
  timer.unref();
}
