/**
 * `agentq schedules list | show | apply | enable | disable | run | remove`,
 * and `agentq scheduler`, the scheduler loop on its own.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import { NotFoundError, ValidationError } from '../errors.ts';
import type { Queue } from '../queue.ts';
import type { CliQueue } from './remote.ts';
import { Scheduler } from '../schedules/scheduler.ts';
import type { ApplyResult, Schedule } from '../schedules/schedules.ts';
import { action, databaseLocation, dbFlag, setup, shellQuote, withApi, withQueue, type Context, type DbOptions } from './context.ts';
import { dateTime, formatDuration, relativeTime, shortId, statusText, table, fields, compactJson } from './format.ts';
import { CliError, line, printJson, usageError } from './io.ts';
import { jobRows } from './jobs.ts';
import { parseDuration, parseInteger } from './parse.ts';

interface JsonOptions extends DbOptions {
  json?: boolean;
}

/** How a schedule fires, in a few words: `0 9 * * * (Europe/Berlin)`, `every 5 minutes`. */
export function timing(s: Schedule): string {
  if (s.cron != null) return s.timezone === 'UTC' ? s.cron : `${s.cron} (${s.timezone})`;
  return `every ${s.interval}`;
}

/** Runs `fn`, turning "no such schedule" and bad files into one-line errors with what to do. */
async function schedulesAction<T>(ctx: Context, opts: DbOptions, fn: () => Promise<T>, source?: string): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof NotFoundError && /^schedule /.test(error.message)) {
      throw new CliError(error.message, { hint: `list them with: agentq schedules list${dbFlag(opts)}` });
    }
    if (error instanceof ValidationError && source !== undefined) {
      throw usageError(`${source}: ${error.message}`, 'fix the file and apply it again; nothing was changed');
    }
    throw error;
  }
}

function printSchedules(ctx: Context, schedules: readonly Schedule[], opts: DbOptions): void {
  const out = ctx.io.stdout;
  if (schedules.length === 0) {
    line(out, `No schedules yet — define them in a YAML file and run: agentq schedules apply FILE${dbFlag(opts)}`);
    return;
  }
  const now = Date.now();
  const rows = schedules.map((s) => [
    s.name,
    timing(s),
    s.agent + (s.type && s.type !== 'default' ? `/${s.type}` : ''),
    s.enabled ? ctx.out('green', 'enabled') : ctx.out('gray', 'disabled'),
    s.enabled && s.nextRunAt ? relativeTime(s.nextRunAt, now) : '-',
    s.lastRunAt ? `${relativeTime(s.lastRunAt, now)}${s.lastJobStatus ? ` ${statusText(ctx.out, s.lastJobStatus)}` : ''}` : '-',
  ]);
  const cols = [{ header: 'NAME' }, { header: 'TIMING' }, { header: 'AGENT' }, { header: 'STATE' }, { header: 'NEXT' }, { header: 'LAST' }];
  for (const l of table(ctx.out, cols, rows)) line(out, l);
}

function printSchedule(ctx: Context, s: Schedule): void {
  const entries: Array<[string, string]> = [
    ['name', ctx.out('bold', s.name)],
    ['id', s.id],
  ];
  if (s.description) entries.push(['description', s.description]);
  entries.push(
    ['timing', timing(s)],
    ['state', s.enabled ? ctx.out('green', 'enabled') : ctx.out('gray', 'disabled')],
    ['overlap', s.overlap === 'skip' ? 'skip while the previous job is unfinished' : 'allow'],
    ['next run', s.enabled ? dateTime(s.nextRunAt) : '-'],
    ['last run', s.lastRunAt ? `${dateTime(s.lastRunAt)}${s.lastJobId ? ` → ${shortId(s.lastJobId)}${s.lastJobStatus ? ` ${statusText(ctx.out, s.lastJobStatus)}` : ''}` : ''}` : '-'],
    ['agent', s.agent],
  );
  if (s.type) entries.push(['type', s.type]);
  if (s.instructions) entries.push(['instructions', compactJson(s.instructions)]);
  if (s.payload !== undefined) entries.push(['payload', compactJson(s.payload)]);
  if (s.metadata) entries.push(['metadata', compactJson(s.metadata)]);
  if (s.tags?.length) entries.push(['tags', s.tags.join(', ')]);
  if (s.owner) entries.push(['owner', s.owner]);
  if (s.priority !== undefined) entries.push(['priority', String(s.priority)]);
  if (s.maxAttempts !== undefined) entries.push(['max attempts', String(s.maxAttempts)]);
  if (s.timeoutMs != null) entries.push(['timeout', formatDuration(s.timeoutMs)]);
  for (const l of fields(ctx.out, entries)) line(ctx.io.stdout, l);
}

function printApplied(ctx: Context, r: ApplyResult): void {
  const out = ctx.io.stdout;
  const would = r.dryRun ? 'would be ' : '';
  for (const name of r.created) line(out, `${ctx.out('green', '+')} ${name} ${would}created`);
  for (const name of r.updated) line(out, `${ctx.out('yellow', '~')} ${name} ${would}updated (${r.changes[name].join(', ')})`);
  for (const name of r.removed) line(out, `${ctx.out('red', '-')} ${name} ${would}removed`);
  const changed = r.created.length + r.updated.length + r.removed.length;
  const parts = [`${r.created.length} created`, `${r.updated.length} updated`, `${r.removed.length} removed`, `${r.unchanged.length} unchanged`];
  line(out, `${r.dryRun ? 'dry run: ' : ''}${parts.join(', ')}${changed === 0 ? ' — nothing to change' : ''}${r.dryRun && changed > 0 ? ' (nothing was changed)' : ''}`);
}

function readSchedulesFile(ctx: Context, file: string): string {
  if (file === '-') throw usageError('reading schedules from standard input is not supported', 'give the path to a YAML file');
  const path = isAbsolute(file) ? file : resolve(ctx.io.cwd ?? process.cwd(), file);
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'is a folder' : e.message;
    throw usageError(`cannot read schedules file ${file}: ${why}`, 'give the path to a YAML file with a schedules: list');
  }
}

/** Applies a schedules file and reports it; used by `apply`, `scheduler --schedules` and `serve --schedules`. */
export async function applySchedulesFile(ctx: Context, queue: CliQueue, file: string, options: { prune?: boolean; dryRun?: boolean } = {}): Promise<ApplyResult> {
  const text = readSchedulesFile(ctx, file);
  return schedulesAction(ctx, {}, () => queue.schedules.applyFile(text, options), file);
}

function registerList(parent: Command, ctx: Context): void {
  const cmd = parent
    .command('list', { isDefault: true })
    .alias('ls')
    .description('list schedules: timing, agent, state, next and last run')
    .option('--json', 'print the schedules as JSON');
  setup(cmd, ['agentq schedules', 'agentq schedules list --json']);
  cmd.action(
    action(ctx, async (_opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<JsonOptions>();
      return withApi(ctx, opts, async (queue) => {
        const schedules = await queue.schedules.list();
        if (opts.json) printJson(ctx.io.stdout, schedules);
        else printSchedules(ctx, schedules, opts);
        return 0;
      });
    }),
  );
}

function registerShow(parent: Command, ctx: Context): void {
  const cmd = parent
    .command('show')
    .alias('info')
    .description('one schedule and the jobs it submitted (its executions), newest first')
    .argument('<name>', 'schedule name (or id)')
    .option('--limit <n>', 'executions to show, 1 to 1000', parseInteger(1, 1000), 10)
    .option('--json', 'print {schedule, executions} as JSON');
  setup(cmd, ['agentq schedules show daily_report', 'agentq schedules show daily_report --limit 50 --json']);
  cmd.action(
    action(ctx, async (name: string, _opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<JsonOptions & { limit: number }>();
      return withApi(ctx, opts, async (queue) =>
        schedulesAction(ctx, opts, async () => {
          const schedule = await queue.schedules.get(name);
          const page = await queue.schedules.executions(schedule.id, { limit: opts.limit });
          if (opts.json) {
            printJson(ctx.io.stdout, { schedule, executions: page.jobs });
            return 0;
          }
          printSchedule(ctx, schedule);
          line(ctx.io.stdout);
          if (page.jobs.length === 0) {
            line(ctx.io.stdout, `No executions yet — run it now with: agentq schedules run ${shellQuote(schedule.name)}${dbFlag(opts)}`);
          } else {
            line(ctx.io.stdout, ctx.out('bold', 'Executions'));
            for (const l of jobRows(ctx, page.jobs)) line(ctx.io.stdout, l);
            if (page.nextCursor) line(ctx.io.stdout, ctx.out('dim', `more: agentq schedules show ${shellQuote(schedule.name)} --limit ${Math.min(1000, opts.limit * 5)}${dbFlag(opts)}`));
          }
          return 0;
        }),
      );
    }),
  );
}

function registerApply(parent: Command, ctx: Context): void {
  const cmd = parent
    .command('apply')
    .description('make the stored schedules match a YAML file: create, update, and with --prune remove (idempotent; all or nothing)')
    .argument('<file>', 'a YAML file with a schedules: (or tasks:) list')
    .option('--prune', 'remove schedules the file does not have')
    .option('--dry-run', 'show what would change, change nothing')
    .option('--json', 'print {created, updated, unchanged, removed, changes} as JSON');
  cmd.addHelpText(
    'after',
    `
File format:
  schedules:                      # or tasks:
    - name: process_pending_emails
      interval: 5 minutes         # 30 seconds, 1 hour, 2 days, 1 week, 5m, 1h30m
      agent: email                # the job each firing submits: agent (required),
      type: process               #   type, instructions, payload, metadata, tags,
      payload: {batch_size: 10}   #   owner, priority, maxAttempts, timeoutMs, backoff
    - name: daily_report
      cron: "0 9 * * *"           # 5 fields, or 6 with seconds first
      timezone: America/New_York  # IANA name (default: UTC)
      overlap: skip               # skip a firing while the previous job is unfinished
      enabled: true
      agent: reporter

Daylight saving: a local time that does not exist is skipped that day; one that
happens twice fires once.`,
  );
  setup(cmd, ['agentq schedules apply tasks.yaml', 'agentq schedules apply tasks.yaml --prune --dry-run', 'agentq schedules apply tasks.yaml --json']);
  cmd.action(
    action(ctx, async (file: string, _opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<JsonOptions & { prune?: boolean; dryRun?: boolean }>();
      const text = readSchedulesFile(ctx, file);
      return withApi(
        ctx,
        opts,
        async (queue) => {
          const result = await schedulesAction(ctx, opts, () => queue.schedules.applyFile(text, { prune: opts.prune, dryRun: opts.dryRun }), file);
          if (opts.json) printJson(ctx.io.stdout, result);
          else printApplied(ctx, result);
          return 0;
        },
        { create: !opts.dryRun },
      );
    }),
  );
}

function registerToggle(parent: Command, ctx: Context, verb: 'enable' | 'disable'): void {
  const cmd = parent
    .command(verb)
    .description(verb === 'enable' ? 'start firing a schedule again (its next run is the first one from now)' : 'stop firing a schedule (jobs it submitted run on)')
    .argument('<name>', 'schedule name (or id)')
    .option('--json', 'print the schedule as JSON');
  setup(cmd, [`agentq schedules ${verb} daily_report`]);
  cmd.action(
    action(ctx, async (name: string, _opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<JsonOptions>();
      return withApi(ctx, opts, async (queue) =>
        schedulesAction(ctx, opts, async () => {
          const s = verb === 'enable' ? await queue.schedules.enable(name) : await queue.schedules.disable(name);
          if (opts.json) printJson(ctx.io.stdout, s);
          else line(ctx.io.stdout, `${verb}d ${s.name}${s.enabled && s.nextRunAt ? ` — next run ${dateTime(s.nextRunAt)}` : ''}`);
          return 0;
        }),
      );
    }),
  );
}

function registerRun(parent: Command, ctx: Context): void {
  const cmd = parent
    .command('run')
    .description("submit a schedule's job now (also when disabled); its next scheduled run stays as it was")
    .argument('<name>', 'schedule name (or id)')
    .option('--json', 'print the submitted job as JSON');
  setup(cmd, ['agentq schedules run daily_report', 'agentq wait $(agentq schedules run daily_report --json | jq -r .id)']);
  cmd.action(
    action(ctx, async (name: string, _opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<JsonOptions>();
      return withApi(ctx, opts, async (queue) =>
        schedulesAction(ctx, opts, async () => {
          const job = await queue.schedules.runNow(name);
          if (opts.json) printJson(ctx.io.stdout, job);
          else line(ctx.io.stdout, `submitted ${job.id} (${job.agent}) for schedule ${name} — follow it with: agentq logs ${shortId(job.id)} -f${dbFlag(opts)}`);
          return 0;
        }),
      );
    }),
  );
}

function registerRemove(parent: Command, ctx: Context): void {
  const cmd = parent
    .command('remove')
    .alias('rm')
    .description('remove a schedule (the jobs it submitted stay, as history)')
    .argument('<name>', 'schedule name (or id)')
    .option('--json', 'print the removed schedule as JSON');
  setup(cmd, ['agentq schedules remove daily_report']);
  cmd.action(
    action(ctx, async (name: string, _opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<JsonOptions>();
      return withApi(ctx, opts, async (queue) =>
        schedulesAction(ctx, opts, async () => {
          const s = await queue.schedules.remove(name);
          if (opts.json) printJson(ctx.io.stdout, s);
          else line(ctx.io.stdout, `removed ${s.name}`);
          return 0;
        }),
      );
    }),
  );
}

export interface RunSchedulerOptions {
  /** A schedules file to apply before starting. */
  schedules?: string;
  pollInterval?: number;
}

/**
 * Starts a scheduler on the queue (after applying `--schedules FILE`, if
 * given), runs `body`, and stops the scheduler when `body` returns.
 */
export async function withScheduler<T>(
  ctx: Context,
  queue: Queue,
  options: RunSchedulerOptions,
  body: (scheduler: Scheduler) => Promise<T>,
): Promise<T> {
  if (options.schedules) {
    const r = await applySchedulesFile(ctx, queue, options.schedules);
    line(
      ctx.io.stderr,
      `agentq: applied ${options.schedules}: ${r.created.length} created, ${r.updated.length} updated, ${r.unchanged.length} unchanged`,
    );
  }
  const scheduler = new Scheduler(queue, { pollIntervalMs: options.pollInterval });
  const p = ctx.out;
  scheduler.on('fire', (s, job, firedAt) =>
    line(ctx.io.stdout, `${p('dim', new Date().toTimeString().slice(0, 8))} ${p('magenta', '⏰')} ${s.name} fired (due ${firedAt.toISOString()}) → ${p('bold', shortId(job.id))} ${job.agent}`),
  );
  scheduler.on('skip', (s, running) =>
    line(ctx.io.stdout, `${p('dim', new Date().toTimeString().slice(0, 8))} ${p('gray', '⏭')} ${s.name} skipped: ${shortId(running)} is still unfinished (overlap: skip)`),
  );
  scheduler.on('error', (error) =>
    line(ctx.io.stderr, `${ctx.err('red', 'agentq scheduler:')} ${error instanceof Error ? error.message : String(error)}`),
  );
  scheduler.start();
  try {
    return await body(scheduler);
  } finally {
    await scheduler.stop();
  }
}

/** Resolves with the first SIGINT/SIGTERM (a second one exits at once). */
function untilSignal(ctx: Context): { signal: Promise<NodeJS.Signals>; off: () => void } {
  let done: (signal: NodeJS.Signals) => void = () => {};
  const signal = new Promise<NodeJS.Signals>((resolve) => (done = resolve));
  let count = 0;
  const off =
    ctx.io.onSignal?.((s) => {
      count++;
      if (count === 1) done(s);
      else (ctx.io.exit ?? process.exit)(1);
    }) ?? (() => {});
  return { signal, off };
}

export function registerScheduler(program: Command, ctx: Context): void {
  const cmd = program
    .command('scheduler')
    .description('run the scheduler alone: submits each due schedule\'s job (agentq serve runs it too); any number may run at once')
    .option('--schedules <file>', 'apply this YAML schedules file first (as agentq schedules apply FILE)')
    .option('--poll-interval <duration>', 'the longest sleep between looks when nothing woke it (default: 5s)', parseDuration);
  setup(cmd, ['agentq scheduler', 'agentq scheduler --schedules tasks.yaml --db ./agentq.db']);
  cmd.action(
    action(ctx, async (_opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<DbOptions & RunSchedulerOptions>();
      return withQueue(
        ctx,
        opts,
        async (queue) => {
          const { signal, off } = untilSignal(ctx);
          try {
            return await withScheduler(ctx, queue, opts, async () => {
              const count = (await queue.schedules.list()).filter((s) => s.enabled).length;
              line(ctx.io.stderr, `agentq: scheduler running on ${databaseLocation(ctx, opts)} (${count} enabled schedule${count === 1 ? '' : 's'}); Ctrl+C stops it`);
              const s = await signal;
              line(ctx.io.stderr, `agentq: ${s} received — scheduler stopped`);
              return 0;
            });
          } finally {
            off();
          }
        },
        { create: true },
      );
    }),
  );
}

export function registerSchedules(program: Command, ctx: Context): void {
  const cmd = program
    .command('schedules')
    .alias('schedule')
    .description('recurring jobs: list | show | apply FILE | enable | disable | run | remove (fired by agentq serve or agentq scheduler)');
  setup(cmd, [
    'agentq schedules apply tasks.yaml --prune',
    'agentq schedules',
    'agentq schedules show daily_report',
    'agentq schedules disable daily_report',
    'agentq schedules run daily_report',
  ]);
  registerList(cmd, ctx);
  registerShow(cmd, ctx);
  registerApply(cmd, ctx);
  registerToggle(cmd, ctx, 'enable');
  registerToggle(cmd, ctx, 'disable');
  registerRun(cmd, ctx);
  registerRemove(cmd, ctx);
}
