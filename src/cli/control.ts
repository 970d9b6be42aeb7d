/** `agentq wait`, `cancel`, `kill` and `retry`: steering one job. */
import type { Command } from 'commander';
import { ConflictError, WaitTimeoutError } from '../errors.ts';
import type { Job } from '../job.ts';
import { action, setup, withApi, type Context, type DbOptions } from './context.ts';
import { formatDuration, shortId, statusText } from './format.ts';
import { CliError, line, printJson } from './io.ts';
import { parseDuration, parseInteger } from './parse.ts';
import { exitCodeOf, printOutcome, watchJob } from './watch.ts';

interface JsonOptions extends DbOptions {
  json?: boolean;
}

function printChanged(ctx: Context, job: Job, verb: string, json: boolean | undefined): void {
  if (json) printJson(ctx.io.stdout, job);
  else line(ctx.io.stdout, `${verb} ${job.id} — now ${statusText(ctx.out, job.status)}`);
}

function registerWait(program: Command, ctx: Context): void {
  const cmd = program
    .command('wait')
    .description('wait until a job has finished; exit 0 if it completed, 1 if it failed, was cancelled, or the time ran out')
    .argument('<id>', 'job id, or an unambiguous prefix of one')
    .option('--timeout <duration>', 'give up after this long: 30s, 5m, 1h (default: no limit)', parseDuration)
    .option('--json', 'print the finished job as JSON');
  setup(cmd, ['agentq wait 01JF3K9Z', 'agentq wait 01JF3K9Z --timeout 5m && echo done']);
  cmd.action(
    action(ctx, async (idArg: string, _opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<JsonOptions & { timeout?: number }>();
      return withApi(ctx, opts, async (queue) => {
        const id = await queue.resolveId(idArg);
        const live = !opts.json && ctx.io.stderr.isTTY ? ctx.io.stderr : undefined;
        let job: Job;
        try {
          job = live
            ? await watchJob(ctx, queue, id, { live, timeoutMs: opts.timeout })
            : await queue.wait(id, { timeoutMs: opts.timeout, pollMs: 200 });
        } catch (error) {
          if (error instanceof WaitTimeoutError) {
            const status = String(error.details?.status ?? 'unfinished');
            throw new CliError(`job ${id} is still ${status} after ${formatDuration(opts.timeout ?? 0)}`, {
              hint: `wait longer with --timeout, or see it with: agentq info ${shortId(id)}`,
            });
          }
          throw error;
        }
        printOutcome(ctx, job, opts.json === true);
        return exitCodeOf(job);
      });
    }),
  );
}

function registerCancel(program: Command, ctx: Context): void {
  const cmd = program
    .command('cancel')
    .description('cancel a job (blocked, pending or running); jobs that depend on it are cancelled too')
    .argument('<id>', 'job id, or an unambiguous prefix of one')
    .option('--reason <text>', 'why, recorded as the job\'s error')
    .option('--descendants', 'also cancel the jobs it delegated (its children, recursively) that have not finished')
    .option('--json', 'print the cancelled job as JSON');
  setup(cmd, ['agentq cancel 01JF3K9Z', 'agentq cancel 01JF3K9Z --reason "wrong input"', 'agentq cancel 01JF3K9Z --descendants']);
  cmd.action(
    action(ctx, async (id: string, _opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<JsonOptions & { reason?: string; descendants?: boolean }>();
      return withApi(ctx, opts, async (queue) => {
        const job = await queue.cancel(id, { reason: opts.reason, descendants: opts.descendants });
        printChanged(ctx, job, 'cancelled', opts.json);
        return 0;
      });
    }),
  );
}

function registerKill(program: Command, ctx: Context): void {
  const cmd = program
    .command('kill')
    .description('stop a running job now: cancels it and fires its handler\'s abort signal')
    .argument('<id>', 'job id, or an unambiguous prefix of one')
    .option('--force', 'stop at once: command agents get SIGKILL without the grace period (recorded in the error)')
    .option('--reason <text>', 'why, recorded as the job\'s error')
    .option('--json', 'print the killed job as JSON');
  setup(cmd, ['agentq kill 01JF3K9Z', 'agentq kill 01JF3K9Z --force --reason "runaway loop"']);
  cmd.action(
    action(ctx, async (idArg: string, _opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<JsonOptions & { force?: boolean; reason?: string }>();
      return withApi(ctx, opts, async (queue) => {
        const before = await queue.get(idArg);
        if (before.status !== 'running') {
          throw new CliError(`job ${before.id} is ${before.status}, not running`, {
            hint:
              before.status === 'pending' || before.status === 'blocked' || before.status === 'waiting'
                ? `cancel it with: agentq cancel ${shortId(before.id)}`
                : `see it with: agentq info ${shortId(before.id)}`,
          });
        }
        const reason = `${opts.reason ?? 'killed by request'}${opts.force ? ' (force)' : ''}`;
        const job = await queue.cancel(before.id, { reason, force: opts.force === true });
        printChanged(ctx, job, opts.force ? 'force-killed' : 'killed', opts.json);
        return 0;
      });
    }),
  );
}

function registerRetry(program: Command, ctx: Context): void {
  const cmd = program
    .command('retry')
    .description('run a failed or cancelled job again')
    .argument('<id>', 'job id, or an unambiguous prefix of one')
    .option('--attempts <n>', 'attempts allowed on top of those spent (default: 1)', parseInteger(1, 1000))
    .option('--json', 'print the job as JSON');
  setup(cmd, ['agentq retry 01JF3K9Z', 'agentq retry 01JF3K9Z --attempts 3 && agentq wait 01JF3K9Z']);
  cmd.action(
    action(ctx, async (id: string, _opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<JsonOptions & { attempts?: number }>();
      return withApi(ctx, opts, async (queue) => {
        let job: Job;
        try {
          job = await queue.retry(id, { attempts: opts.attempts });
        } catch (error) {
          if (error instanceof ConflictError && typeof error.details?.status === 'string') {
            const full = await queue.resolveId(id);
            const hint =
              error.details.status === 'completed'
                ? `submit a new job instead: agentq submit --agent ...`
                : `wait for it with: agentq wait ${shortId(full)}`;
            throw new CliError(error.message, { hint });
          }
          throw error;
        }
        printChanged(ctx, job, 'retrying', opts.json);
        return 0;
      });
    }),
  );
}

export function registerControl(program: Command, ctx: Context): void {
  registerWait(program, ctx);
  registerCancel(program, ctx);
  registerKill(program, ctx);
  registerRetry(program, ctx);
}
