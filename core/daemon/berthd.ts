#!/usr/bin/env -S node --max-semi-space-size=4
// (V8 grows the young generation to 16 MiB semi-spaces under a burst of starts and never gives
// them back: 4 MiB ones cut berthd's anonymous RSS per running container from ~170 to ~70 KiB.)
/**
 * berthd: the daemon. Loads config, takes the root's lock (one daemon per root), starts the
 * engine and serves the API on the Unix socket until SIGTERM/SIGINT.
 */
import 'reflect-metadata';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { ApiServer } from '../api/server';
import { collectWhenIdle } from './idle-gc';
import { buildRouter } from '../api/routes';
import { BerthError } from '../contracts/errors';
import { LOCK_EX, LOCK_NB, syscalls } from '../sys/syscalls';
import { createLogger } from '../util/log';
import { ensureDir } from '../util/fs';
import { loadConfig } from '../kernel/config';
import { Engine } from '../kernel/engine';

/** How long a graceful shutdown (API, CRI, plugins) may take before berthd exits anyway. */
const SHUTDOWN_DEADLINE_MS = 15_000;

const USAGE = `Usage: berthd [--root DIR] [--socket PATH] [--config FILE] [--storage-driver NAME] [--cri-socket PATH]

Runs the berth daemon in the foreground; logs go to stderr.
  --root DIR             state directory (default /var/lib/berth)
  --socket PATH          API socket (default /run/berth/berth.sock)
  --config FILE          config file (default: berth.config.* found from the working directory, or BERTH_CONFIG)
  --storage-driver NAME  storage driver plugin (overlay, vfs, ...)
  --cri-socket PATH      serve the Kubernetes CRI on this socket (config: cri.enabled, cri.socket)
  --log-level LEVEL      debug, info, warn, error`;

/** Hold an exclusive flock on `<root>/berthd.lock` for the daemon's lifetime. */
async function lockRoot(root: string): Promise<number> {
  await ensureDir(root);
  const file = path.join(root, 'berthd.lock');
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  if (!syscalls.flock(fd, LOCK_EX | LOCK_NB)) {
    const holder = fs.readFileSync(file, 'utf8').trim();
    fs.closeSync(fd);
    throw new BerthError(`another berthd${holder ? ` (pid ${holder})` : ''} is already using ${root}`);
  }
  fs.ftruncateSync(fd);
  fs.writeSync(fd, `${process.pid}\n`, 0);
  return fd;
}

export async function main(argv = process.argv.slice(2)): Promise<void> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        root: { type: 'string' },
        socket: { type: 'string' },
        config: { type: 'string' },
        'storage-driver': { type: 'string' },
        'cri-socket': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`berthd: ${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const log = createLogger('berthd', (args['log-level'] as never) ?? undefined);
  let config;
  try {
    config = await loadConfig(args.config ?? process.env.BERTH_CONFIG, {
      root: args.root,
      socket: args.socket,
      storageDriver: args['storage-driver'],
      criSocket: args['cri-socket'],
    });
  } catch (err) {
    process.stderr.write(`berthd: invalid configuration: ${(err as Error).message}\n`);
    process.exit(1);
  }

  let lockFd: number;
  try {
    lockFd = await lockRoot(config.root);
  } catch (err) {
    process.stderr.write(`berthd: ${(err as Error).message}\n`);
    process.exit(1);
  }

  const engine = new Engine(config, log);
  let server: ApiServer;
  let cri: { close(): Promise<void> } | undefined;
  try {
    await engine.start();
    // Loaded only when enabled: gRPC costs start time and memory nobody else needs. Bound before
    // the API socket, so a daemon that answers /_ping serves the CRI too.
    if (config.cri.enabled) cri = await (await import('../cri/server.js')).startCriServer(engine, config.cri.socket, log.child('cri'));
    server = new ApiServer(buildRouter(engine), log);
    await server.listen(config.socket);
  } catch (err) {
    process.stderr.write(`berthd: cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  collectWhenIdle();
  log.info('berthd ready', {
    root: config.root,
    socket: config.socket,
    ...(cri ? { cri: config.cri.socket } : {}),
    storage: engine.storage()?.name ?? 'none',
    config: config.configFile ?? 'defaults',
  });

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    // Containers outlive berthd (their monitors are not its children): a shutdown that hangs on a
    // connection or a plugin must not keep the daemon, its lock and its socket around forever.
    setTimeout(() => {
      log.error('shutdown did not finish in time; exiting now', { seconds: SHUTDOWN_DEADLINE_MS / 1000 });
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    try {
      await server.close();
      await cri?.close();
      await engine.stop();
      await fs.promises.rm(config.socket, { force: true });
    } catch (err) {
      log.error('shutdown failed', { error: (err as Error).message });
    }
    fs.closeSync(lockFd);
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  // A bug in one request must not take the daemon down with every container's bookkeeping.
  process.on('uncaughtException', (err) => log.error('uncaught exception', { error: err.stack ?? err.message }));
  process.on('unhandledRejection', (err) => log.error('unhandled rejection', { error: (err as Error)?.stack ?? String(err) }));
}

if (require.main === module) void main();
