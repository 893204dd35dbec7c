#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
/**
 * berth: the client. It parses argv and talks to berthd's API; it loads no engine code, and each
 * command's module is loaded only when that command runs, so the client starts fast.
 */
import { ApiError, Client, DaemonUnreachable } from './client';
import { HelpRequested } from './args';
import { TemplateError } from './template/errors';

export interface CommandContext {
  client: Client;
  argv: string[];
  out: NodeJS.WriteStream;
  err: NodeJS.WriteStream;
}

export type Command = (ctx: CommandContext) => Promise<number | void>;

/**
 * Usage errors print the message, then `See 'berth CMD --help'.` (unless the message has its
 * usage already), and exit 125 like docker; the command's own failures exit 1.
 */
export class UsageError extends Error {
  readonly seeHelp: boolean;

  constructor(message: string, opts: { seeHelp?: boolean } = {}) {
    super(message);
    this.seeHelp = opts.seeHelp ?? true;
  }
}

/** command name -> [module under ./commands, export name, one-line help] */
const COMMANDS: Record<string, [string, string, string]> = {
  run: ['containers', 'run', 'Create and run a new container from an image'],
  create: ['containers', 'create', 'Create a new container'],
  start: ['containers', 'start', 'Start one or more stopped containers'],
  stop: ['lifecycle', 'stop', 'Stop one or more running containers'],
  restart: ['lifecycle', 'restart', 'Restart one or more containers'],
  kill: ['lifecycle', 'kill', 'Kill one or more running containers'],
  rm: ['lifecycle', 'rm', 'Remove one or more containers'],
  ps: ['ps', 'ps', 'List containers'],
  logs: ['logs', 'logs', 'Fetch the logs of a container'],
  wait: ['lifecycle', 'wait', 'Block until containers stop, then print their exit codes'],
  attach: ['containers', 'attach', "Attach to a running container's output (and input)"],
  rename: ['lifecycle', 'rename', 'Rename a container'],
  export: ['container-fs', 'exportFs', "Export a container's filesystem as a tar archive"],
  diff: ['container-fs', 'diff', "Inspect changes to files on a container's filesystem"],
  exec: ['exec', 'exec', 'Execute a command in a running container'],
  cp: ['cp', 'cp', 'Copy files/folders between a container and the local filesystem'],
  events: ['system', 'events', 'Get real time events from the server'],
  pause: ['resources', 'pause', 'Pause all processes within one or more containers'],
  unpause: ['resources', 'unpause', 'Unpause all processes within one or more containers'],
  top: ['resources', 'top', 'Display the running processes of a container'],
  stats: ['resources', 'stats', 'Display a live stream of container resource usage statistics'],
  update: ['resources', 'update', 'Update configuration of one or more containers'],
  pull: ['images', 'pull', 'Download an image from a registry'],
  images: ['images', 'images', 'List images'],
  history: ['images', 'history', 'Show the history of an image'],
  tag: ['images', 'tag', 'Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE'],
  rmi: ['images', 'rmi', 'Remove one or more images'],
  commit: ['image-build', 'commit', "Create a new image from a container's changes"],
  push: ['image-build', 'push', 'Upload an image to a registry'],
  save: ['image-build', 'save', 'Save one or more images to a tar archive (streamed to STDOUT by default)'],
  load: ['image-build', 'load', 'Load an image from a tar archive or STDIN'],
  import: ['image-build', 'importImage', 'Import the contents from a tarball to create a filesystem image'],
  build: ['build', 'build', 'Build an image from a Dockerfile'],
  login: ['auth', 'login', 'Log in to a registry'],
  logout: ['auth', 'logout', 'Log out from a registry'],
  plugins: ['system', 'plugins', 'List plugins and their status'],
  version: ['system', 'version', 'Show the berth version information'],
  info: ['system', 'info', 'Display system-wide information'],
  port: ['networks', 'port', 'List port mappings or a specific mapping for the container'],
  bench: ['bench', 'bench', 'Compare configs: start latency, memory, escape probes (bench isolation)'],
};

/** `berth image ls`, `berth system check` ... : management commands mapped onto the flat ones. */
const SUBCOMMANDS: Record<string, Record<string, [string, string, string]>> = {
  image: {
    ls: ['images', 'images', 'List images'],
    list: ['images', 'images', 'List images'],
    pull: COMMANDS.pull,
    inspect: ['images', 'inspect', 'Display detailed information on one or more images'],
    history: COMMANDS.history,
    tag: COMMANDS.tag,
    rm: COMMANDS.rmi,
    push: COMMANDS.push,
    save: COMMANDS.save,
    load: COMMANDS.load,
    import: COMMANDS.import,
    build: COMMANDS.build,
    prune: ['system', 'imagePrune', 'Remove unused images'],
  },
  system: {
    check: ['system', 'check', 'Re-hash every stored blob and report corrupt or orphaned ones'],
    df: ['system', 'df', 'Show disk usage (a layer shared by images counted once)'],
    prune: ['system', 'prune', 'Remove stopped containers and unused images'],
    info: COMMANDS.info,
    events: COMMANDS.events,
  },
  plugin: { ls: COMMANDS.plugins },
  network: {
    create: ['networks', 'networkCreate', 'Create a bridge network'],
    ls: ['networks', 'networkLs', 'List networks'],
    list: ['networks', 'networkLs', 'List networks'],
    inspect: ['networks', 'networkInspect', 'Display detailed information on one or more networks'],
    rm: ['networks', 'networkRm', 'Remove one or more networks'],
    connect: ['networks', 'networkConnect', 'Connect a stopped container to a network'],
    disconnect: ['networks', 'networkDisconnect', 'Disconnect a stopped container from a network'],
    prune: ['networks', 'networkPrune', 'Remove all unused networks'],
  },
  volume: {
    create: ['volumes', 'volumeCreate', 'Create a volume'],
    ls: ['volumes', 'volumeLs', 'List volumes'],
    list: ['volumes', 'volumeLs', 'List volumes'],
    inspect: ['volumes', 'volumeInspect', 'Display detailed information on one or more volumes'],
    rm: ['volumes', 'volumeRm', 'Remove one or more volumes'],
    prune: ['volumes', 'volumePrune', 'Remove unused volumes (anonymous ones; -a: all)'],
  },
  container: {
    ls: COMMANDS.ps,
    list: COMMANDS.ps,
    run: COMMANDS.run,
    create: COMMANDS.create,
    start: COMMANDS.start,
    stop: COMMANDS.stop,
    restart: COMMANDS.restart,
    kill: COMMANDS.kill,
    rm: COMMANDS.rm,
    logs: COMMANDS.logs,
    wait: COMMANDS.wait,
    attach: COMMANDS.attach,
    rename: COMMANDS.rename,
    export: COMMANDS.export,
    diff: COMMANDS.diff,
    exec: COMMANDS.exec,
    cp: COMMANDS.cp,
    prune: ['system', 'containerPrune', 'Remove all stopped containers'],
    pause: COMMANDS.pause,
    unpause: COMMANDS.unpause,
    top: COMMANDS.top,
    stats: COMMANDS.stats,
    update: COMMANDS.update,
    inspect: ['system', 'inspect', 'Display detailed information on one or more containers'],
  },
};

const INSPECT: [string, string, string] = ['system', 'inspect', 'Return low-level information on berth objects'];

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([n, [, , help]]) => `  ${n.padEnd(10)} ${help}`);
  const mgmt = Object.entries(SUBCOMMANDS).map(([n, subs]) => `  ${n.padEnd(10)} ${Object.keys(subs).join(', ')}`);
  return `Usage: berth [-H unix:///path/to/berth.sock] COMMAND [ARGS...]

A container engine: berthd owns images and containers; berth talks to it.

Commands:
${lines.join('\n')}
  inspect    Return low-level information on berth objects

Management commands:
${mgmt.join('\n')}

Environment: BERTH_HOST=unix:///path/to/berth.sock (default unix:///run/berth/berth.sock)
`;
}

export async function main(argv: string[]): Promise<number> {
  let host = process.env.BERTH_HOST;
  while (argv[0] === '-H' || argv[0] === '--host' || argv[0]?.startsWith('--host=')) {
    if (argv[0].startsWith('--host=')) host = argv.shift()!.slice('--host='.length);
    else {
      argv.shift();
      host = argv.shift();
    }
  }
  const name = argv.shift();
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 1;
  }
  let entry: [string, string, string] | undefined = name === 'inspect' ? INSPECT : name === '--version' || name === '-v' ? COMMANDS.version : COMMANDS[name];
  let sub: string | undefined;
  if (!entry && SUBCOMMANDS[name]) {
    sub = argv.shift();
    entry = sub ? SUBCOMMANDS[name][sub] : undefined;
    if (!entry) {
      process.stderr.write(`berth ${name}: unknown subcommand${sub ? ` "${sub}"` : ''}; one of: ${Object.keys(SUBCOMMANDS[name]).join(', ')}\n`);
      return 125;
    }
  }
  if (!entry) {
    process.stderr.write(`berth: '${name}' is not a berth command.\nSee 'berth --help'\n`);
    return 125;
  }
  const [moduleName, exportName, description] = entry;
  const commandPath = `berth ${sub ? `${name} ${sub}` : name}`;
  try {
    const client = Client.fromHost(host);
    const mod = require(`./commands/${moduleName}`) as Record<string, Command>;
    const code = await mod[exportName]({ client, argv, out: process.stdout, err: process.stderr });
    return code ?? 0;
  } catch (err) {
    if (err instanceof HelpRequested) {
      process.stdout.write(`Usage:  ${err.usage}\n\n${description}\n\nOptions:\n${err.options}\n`);
      return 0;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n${err.seeHelp ? `See '${commandPath} --help'.\n` : ''}`);
      return 125;
    }
    if (err instanceof TemplateError) {
      // docker: a template that does not parse is a usage problem (inspect exits 64); one that fails on the data exits 1.
      const parsing = !/executing "/.test(err.message);
      process.stderr.write(parsing ? `Template parsing error: ${err.message}\n` : `${err.message}\n`);
      return parsing && /inspect$/.test(commandPath) ? 64 : 1;
    }
    if (err instanceof DaemonUnreachable) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    if (err instanceof ApiError) {
      process.stderr.write(`Error response from daemon: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`berth ${name}: ${(err as Error).message}\n`);
    return 1;
  }
}

if (require.main === module) {
  // A reader that goes away (`berth export c | tar -x one-file`, `| head`) ends the command quietly.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (err) => {
      process.stderr.write(`berth: ${err?.message ?? err}\n`);
      process.exitCode = 1;
    },
  );
}
