/**
 * The CRI gRPC server: RuntimeService and ImageService of `runtime.v1` (and the same messages
 * again as `runtime.v1alpha2`, for kubelets before 1.23) on their own Unix socket. gRPC is loaded
 * only here, and berthd imports this file only when `cri.enabled` is set.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { BerthError } from '../contracts/errors';
import type { Logger } from '../contracts/types';
import type { Engine } from '../kernel/engine';
import { imageHandlers } from './images';
import { CriRuntime } from './runtime';
import { StreamingServer } from './streaming/server';
import { AuthorityFixingStream } from './uds-authority';

/** The project's own proto file (shipped in the package: package.json "files"). */
export function protoFile(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'core', 'cri', 'proto', 'runtime-v1.proto');
    if (fs.existsSync(file)) return file;
    if (path.dirname(dir) === dir) throw new Error('CRI: cannot find core/cri/proto/runtime-v1.proto in the berth package');
  }
}

export const PROTO_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

/** Service definitions of one API version: v1alpha2 is v1's with its method paths renamed. */
export function criServices(version: 'v1' | 'v1alpha2'): { runtime: grpc.ServiceDefinition; image: grpc.ServiceDefinition } {
  const pkg = protoLoader.loadSync(protoFile(), PROTO_OPTIONS);
  const rename = (name: string): grpc.ServiceDefinition => {
    const def = pkg[`runtime.v1.${name}`] as grpc.ServiceDefinition;
    if (version === 'v1') return def;
    return Object.fromEntries(Object.entries(def).map(([k, m]) => [k, { ...m, path: m.path.replace('/runtime.v1.', `/runtime.${version}.`) }]));
  };
  return { runtime: rename('RuntimeService'), image: rename('ImageService') };
}

/** berth's HTTP-like error statuses as gRPC codes. */
function grpcError(err: unknown): grpc.ServiceError {
  const e = err as BerthError;
  const code =
    {
      400: grpc.status.INVALID_ARGUMENT,
      401: grpc.status.UNAUTHENTICATED,
      403: grpc.status.PERMISSION_DENIED,
      404: grpc.status.NOT_FOUND,
      409: grpc.status.FAILED_PRECONDITION,
      499: grpc.status.CANCELLED,
      501: grpc.status.UNIMPLEMENTED,
      504: grpc.status.DEADLINE_EXCEEDED,
    }[e?.status ?? 0] ?? grpc.status.UNKNOWN;
  return Object.assign(new Error(e?.message ?? String(err)), { code, details: e?.message ?? String(err), metadata: new grpc.Metadata() });
}

type Handler = (req: any) => unknown;

function unary(fns: Record<string, Handler>, log: Logger): grpc.UntypedServiceImplementation {
  return Object.fromEntries(
    Object.entries(fns).map(([name, fn]) => [
      name,
      (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        Promise.resolve()
          .then(() => fn(call.request))
          .then(
            (res) => callback(null, res ?? {}),
            (err) => {
              log.debug('CRI call failed', { method: name, error: (err as Error).message });
              callback(grpcError(err));
            },
          );
      },
    ]),
  );
}

export interface CriServer {
  close(): Promise<void>;
}

export async function startCriServer(engine: Engine, socket: string, log: Logger): Promise<CriServer> {
  const runtime = new CriRuntime(engine);
  await runtime.recover();
  // Exec, Attach and PortForward URLs: loopback only, a free port.
  const streaming = new StreamingServer(log);
  await streaming.listen('127.0.0.1', 0);
  runtime.exec.streaming = streaming;
  const images = imageHandlers(engine);
  const { sandboxes, containers, exec, stats } = runtime;
  const runtimeHandlers = (apiVersion: string): Record<string, Handler> => ({
    Version: () => runtime.version(apiVersion),
    Status: (r) => runtime.status(!!r.verbose),
    RunPodSandbox: async (r) => ({ pod_sandbox_id: await sandboxes.runPodSandbox(r.config) }),
    StopPodSandbox: (r) => sandboxes.stopPodSandbox(r.pod_sandbox_id),
    RemovePodSandbox: (r) => sandboxes.removePodSandbox(r.pod_sandbox_id),
    PodSandboxStatus: (r) => sandboxes.podSandboxStatus(r.pod_sandbox_id, !!r.verbose),
    ListPodSandbox: (r) => ({ items: sandboxes.listPodSandbox(r.filter) }),
    CreateContainer: async (r) => ({ container_id: await containers.createContainer(r.pod_sandbox_id, r.config, r.sandbox_config) }),
    StartContainer: (r) => containers.startContainer(r.container_id),
    StopContainer: (r) => containers.stopContainer(r.container_id, Number(r.timeout)),
    RemoveContainer: (r) => containers.removeContainer(r.container_id),
    ListContainers: (r) => ({ containers: containers.listContainers(r.filter) }),
    ContainerStatus: (r) => containers.containerStatus(r.container_id, !!r.verbose),
    UpdateContainerResources: (r) => containers.updateContainerResources(r.container_id, r.linux),
    ReopenContainerLog: (r) => containers.reopenContainerLog(r.container_id),
    ExecSync: (r) => exec.execSync(r.container_id, r.cmd, Number(r.timeout)),
    Exec: (r) => exec.exec(r),
    Attach: (r) => exec.attach(r),
    PortForward: (r) => exec.portForward(r),
    ContainerStats: (r) => stats.containerStats(r.container_id),
    ListContainerStats: (r) => stats.listContainerStats(r.filter),
    PodSandboxStats: (r) => stats.podSandboxStats(r.pod_sandbox_id),
    ListPodSandboxStats: (r) => stats.listPodSandboxStats(r.filter),
    // The pod CIDR is the CNI config's business (its IPAM); kubelet's is accepted and not used.
    UpdateRuntimeConfig: () => ({}),
    // berth writes pod cgroups itself (cgroupfs), below its own parent; kubelet must not expect systemd slices.
    RuntimeConfig: () => ({ linux: { cgroup_driver: 'CGROUPFS' } }),
  });

  const server = new grpc.Server();
  for (const version of ['v1', 'v1alpha2'] as const) {
    const defs = criServices(version);
    server.addService(defs.runtime, unary(runtimeHandlers(version), log));
    server.addService(defs.image, unary(images, log));
  }
  await fs.promises.mkdir(path.dirname(socket), { recursive: true, mode: 0o700 });
  await fs.promises.rm(socket, { force: true });
  // Our own listener: each connection goes to grpc-js through the authority fix (uds-authority.ts).
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const listener = net.createServer((conn) => injector.injectConnection(new AuthorityFixingStream(conn)));
  await new Promise<void>((resolve, reject) => {
    listener.once('error', (err) => reject(new Error(`CRI socket ${socket}: ${err.message}`)));
    listener.listen(socket, () => resolve());
  });
  await fs.promises.chmod(socket, 0o660);
  log.info('CRI serving', { socket });
  return {
    async close() {
      // The listener's close ends when its connections do: grpc-js shuts those.
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      await closed;
      await streaming.close();
      await runtime.close();
      await fs.promises.rm(socket, { force: true });
    },
  };
}
