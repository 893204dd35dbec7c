/**
 * The instructions that change only the image config (ENV, LABEL, MAINTAINER, USER, EXPOSE,
 * VOLUME, STOPSIGNAL, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD), ARG, and WORKDIR (config
 * too, plus a layer with the directory when the image lacks it). A metadata step adds an
 * `empty_layer: true` history row and makes no image until one is needed (see driver.ts).
 */
import * as path from 'node:path';
import type { ContainerConfig } from '../../contracts/types';
import { InvalidArgumentError } from '../../contracts/errors';
import { applyChanges } from '../../images/config-changes';
import { declareArgs } from '../args';
import { type Instruction, DockerfileError } from '../dockerfile';
import { BuildError } from '../errors';
import { isDirInRoot, mkdirInRoot } from '../rootfs';
import { type StageState, type StepContext, shellOf, topChain } from '../step';
import { type Lookup, keyValuePairs, processWord, processWords } from '../words';

/** A step of a metadata instruction (or ARG): the config changes, no layer. Other instructions are not handled here. */
export async function metadataStep(ctx: StepContext, state: StageState, ins: Instruction, lookup: Lookup): Promise<void> {
  const escape = ctx.dockerfile.escape;
  const cfg = (): ContainerConfig => structuredClone(state.config.config ?? {});
  const nop = (text: string) => `/bin/sh -c #(nop)  ${text}`;
  const what = `${ins.name} (line ${ins.line})`;
  const meta = (text: string, change: (c: ContainerConfig) => void, author?: string) =>
    ctx.commit(state, [ins.name, text], async () => {
      const c = cfg();
      change(c);
      return { containerConfig: c, createdBy: nop(text), author };
    });

  switch (ins.name) {
    case 'ARG': {
      declareArgs(ins, escape, state.args, lookup, ctx.buildArgs, ctx.consumedArgs, ctx.metaArgs);
      if (state.imageId) ctx.progress.image(state.imageId);
      return;
    }
    case 'ENV': {
      const pairs = keyValuePairs(ins.args, lookup, escape, what);
      const text = `ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`;
      return meta(text, (c) => {
        const env = [...(c.Env ?? [])];
        for (const [k, v] of pairs) {
          const i = env.findIndex((e) => e.split('=')[0] === k);
          if (i >= 0) env[i] = `${k}=${v}`;
          else env.push(`${k}=${v}`);
        }
        c.Env = env;
      });
    }
    case 'LABEL': {
      const pairs = keyValuePairs(ins.args, lookup, escape, what);
      return meta(`LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`, (c) => {
        c.Labels = { ...(c.Labels ?? {}), ...Object.fromEntries(pairs) };
      });
    }
    case 'MAINTAINER': {
      const who = processWord(ins.args, lookup, escape, what);
      return meta(`MAINTAINER ${who}`, () => undefined, who);
    }
    case 'USER': {
      const user = processWord(ins.args, lookup, escape, what);
      return meta(`USER ${user}`, (c) => (c.User = user));
    }
    case 'EXPOSE': {
      const ports = processWords(ins.args, lookup, escape, what);
      return meta(`EXPOSE ${ports.join(' ')}`, (c) => Object.assign(c, applyChanges(c, [`EXPOSE ${ports.join(' ')}`])));
    }
    case 'VOLUME': {
      const vols = ins.json ?? processWords(ins.args, lookup, escape, what);
      if (!vols.length || vols.some((v) => !v)) throw new DockerfileError(ctx.dockerfile.file, ins.line, 'VOLUME specified can not be an empty string');
      return meta(`VOLUME [${vols.join(' ')}]`, (c) => Object.assign(c, applyChanges(c, [`VOLUME ${JSON.stringify(vols)}`])));
    }
    case 'STOPSIGNAL': {
      const sig = processWord(ins.args, lookup, escape, what);
      return meta(`STOPSIGNAL ${sig}`, (c) => Object.assign(c, applyChanges(c, [`STOPSIGNAL ${sig}`])));
    }
    case 'CMD': {
      const cmd = ins.json ?? [...shellOf(state), ins.args];
      state.cmdSet = true;
      return meta(`CMD ${JSON.stringify(cmd)}`, (c) => (c.Cmd = cmd));
    }
    case 'ENTRYPOINT': {
      const ep = ins.json ?? (ins.args ? [...shellOf(state), ins.args] : []);
      const keepCmd = state.cmdSet;
      return meta(`ENTRYPOINT ${JSON.stringify(ep)}${keepCmd ? '' : ' (CMD reset)'}`, (c) => {
        c.Entrypoint = ep.length ? ep : null;
        if (!keepCmd) c.Cmd = null;
      });
    }
    case 'SHELL':
      return meta(`SHELL ${JSON.stringify(ins.json)}`, (c) => (c.Shell = ins.json!));
    case 'HEALTHCHECK': {
      const hc = healthcheck(ins);
      return meta(`HEALTHCHECK ${JSON.stringify(hc)}`, (c) => (c.Healthcheck = hc));
    }
    case 'ONBUILD': {
      const trigger = `${ins.inner!.name} ${ins.inner!.original.replace(/^\S+\s*/, '')}`.trim();
      return meta(`ONBUILD ${trigger}`, (c) => (c.OnBuild = [...(c.OnBuild ?? []), trigger]));
    }
  }
}

/** WORKDIR: the config's WorkingDir, and the directory made (a layer) when the image lacks it. */
export async function workdirStep(ctx: StepContext, state: StageState, ins: Instruction, lookup: Lookup): Promise<void> {
  const dir = processWord(ins.args, lookup, ctx.dockerfile.escape, `${ins.name} (line ${ins.line})`);
  if (!dir) throw new InvalidArgumentError('WORKDIR requires a path');
  const abs = path.posix.resolve('/', state.config.config?.WorkingDir || '/', dir);
  await ctx.commit(state, ['WORKDIR', abs], async () => {
    const c: ContainerConfig = { ...structuredClone(state.config.config ?? {}), WorkingDir: abs };
    const comps = abs.split('/').filter(Boolean);
    const scratch = await ctx.layers.withScratchLayer(topChain(state), async (rootfs) => {
      if (await isDirInRoot(rootfs, comps)) return false;
      await mkdirInRoot(rootfs, comps, { uid: 0, gid: 0 });
      return true;
    });
    if (!scratch.value) {
      await scratch.discard();
      return { containerConfig: c, createdBy: `/bin/sh -c #(nop)  WORKDIR ${abs}` };
    }
    return { containerConfig: c, createdBy: `/bin/sh -c #(nop) WORKDIR ${abs}`, layer: await scratch.diff() };
  });
}

/** Go-style durations (`30s`, `1m30s`, `500ms`) in nanoseconds, as Docker stores them. */
function durationNs(s: string, flag: string): number {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  const unit: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  let consumed = 0;
  for (const m of s.matchAll(re)) {
    total += Number(m[1]) * unit[m[2]];
    consumed += m[0].length;
  }
  if (!s || consumed !== s.length) throw new BuildError(`HEALTHCHECK --${flag}=${s}: not a duration (e.g. 30s, 1m30s)`);
  return Math.round(total);
}

function healthcheck(ins: Instruction): Record<string, unknown> {
  const m = /^(\S+)\s*([\s\S]*)$/.exec(ins.args);
  const kind = m?.[1].toUpperCase();
  if (kind === 'NONE') {
    if (m![2].trim() || Object.keys(ins.flags).length) throw new BuildError('HEALTHCHECK NONE takes no arguments or options');
    return { Test: ['NONE'] };
  }
  if (kind !== 'CMD') throw new BuildError(`HEALTHCHECK: unknown type ${m?.[1] ?? ''}: expected CMD or NONE`);
  const rest = m![2].trim();
  if (!rest) throw new BuildError('HEALTHCHECK CMD requires a command');
  let json: string[] | undefined;
  if (rest.startsWith('[')) {
    try {
      const v = JSON.parse(rest);
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) json = v;
    } catch {
      /* the shell form */
    }
  }
  const hc: Record<string, unknown> = { Test: json ? ['CMD', ...json] : ['CMD-SHELL', rest] };
  const f = ins.flags;
  if (f.interval) hc.Interval = durationNs(f.interval, 'interval');
  if (f.timeout) hc.Timeout = durationNs(f.timeout, 'timeout');
  if (f['start-period']) hc.StartPeriod = durationNs(f['start-period'], 'start-period');
  if (f['start-interval']) hc.StartInterval = durationNs(f['start-interval'], 'start-interval');
  if (f.retries) {
    const n = Number(f.retries);
    if (!Number.isInteger(n) || n < 0) throw new BuildError(`HEALTHCHECK --retries=${f.retries}: expected a whole number`);
    hc.Retries = n;
  }
  return hc;
}
