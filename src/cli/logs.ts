/** `agentq logs ID [-f]`: a job's log lines, optionally following them until the job finishes. */
import type { Command } from 'commander';
import { NotFoundError } from '../errors.ts';
import { isFinished, type Job, type JobLog } from '../job.ts';
import type { CliQueue } from './remote.ts';
import { action, setup, withApi, type Context, type DbOptions } from './context.ts';
import { clockTime, compactJson, formatDuration, levelText, statusText } from './format.ts';
import { line, printJson } from './io.ts';

interface LogsOptions extends DbOptions {
  follow?: boolean;
  json?: boolean;
}

const PAGE = 1000;

function formatLog(ctx: Context, log: JobLog): string {
  const p = ctx.out;
  const parts = [p('dim', clockTime(log.at)), levelText(p, log.level)];
  if (log.attempt > 1) parts.push(p('dim', `[attempt ${log.attempt}]`));
  parts.push(log.message);
  if (log.data !== null) parts.push(p('dim', compactJson(log.data, 500)));
  return parts.join(' ');
}

/** Sleeps until the store changes or `ms` passed. */
function nap(queue: CliQueue, ms: number): Promise<void> {
  return new Promise((resolve) => {
    let over = false;
    let soon = false;
    const done = () => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      stop();
      resolve();
    };
    let timer = setTimeout(done, ms);
    const stop = queue.store.onChange(() => {
      // Writes come in bursts; let this one land before reading.
      if (soon) return;
      soon = true;
      clearTimeout(timer);
      timer = setTimeout(done, 20);
    });
  });
}

async function follow(ctx: Context, queue: CliQueue, id: string, json: boolean): Promise<Job> {
  let after = 0;
  for (;;) {
    const job = await queue.store.getJob(id);
    if (!job) throw new NotFoundError('job', id);
    // Read the logs after the status: a job that had finished then has all its lines in.
    for (;;) {
      const logs = await queue.logs(id, { after, limit: PAGE });
      for (const log of logs) {
        if (json) printJson(ctx.io.stdout, log, false);
        else line(ctx.io.stdout, formatLog(ctx, log));
        after = log.id;
      }
      if (logs.length < PAGE) break;
    }
    if (isFinished(job.status)) return job;
    await nap(queue, 200);
  }
}

export function registerLogs(program: Command, ctx: Context): void {
  const cmd = program
    .command('logs')
    .description("print a job's log lines")
    .argument('<id>', 'job id, or an unambiguous prefix of one')
    .option('-f, --follow', 'keep printing new lines until the job has finished')
    .option('--json', 'print the lines as a JSON array (with -f: one JSON object per line)');
  setup(cmd, ['agentq logs 01JF3K9Z', 'agentq logs 01JF3K9Z -f', 'agentq logs 01JF3K9Z -f --json | jq -r .message']);
  cmd.action(
    action(ctx, async (idArg: string, _opts: LogsOptions, command: Command) => {
      const opts = command.optsWithGlobals<LogsOptions>();
      return withApi(ctx, opts, async (queue) => {
        const id = await queue.resolveId(idArg);
        if (opts.follow) {
          const job = await follow(ctx, queue, id, opts.json === true);
          if (!opts.json) {
            const took = job.durationMs != null ? ` in ${formatDuration(job.durationMs)}` : '';
            line(ctx.io.stderr, ctx.err('dim', `— job ${statusText(ctx.err, job.status)}${ctx.err('dim', took)}`));
          }
          return 0;
        }
        const all: JobLog[] = [];
        for (;;) {
          const logs = await queue.logs(id, { after: all.at(-1)?.id ?? 0, limit: PAGE });
          all.push(...logs);
          if (logs.length < PAGE) break;
        }
        if (opts.json) {
          printJson(ctx.io.stdout, all);
          return 0;
        }
        if (all.length === 0) line(ctx.io.stderr, ctx.err('dim', `no log lines yet — follow them with: agentq logs ${idArg} -f`));
        for (const log of all) line(ctx.io.stdout, formatLog(ctx, log));
        return 0;
      });
    }),
  );
}
