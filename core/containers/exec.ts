/**
 * `docker exec`: a session is made for a running container, then started as a new process in its
 * namespaces (the launcher joins them) and its cgroups (the isolators attach it), with the plan
 * the container was started with. The sessions themselves live in exec-sessions.ts.
 */
import { StateError } from '../contracts/errors';
import type { LaunchPlan } from '../contracts/launch';
import type { ExitStatus } from '../contracts/runtime';
import { readJson } from '../util/fs';
import type { ContainerContext } from './context';
import type { ExecConfig } from './exec-sessions';
import { IsolatorChain } from './isolator-chain';
import { assertCan } from './state';

export function execCreate(ctx: ContainerContext, ref: string, config: ExecConfig): string {
  const rec = ctx.store.get(ref);
  const id = ctx.execs.create(rec, config);
  ctx.events.emit('exec_create', rec.Id);
  return id;
}

/** Start the session's process; `beforeExec` gets its attach socket while it waits to exec. */
export async function execStart(ctx: ContainerContext, execId: string, beforeExec?: (socketPath: string) => void): Promise<{ exited: Promise<ExitStatus> }> {
  const session = ctx.execs.get(execId);
  const rec = ctx.store.get(session.ContainerID);
  // A berthd restarted since the container started has its plan on disk only.
  const plan = ctx.plans.get(rec.Id) ?? (await readJson<LaunchPlan>(ctx.launchPlanPath(rec.Id)));
  assertCan('exec', rec);
  if (!plan) throw new StateError(`Container ${rec.Id} is not running`);
  const chain = new IsolatorChain(ctx.deps.isolators());
  const attach = (pid: number) => chain.attach({ ...ctx.target(rec), joining: true }, pid);
  const started = await ctx.execs.start(session, rec, plan, { runtime: ctx.runtime(), storage: ctx.storage(), attach }, beforeExec);
  ctx.events.emit('exec_start', rec.Id);
  return started;
}
