/**
 * Docker's JSON progress stream (jsonmessage): one object per line, e.g.
 *   {"status":"Downloading","progressDetail":{"current":1,"total":2},"progress":"[==>  ] 1B/2B","id":"d8d02d457314"}
 * and, on failure, {"errorDetail":{"message":"..."},"error":"..."}.
 */
import type { ServerResponse } from 'node:http';
import type { ProgressEvent } from '../contracts/types';
import { progressBar } from './format';

export function progressMessage(e: ProgressEvent): Record<string, unknown> {
  const msg: Record<string, unknown> = { status: e.status };
  if (e.current !== undefined) {
    msg.progressDetail = { current: e.current, total: e.total };
    msg.progress = progressBar(e.current, e.total ?? 0);
  } else if (e.id) {
    msg.progressDetail = {};
  }
  if (e.id) msg.id = e.id;
  return msg;
}

/** Start a streamed JSON response and return a writer for progress events and a final error. */
export function progressStream(res: ServerResponse) {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  const write = (obj: unknown) => {
    if (!res.writableEnded && !res.destroyed) res.write(JSON.stringify(obj) + '\r\n');
  };
  return {
    progress: (e: ProgressEvent) => write(progressMessage(e)),
    error: (err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      write({ errorDetail: { message }, error: message });
    },
    raw: write,
    end: () => res.end(),
  };
}

/**
 * A progress stream whose 200 header is only sent with the first message, so an error before any
 * output (no such image, a bad Dockerfile) still gets its own status code, as dockerd sends it.
 */
export function lazyProgressStream(res: ServerResponse) {
  let stream: ReturnType<typeof progressStream> | undefined;
  const open = () => (stream ??= progressStream(res));
  return {
    progress: (e: ProgressEvent) => open().progress(e),
    raw: (obj: unknown) => open().raw(obj),
    started: () => stream !== undefined,
    error: (err: unknown) => open().error(err),
    end: () => open().end(),
  };
}
