/**
 * applyLayerTar in a worker thread, one per layer: a layer of tens of thousands of small files
 * is mostly synchronous metadata calls (create, chown, chmod, utimes) that would otherwise hold
 * the daemon's one thread, while decompression and the diff ID hash share it too. In a worker,
 * the layers of one image unpack on every core at once and the event loop stays free.
 *
 * The tar bytes are posted to the worker in order with a bounded number in flight; the worker
 * runs the very same applier (every hostile-input rule of apply.ts). A failure of the source (a
 * diff ID mismatch, bad gzip) is handed to the worker as a stream error and the call settles only
 * once the worker has stopped writing, so the caller can remove the half-made tree right away.
 * It applies inline where the compiled worker entry is missing (running from TypeScript sources)
 * or the caller brings its own Syscalls (which cannot cross into a thread).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Worker } from 'node:worker_threads';
import { applyLayerTar, type ApplyOptions, type ApplyResult } from './apply';
import type { ApplyThreadData } from './apply-thread';
import { InvalidLayerError } from './errors';
import { syscalls as defaultSyscalls } from '../sys/syscalls';

export type ToApplier = { type: 'chunk'; data: Uint8Array } | { type: 'end' } | { type: 'abort'; message: string };
export type FromApplier = { type: 'ack'; n: number } | { type: 'done'; result: ApplyResult } | { type: 'error'; name: string; message: string; code?: string };

/** Chunks posted and not yet read by the worker's applier. */
const MAX_IN_FLIGHT = 16;
const THREAD_ENTRY = path.join(__dirname, 'apply-thread.js');

export async function applyLayerTarThreaded(root: string, source: Readable, opts: ApplyOptions): Promise<ApplyResult> {
  if ((opts.syscalls && opts.syscalls !== defaultSyscalls) || !existsSync(THREAD_ENTRY)) return applyLayerTar(root, source, opts);
  const data: ApplyThreadData = { root, whiteouts: opts.whiteouts, chown: opts.chown, ownTree: opts.ownTree };
  // Untracked fds: the applier opens directories with openat2 (not fs.open) and closes them itself.
  // A small young generation: this thread's garbage is short-lived (headers, chunks), and every
  // layer being unpacked holds a heap of its own.
  const worker = new Worker(THREAD_ENTRY, { workerData: { berthApplyLayer: data }, trackUnmanagedFds: false, resourceLimits: { maxYoungGenerationSizeMb: 8 } });
  let inFlight = 0;
  let resume: (() => void) | null = null;
  let settled = false;
  let applyError: Error | undefined;
  const outcome = new Promise<ApplyResult>((resolve, reject) => {
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      applyError = err;
      resume?.();
      // The layer is refused: stop reading it (the download behind it stops too).
      source.destroy();
      reject(err);
    };
    worker.on('message', (msg: FromApplier) => {
      if (msg.type === 'ack') {
        inFlight -= msg.n;
        if (inFlight < MAX_IN_FLIGHT && resume) {
          const go = resume;
          resume = null;
          go();
        }
      } else if (msg.type === 'done') {
        settled = true;
        resolve(msg.result);
      } else fail(reviveError(msg));
    });
    worker.once('error', fail);
    worker.once('exit', (code) => {
      if (!settled) fail(new Error(`layer apply thread exited with code ${code}`));
    });
  });
  outcome.catch(() => undefined); // read below; this keeps an early failure from being unhandled
  const sink = new Writable({
    highWaterMark: 0,
    write(chunk: Buffer, _enc, cb) {
      if (settled) return cb();
      // A copy the worker owns: network and zlib chunks are views of shared pool memory.
      const copy = new Uint8Array(chunk);
      worker.postMessage({ type: 'chunk', data: copy } satisfies ToApplier, [copy.buffer]);
      if (++inFlight < MAX_IN_FLIGHT) cb();
      else resume = () => cb();
    },
    final(cb) {
      if (!settled) worker.postMessage({ type: 'end' } satisfies ToApplier);
      cb();
    },
  });
  const fed = pipeline(source, sink);
  try {
    try {
      await fed;
    } catch (err) {
      if (applyError) throw applyError;
      // The source broke (diff ID, gzip, size limit): the worker fails its apply on this error.
      worker.postMessage({ type: 'abort', message: (err as Error).message } satisfies ToApplier);
      await outcome.catch(() => undefined);
      throw err;
    }
    return await outcome;
  } finally {
    await worker.terminate();
  }
}

/** The worker's error as the main thread's own kind (InvalidLayerError keeps its HTTP 400). */
function reviveError(msg: { name: string; message: string; code?: string }): Error {
  if (msg.name === 'InvalidLayerError') {
    const err = new InvalidLayerError('');
    err.message = msg.message;
    return err;
  }
  const err = new Error(msg.message) as NodeJS.ErrnoException;
  if (msg.code) err.code = msg.code;
  return err;
}
