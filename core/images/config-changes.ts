/**
 * Dockerfile-style changes to an image config, as `docker commit -c` and `docker import -c` take
 * them: CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL.
 */
import * as path from 'node:path';
import type { ContainerConfig } from '../contracts/types';
import { InvalidArgumentError } from '../contracts/errors';

const CHANGE_INSTRUCTIONS = ['CMD', 'ENTRYPOINT', 'ENV', 'WORKDIR', 'USER', 'LABEL', 'EXPOSE', 'VOLUME', 'STOPSIGNAL'];

/** `["a","b"]` -> ['a','b']; anything else is the shell form, run by the image's shell. */
function execOrShell(rest: string, shell: string[], what: string): string[] {
  const trimmed = rest.trim();
  if (trimmed.startsWith('[')) {
    try {
      const parsed = JSON.parse(trimmed);
      if (Array.isArray(parsed) && parsed.every((a) => typeof a === 'string')) return parsed;
    } catch {
      /* not JSON: Docker then treats it as the shell form */
    }
  }
  if (!trimmed) throw new InvalidArgumentError(`${what} requires at least one argument`);
  return [...shell, trimmed];
}

/** Split `a=b "c d"=e f='g h'` into words, honouring quotes and backslash escapes. */
function splitWords(s: string, what: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw new InvalidArgumentError(`${what}: unterminated quote in ${JSON.stringify(s)}`);
  if (inWord) words.push(cur);
  return words;
}

/** `k=v k2="v 2"` or the legacy `k v with spaces` (one pair) of ENV and LABEL. */
function keyValues(rest: string, what: string): [string, string][] {
  const trimmed = rest.trim();
  if (!trimmed) throw new InvalidArgumentError(`${what} requires at least one argument`);
  const first = /^(\S+)/.exec(trimmed)![1];
  if (!first.includes('=')) {
    const value = trimmed.slice(first.length).trim();
    if (!value) throw new InvalidArgumentError(`${what} names ${first} but gives it no value`);
    return [[first, value]];
  }
  return splitWords(trimmed, what).map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`${what}: ${JSON.stringify(w)} is not KEY=VALUE`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

/**
 * Apply Dockerfile instructions to an image config, as `docker commit -c` / `docker import -c` do:
 * CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL. Returns a new object.
 */
export function applyChanges(base: ContainerConfig, changes: string[]): ContainerConfig {
  const cfg: ContainerConfig = structuredClone(base);
  for (const raw of changes) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^(\S+)\s*([\s\S]*)$/.exec(line)!;
    const instruction = m[1].toUpperCase();
    const rest = m[2];
    const what = `change ${JSON.stringify(raw)}`;
    const shell = cfg.Shell?.length ? cfg.Shell : ['/bin/sh', '-c'];
    switch (instruction) {
      case 'CMD':
        cfg.Cmd = execOrShell(rest, shell, what);
        break;
      case 'ENTRYPOINT':
        cfg.Entrypoint = execOrShell(rest, shell, what);
        // As in a Dockerfile: a new ENTRYPOINT resets the CMD inherited from the base.
        cfg.Cmd = null;
        break;
      case 'ENV': {
        const env = [...(cfg.Env ?? [])];
        for (const [k, v] of keyValues(rest, what)) {
          const i = env.findIndex((e) => e.split('=')[0] === k);
          if (i >= 0) env[i] = `${k}=${v}`;
          else env.push(`${k}=${v}`);
        }
        cfg.Env = env;
        break;
      }
      case 'LABEL':
        cfg.Labels = { ...(cfg.Labels ?? {}), ...Object.fromEntries(keyValues(rest, what)) };
        break;
      case 'WORKDIR': {
        const dir = rest.trim();
        if (!dir) throw new InvalidArgumentError(`${what}: WORKDIR requires a path`);
        cfg.WorkingDir = path.posix.resolve('/', cfg.WorkingDir || '/', dir);
        break;
      }
      case 'USER': {
        const user = rest.trim();
        if (!user) throw new InvalidArgumentError(`${what}: USER requires a user name or id`);
        cfg.User = user;
        break;
      }
      case 'EXPOSE': {
        const ports = { ...(cfg.ExposedPorts ?? {}) };
        for (const p of splitWords(rest, what)) {
          const pm = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
          if (!pm) throw new InvalidArgumentError(`${what}: invalid port ${JSON.stringify(p)}`);
          const from = Number(pm[1]);
          const to = pm[2] ? Number(pm[2]) : from;
          if (from < 1 || to > 65535 || to < from) throw new InvalidArgumentError(`${what}: invalid port range ${JSON.stringify(p)}`);
          for (let port = from; port <= to; port++) ports[`${port}/${(pm[3] ?? 'tcp').toLowerCase()}`] = {};
        }
        cfg.ExposedPorts = ports;
        break;
      }
      case 'VOLUME': {
        const trimmed = rest.trim();
        let vols: string[];
        if (trimmed.startsWith('[')) {
          try {
            vols = JSON.parse(trimmed);
          } catch {
            throw new InvalidArgumentError(`${what}: VOLUME is not a JSON array of strings`);
          }
          if (!Array.isArray(vols) || !vols.every((v) => typeof v === 'string')) throw new InvalidArgumentError(`${what}: VOLUME is not a JSON array of strings`);
        } else vols = splitWords(trimmed, what);
        if (!vols.length) throw new InvalidArgumentError(`${what}: VOLUME requires at least one path`);
        cfg.Volumes = { ...(cfg.Volumes ?? {}), ...Object.fromEntries(vols.map((v) => [v, {}])) };
        break;
      }
      case 'STOPSIGNAL': {
        const sig = rest.trim();
        if (!/^(SIG)?[A-Z0-9+-]+$|^\d+$/i.test(sig)) throw new InvalidArgumentError(`${what}: invalid STOPSIGNAL ${JSON.stringify(sig)}`);
        cfg.StopSignal = sig;
        break;
      }
      default:
        throw new InvalidArgumentError(`${what}: ${instruction} is not a supported change instruction (one of ${CHANGE_INSTRUCTIONS.join(', ')})`);
    }
  }
  return cfg;
}
