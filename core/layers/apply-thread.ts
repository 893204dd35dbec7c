/**
 * The body of a layer-apply worker thread (see apply-worker.ts): the uncompressed tar arrives as
 * messages on the worker's port and goes through the same applyLayerTar as in the main thread.
 * Loaded only as a worker's entry point; it does nothing when imported elsewhere.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Readable } from 'node:stream';
import { applyLayerTar, type WhiteoutMode } from './apply';
import type { FromApplier, ToApplier } from './apply-worker';

export interface ApplyThreadData {
  root: string;
  whiteouts: WhiteoutMode;
  chown?: boolean;
  ownTree?: boolean;
}

if (!isMainThread && parentPort && (workerData as { berthApplyLayer?: ApplyThreadData })?.berthApplyLayer) {
  const port = parentPort;
  const { root, whiteouts, chown, ownTree } = (workerData as { berthApplyLayer: ApplyThreadData }).berthApplyLayer;
  // Chunks not yet read are acknowledged when the applier reads on: the sender's backpressure.
  let owed = 0;
  const input = new Readable({
    highWaterMark: 1024 * 1024,
    read() {
      if (owed > 0) port.postMessage({ type: 'ack', n: owed } satisfies FromApplier);
      owed = 0;
    },
  });
  port.on('message', (msg: ToApplier) => {
    if (msg.type === 'chunk') {
      if (input.push(Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength))) port.postMessage({ type: 'ack', n: 1 } satisfies FromApplier);
      else owed++;
    } else if (msg.type === 'end') input.push(null);
    else input.destroy(new Error(msg.message));
  });
  applyLayerTar(root, input, { whiteouts, chown, ownTree }).then(
    (result) => port.postMessage({ type: 'done', result } satisfies FromApplier),
    (err: Error & { code?: string }) => port.postMessage({ type: 'error', name: err.name, message: err.message, code: err.code } satisfies FromApplier),
  );
}
