/**
 * Commands in a pod's containers: ExecSync (output collected, capped), and the streaming entry
 * points Exec, Attach and PortForward, which answer with a one-time URL of the streaming server
 * (core/cri/streaming/server.ts) and run the session when the client connects there.
 */
import type { Socket } from 'node:net';
import { ConflictError, InvalidArgumentError, TimeoutError, UnavailableError } from '../contracts/errors';
import type { ContainerRecord } from '../containers/record';
import type { Engine } from '../kernel/engine';
import { closeStdinFrame, FrameDecoder, MonitorFrame, monitorReady, resizeFrame, signalFrame, stdinFrame } from '../launcher/attach';
import { connectUnix } from '../util/unix-socket';
import type { CriObjects } from './objects';
import type { CommandStreams } from './streaming/command';
import { dialTcp, type StreamingServer } from './streaming/server';

/** ExecSync output is capped, as the CRI asks (CVE-2022-1708). */
const EXEC_OUTPUT_CAP = 16 * 1024 * 1024;

/** Relays a monitor connection (core/launcher/attach.ts) to the client's streams; resolves when it closes. */
function relay(monitor: Socket, streams: CommandStreams): Promise<void> {
  const decoder = new FrameDecoder(({ type, payload }) => {
    if (type === MonitorFrame.stdout) streams.stdout?.write(payload);
    else if (type === MonitorFrame.stderr) (streams.stderr ?? streams.stdout)?.write(payload);
  });
  streams.stdin?.on('data', (c: Buffer) => monitor.write(stdinFrame(c)));
  streams.stdin?.on('end', () => monitor.writable && monitor.write(closeStdinFrame()));
  streams.onResize(({ width, height }) => monitor.writable && monitor.write(resizeFrame(height, width)));
  return new Promise((resolve) => {
    monitor.on('data', (c: Buffer) => decoder.push(c));
    monitor.on('close', () => resolve());
    monitor.on('error', () => resolve());
    monitor.resume();
  });
}

export class CriExec {
  streaming?: StreamingServer;

  constructor(
    private readonly engine: Engine,
    private readonly objects: CriObjects,
    /** The pod's addresses (port-forward dials the first). */
    private readonly podIps: (sandbox: ContainerRecord) => string[],
  ) {}

  /** Run a command in the container and collect its output; `timeout` seconds (0: none). */
  async execSync(id: string | undefined, cmd: string[] | undefined, timeout: number) {
    const { rec } = this.objects.get('container', id);
    if (!cmd?.length) throw new InvalidArgumentError('cmd: a command is required');
    const execId = this.engine.containers.execCreate(rec.Id, { Cmd: cmd, AttachStdout: true, AttachStderr: true });
    const out = { stdout: [] as Buffer[], stderr: [] as Buffer[], sizes: { stdout: 0, stderr: 0 } };
    let monitor: ReturnType<typeof connectUnix> | undefined;
    let drained!: Promise<void>;
    const started = await this.engine.containers.execStart(execId, (socket) => {
      monitor = connectUnix(socket);
      const decoder = new FrameDecoder(({ type, payload }) => {
        const stream = type === MonitorFrame.stdout ? 'stdout' : type === MonitorFrame.stderr ? 'stderr' : undefined;
        if (!stream || out.sizes[stream] >= EXEC_OUTPUT_CAP) return;
        const part = payload.subarray(0, EXEC_OUTPUT_CAP - out.sizes[stream]);
        out[stream].push(Buffer.from(part));
        out.sizes[stream] += part.length;
      });
      drained = new Promise((resolve) => {
        monitor!.on('data', (c: Buffer) => decoder.push(c));
        monitor!.on('close', () => resolve());
        monitor!.on('error', () => resolve());
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = timeout > 0 ? new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeout * 1000))) : new Promise<never>(() => undefined);
    try {
      const result = await Promise.race([started.exited, timedOut]);
      if (result === 'timeout') {
        monitor?.write(signalFrame(9));
        await started.exited.catch(() => undefined);
        throw new TimeoutError(`command ${JSON.stringify(cmd.join(' '))} timed out after ${timeout}s`);
      }
      await drained;
      return { stdout: Buffer.concat(out.stdout), stderr: Buffer.concat(out.stderr), exit_code: result.exitCode };
    } finally {
      clearTimeout(timer);
      monitor?.destroy();
    }
  }

  private streamingServer(): StreamingServer {
    if (!this.streaming) throw new UnavailableError('the CRI streaming server is not running');
    return this.streaming;
  }

  exec(req: { container_id?: string; cmd?: string[]; tty?: boolean; stdin?: boolean; stdout?: boolean; stderr?: boolean }) {
    const { rec } = this.objects.get('container', req.container_id);
    if (!rec.State.Running) throw new ConflictError(`container ${rec.Id} is not running`);
    if (!req.cmd?.length) throw new InvalidArgumentError('cmd: a command is required');
    if (!req.stdin && !req.stdout && !req.stderr) throw new InvalidArgumentError('one of stdin, stdout and stderr must be set');
    const cmd = req.cmd;
    const tty = !!req.tty;
    const url = this.streamingServer().command({
      kind: 'exec',
      stdin: !!req.stdin,
      stdout: !!req.stdout,
      stderr: !!req.stderr,
      tty,
      run: async (streams) => {
        const execId = this.engine.containers.execCreate(rec.Id, { Cmd: cmd, Tty: tty, AttachStdin: !!streams.stdin, AttachStdout: true, AttachStderr: true });
        let relayed: Promise<void> = Promise.resolve();
        const started = await this.engine.containers.execStart(execId, (socket) => {
          relayed = relay(connectUnix(socket), streams);
        });
        const { exitCode } = await started.exited;
        await relayed;
        return exitCode;
      },
    });
    return { url };
  }

  attach(req: { container_id?: string; stdin?: boolean; tty?: boolean; stdout?: boolean; stderr?: boolean }) {
    const { rec } = this.objects.get('container', req.container_id);
    if (!rec.State.Running) throw new ConflictError(`container ${rec.Id} is not running`);
    if (req.stdin && !rec.Config.OpenStdin) throw new InvalidArgumentError(`container ${rec.Id} was created without stdin: it cannot be attached with stdin`);
    if (!!req.tty !== !!rec.Config.Tty) throw new InvalidArgumentError(`tty=${!!req.tty} does not match container ${rec.Id}, created with tty=${!!rec.Config.Tty}`);
    const url = this.streamingServer().command({
      kind: 'attach',
      stdin: !!req.stdin,
      stdout: !!req.stdout,
      stderr: !!req.stderr,
      tty: !!req.tty,
      run: async (streams) => {
        const monitor = this.engine.containers.connectAttach(rec.Id);
        if (!monitor) throw new ConflictError(`container ${rec.Id} is not running`);
        await monitorReady(monitor);
        // The client going away ends the attach, not the container.
        for (const s of [streams.stdin, streams.stdout, streams.stderr]) s?.on('close', () => monitor.destroy());
        await relay(monitor, streams);
        return 0;
      },
    });
    return { url };
  }

  /** Connections go to the pod's IP (or the host's loopback for host-network pods). */
  portForward(req: { pod_sandbox_id?: string; port?: number[] }) {
    const { rec, view } = this.objects.get('sandbox', req.pod_sandbox_id);
    if (!rec.State.Running) throw new ConflictError(`pod sandbox ${rec.Id} is not ready`);
    const url = this.streamingServer().portForward(req.port ?? [], async (port) => {
      const ip = view.namespaces.network === 'NODE' ? '127.0.0.1' : this.podIps(rec)[0];
      if (!ip) throw new ConflictError(`pod sandbox ${rec.Id} has no IP address`);
      return dialTcp(ip, port);
    });
    return { url };
  }
}
