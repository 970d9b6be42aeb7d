/** `agentq hung`, `cleanup` and `migrate`: looking after the queue. */
import { Option, type Command } from 'commander';
import { ConflictError } from '../errors.ts';
import type { Job } from '../job.ts';
import type { Queue } from '../queue.ts';
import type { CliQueue } from './remote.ts';
import { action, databaseLocation, setup, withApi, withQueue, type Context, type DbOptions } from './context.ts';
import { formatDuration, relativeTime, shortId, statusText, table } from './format.ts';
import { line, printJson } from './io.ts';
import { collect, parseDuration, parseNumber } from './parse.ts';

interface HungOptions extends DbOptions {
  timeout?: number;
  requeue?: boolean;
  kill?: boolean;
  json?: boolean;
}

function registerHung(program: Command, ctx: Context): void {
  const cmd = program
    .command('hung')
    .description('list running jobs whose heartbeat is older than the timeout; optionally kill or requeue them')
    .option('--timeout <duration>', 'silent for longer than this: 30s, 5m (default: 5m)', parseDuration)
    .addOption(new Option('--requeue', 'cancel each and run it again').conflicts('kill'))
    .option('--kill', 'cancel each')
    .option('--json', 'print {jobs, killed, requeued} as JSON');
  setup(cmd, ['agentq hung', 'agentq hung --timeout 10m --requeue', 'agentq hung --kill --json']);
  cmd.action(
    action(ctx, async (_opts: HungOptions, command: Command) => {
      const opts = command.optsWithGlobals<HungOptions>();
      return withApi(ctx, opts, async (queue) => {
        const jobs = await queue.hung({ timeoutMs: opts.timeout });
        const killed: string[] = [];
        const requeued: string[] = [];
        const skipped: Array<{ id: string; reason: string }> = [];
        if (opts.kill || opts.requeue) {
          for (const job of jobs) {
            try {
              await queue.cancel(job.id, { reason: `hung: no heartbeat since ${job.heartbeatAt ?? 'start'}` });
              if (opts.requeue) {
                await queue.retry(job.id);
                requeued.push(job.id);
              } else {
                killed.push(job.id);
              }
            } catch (error) {
              // It finished (or was cancelled) while we looked: nothing to do.
              if (!(error instanceof ConflictError)) throw error;
              skipped.push({ id: job.id, reason: error.message });
            }
          }
        }
        if (opts.json) {
          printJson(ctx.io.stdout, { jobs, killed, requeued });
          return 0;
        }
        const out = ctx.io.stdout;
        const limit = formatDuration(opts.timeout ?? queue.hungTimeoutMs);
        if (jobs.length === 0) {
          line(out, `No hung jobs (no running job has been silent for more than ${limit}).`);
          return 0;
        }
        line(out, `${jobs.length} running job${jobs.length === 1 ? '' : 's'} silent for more than ${limit}:`);
        const now = Date.now();
        const rows = jobs.map((j: Job) => [
          shortId(j.id),
          j.agent,
          statusText(ctx.out, j.status),
          relativeTime(j.heartbeatAt, now),
          j.durationMs != null ? formatDuration(j.durationMs) : '-',
          j.workerId ?? '-',
        ]);
        for (const l of table(
          ctx.out,
          [{ header: 'ID' }, { header: 'AGENT' }, { header: 'STATUS' }, { header: 'HEARTBEAT' }, { header: 'RUNNING' }, { header: 'WORKER' }],
          rows,
        )) {
          line(out, l);
        }
        for (const id of killed) line(out, `killed ${id}`);
        for (const id of requeued) line(out, `requeued ${id}`);
        for (const s of skipped) line(out, ctx.out('dim', `skipped ${s.id}: ${s.reason}`));
        if (!opts.kill && !opts.requeue) line(out, ctx.out('dim', 'cancel them with --kill, or run them again with --requeue'));
        return 0;
      });
    }),
  );
}

interface CleanupOptions extends DbOptions {
  days: number;
  status?: string[];
  dryRun?: boolean;
  json?: boolean;
}

function registerCleanup(program: Command, ctx: Context): void {
  const cmd = program
    .command('cleanup')
    .description('delete finished jobs (and their logs) older than some days')
    .option('-d, --days <n>', 'finished more than this many days ago', parseNumber(0), 30)
    .option('-s, --status <status...>', 'only these finished statuses (default: completed, failed, cancelled)', collect)
    .option('--dry-run', 'list what would be deleted, delete nothing')
    .option('--json', 'print {dryRun, count, ids} as JSON');
  setup(cmd, ['agentq cleanup --dry-run', 'agentq cleanup --days 7 -s completed', 'agentq cleanup -d 0 --json']);
  cmd.action(
    action(ctx, async (_opts: CleanupOptions, command: Command) => {
      const opts = command.optsWithGlobals<CleanupOptions>();
      return withApi(ctx, opts, async (queue) => {
        const result = await queue.cleanup({
          olderThanMs: Math.round(opts.days * 86_400_000),
          status: opts.status?.length ? opts.status : undefined,
          dryRun: opts.dryRun === true,
        });
        if (opts.json) {
          printJson(ctx.io.stdout, result);
          return 0;
        }
        const out = ctx.io.stdout;
        const what = `${result.count} finished job${result.count === 1 ? '' : 's'} older than ${opts.days} day${opts.days === 1 ? '' : 's'}`;
        if (result.dryRun) {
          line(out, result.count === 0 ? `Nothing to delete: no ${what.replace(/^0 /, '')}.` : `Would delete ${what}:`);
          for (const id of result.ids.slice(0, 100)) line(out, `  ${id}`);
          if (result.ids.length > 100) line(out, ctx.out('dim', `  … and ${result.ids.length - 100} more`));
          if (result.count > 0) line(out, ctx.out('dim', 'run again without --dry-run to delete them'));
        } else {
          line(out, result.count === 0 ? `Nothing to delete: no ${what.replace(/^0 /, '')}.` : `Deleted ${what}.`);
        }
        return 0;
      });
    }),
  );
}

function registerMigrate(program: Command, ctx: Context): void {
  const cmd = program
    .command('migrate')
    .description('create or upgrade the database schema (every command does this when it opens the queue)')
    .option('--json', 'print {version, database} as JSON');
  setup(cmd, ['agentq migrate', 'agentq migrate --db ./agentq.db']);
  cmd.action(
    action(ctx, async (_opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<DbOptions & { json?: boolean }>();
      const migrate = async (queue: Queue) => {
        const version = await queue.store.migrate();
        const database = databaseLocation(ctx, opts);
        if (opts.json) printJson(ctx.io.stdout, { version, database });
        else line(ctx.io.stdout, `Database ${database} is at schema version ${version}.`);
        return 0;
      };
      return withQueue(ctx, opts, migrate, { create: true });
    }),
  );
}

export function registerMaintenance(program: Command, ctx: Context): void {
  registerHung(program, ctx);
  registerCleanup(program, ctx);
  registerMigrate(program, ctx);
}
