/** A remotecommand session (exec, attach) as both transports (SPDY, WebSocket) hand it to the runtime. */
import type { Readable, Writable } from 'node:stream';

export type TerminalSize = { width: number; height: number };

/** The streams of one remotecommand session, as the client opened them (SPDY streams or WebSocket channels). */
export interface CommandStreams {
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  /** Terminal sizes, one JSON object per resize. */
  onResize(listener: (size: TerminalSize) => void): void;
}

/** What the runtime does with a session: resolves with the command's exit code (attach: 0). */
export type CommandRunner = (streams: CommandStreams) => Promise<number>;

export interface CommandRequest {
  kind: 'exec' | 'attach';
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
  run: CommandRunner;
}

/** Runs the session's command; the outcome as the metav1.Status remotecommand v4 and later send on the error channel. */
export async function commandStatus(request: CommandRequest, streams: CommandStreams): Promise<object> {
  try {
    const code = await request.run(streams);
    return code === 0
      ? { metadata: {}, status: 'Success' }
      : {
          metadata: {},
          status: 'Failure',
          message: `command terminated with non-zero exit code: ${code}`,
          reason: 'NonZeroExitCode',
          details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
        };
  } catch (err) {
    return { metadata: {}, status: 'Failure', message: (err as Error).message, reason: 'InternalError' };
  }
}

/** Sizes as the client writes them: JSON objects back to back ({"Width":80,"Height":24}). */
export class ResizeParser {
  private buffered = '';
  constructor(private readonly onSize: (size: TerminalSize) => void) {}

  push(chunk: Buffer): void {
    this.buffered += chunk.toString('utf8');
    for (let end = this.buffered.indexOf('}'); end >= 0; end = this.buffered.indexOf('}')) {
      const one = this.buffered.slice(0, end + 1);
      this.buffered = this.buffered.slice(end + 1);
      try {
        const { Width, Height } = JSON.parse(one) as { Width: number; Height: number };
        this.onSize({ width: Width, height: Height });
      } catch {
        /* a malformed size is dropped */
      }
    }
  }
}
