import * as fs from 'node:fs';
import type { CommandContext } from '../main';
import { UsageError } from '../main';
import { parse } from '../args';
import { removeAuth, saveAuth } from '../credentials';

const DEFAULT_SERVER = 'docker.io';

function normaliseServer(s: string | undefined): string {
  if (!s) return DEFAULT_SERVER;
  return s.replace(/^https?:\/\//, '').replace(/\/(v1|v2)?\/?$/, '') || DEFAULT_SERVER;
}

async function readLine(prompt: string, hidden: boolean): Promise<string> {
  if (!process.stdin.isTTY) throw new UsageError('cannot prompt for credentials: stdin is not a terminal (use -u and --password-stdin)');
  process.stderr.write(prompt);
  const stdin = process.stdin;
  stdin.setRawMode?.(hidden);
  let line = '';
  for await (const chunk of stdin) {
    for (const ch of chunk.toString('utf8')) {
      if (ch === '\r' || ch === '\n') {
        stdin.setRawMode?.(false);
        stdin.pause();
        if (hidden) process.stderr.write('\n');
        return line;
      }
      if (ch === '\u0003') process.exit(130);
      line = ch === '\u007f' ? line.slice(0, -1) : line + ch;
    }
  }
  return line;
}

export async function login({ client, argv, out }: CommandContext): Promise<void> {
  const { values, positionals } = parse(
    argv,
    {
      username: { type: 'string', short: 'u', help: 'Username' },
      password: { type: 'string', short: 'p', help: 'Password' },
      'password-stdin': { type: 'boolean', help: 'Take the password from stdin' },
    },
    'berth login [-u USER] [-p PASS | --password-stdin] [SERVER]',
    { max: 1 },
  );
  const server = normaliseServer(positionals[0]);
  const username = values.username ?? (await readLine('Username: ', false));
  let password = values.password;
  if (values['password-stdin']) password = fs.readFileSync(0, 'utf8').replace(/\r?\n$/, '');
  password ??= await readLine('Password: ', true);
  if (!username || !password) throw new UsageError('username and password are required');
  await client.json('/auth', { method: 'POST', body: { username, password, serveraddress: server } });
  saveAuth(server, username, password);
  out.write('Login Succeeded\n');
}

export async function logout({ argv, out }: CommandContext): Promise<void> {
  const { positionals } = parse(argv, {}, 'berth logout [SERVER]', { max: 1 });
  const server = normaliseServer(positionals[0]);
  out.write(removeAuth(server) ? `Removing login credentials for ${server}\n` : `Not logged in to ${server}\n`);
}
