/** `agentq events publish | tail` and `agentq monitor`: the event bus from a terminal. */
import type { Command } from 'commander';
import type { AgentqEvent } from '../events.ts';
import type { Json } from '../job.ts';
import type { CliQueue } from './remote.ts';
import { action, setup, withApi, type Context, type DbOptions } from './context.ts';
import { clockTime, compactJson, progressBar, shortId, statusText, table, truncateVisible } from './format.ts';
import { line, printJson } from './io.ts';
import { parseInteger, parseJsonValue } from './parse.ts';
import { printStats, printWorkers } from './status.ts';

interface PublishOptions extends DbOptions {
  payload?: unknown;
  to?: string;
  source?: string;
  json?: boolean;
}

interface TailOptions extends DbOptions {
  to?: string;
  after?: number;
  last?: number;
  follow?: boolean;
  json?: boolean;
}

/** One event as a line for people. */
function describeEvent(ctx: Context, e: AgentqEvent): string {
  const p = ctx.out;
  const parts = [p('dim', clockTime(e.createdAt)), p('dim', `#${e.id}`), p('bold', e.type)];
  if (e.jobId) parts.push(shortId(e.jobId));
  const payload = e.payload as { [k: string]: Json } | null;
  if (e.source === 'agentq' && payload && typeof payload === 'object') {
    parts.push(String(payload.agent ?? ''));
    if (e.type === 'job.progress') parts.push(`${payload.progress}%${payload.progressMessage ? ' ' + payload.progressMessage : ''}`);
    const error = payload.error as { message?: string } | null;
    if (error?.message && (e.type === 'job.failed' || e.type === 'job.retrying' || e.type === 'job.cancelled')) {
      parts.push(p('red', error.message));
    }
  } else {
    parts.push(p('dim', `from ${e.source}${e.target ? ` to ${e.target}` : ''}`));
    if (e.payload !== null) parts.push(compactJson(e.payload, 100));
  }
  return parts.join('  ');
}

function registerPublish(events: Command, ctx: Context): void {
  const cmd = events
    .command('publish')
    .description('publish an event to every subscriber, or to one agent\'s with --to')
    .argument('<type>', 'dotted words, e.g. email.processed')
    .option('--payload <json>', 'the event\'s JSON payload', parseJsonValue)
    .option('--to <agent>', 'deliver to this agent\'s subscribers only')
    .option('--source <name>', 'who publishes (default: cli)')
    .option('--json', 'print the stored event as JSON');
  setup(cmd, ['agentq events publish email.processed --payload \'{"id":42}\'', 'agentq events publish report.ready --to writer']);
  cmd.action(
    action(ctx, async (type: string, _opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<PublishOptions>();
      return withApi(
        ctx,
        opts,
        async (queue) => {
          const event = await queue.events.publish({
            type,
            payload: (opts.payload ?? null) as Json,
            target: opts.to ?? null,
            source: opts.source ?? 'cli',
          });
          if (opts.json) printJson(ctx.io.stdout, event);
          else line(ctx.io.stdout, `published #${event.id} ${event.type}`);
          return 0;
        },
        { create: true },
      );
    }),
  );
}

function registerTail(events: Command, ctx: Context): void {
  const cmd = events
    .command('tail')
    .description('print events as they happen (all of them, or those matching PATTERN); Ctrl+C stops')
    .argument('[pattern...]', 'event types, * matching anything: job.*, *.failed (default: all)')
    .option('--to <agent>', 'only events for this agent (and those for everyone)')
    .option('--after <id>', 'start after this event id (resume where you left off)', parseInteger(0))
    .option('-n, --last <count>', 'start with the last COUNT events', parseInteger(0, 10_000))
    .option('--no-follow', 'print what is there and exit')
    .option('--json', 'one JSON event per line');
  setup(cmd, ['agentq events tail', 'agentq events tail "job.*" -n 20', 'agentq events tail email.processed --json --after 1200']);
  cmd.action(
    action(ctx, async (patterns: string[], _opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<TailOptions>();
      return withApi(ctx, opts, async (queue) => {
        const pattern = patterns.length ? patterns : undefined;
        const print = (e: AgentqEvent) => {
          if (opts.json) printJson(ctx.io.stdout, e, false);
          else line(ctx.io.stdout, describeEvent(ctx, e));
        };
        let after = opts.after ?? (await queue.events.lastId());
        if (opts.after == null && opts.last) after = Math.max(0, after - opts.last * 50);
        // Print what is there (for --last, only the last N that match), then follow.
        const backlog: AgentqEvent[] = [];
        for (;;) {
          const page = await queue.events.list({ pattern, target: opts.to, after, limit: 1000 });
          if (page.length === 0) break;
          backlog.push(...page);
          after = page[page.length - 1].id;
          if (page.length < 1000) break;
        }
        const start = opts.after == null && opts.last != null ? backlog.slice(-opts.last) : opts.after == null ? [] : backlog;
        for (const e of start) print(e);
        if (opts.follow === false) return 0;
        await new Promise<void>((resolve) => {
          const sub = queue.events.subscribe(pattern ?? '*', print, { target: opts.to, after, onError: () => {} });
          const stop = () => {
            sub.close();
            resolve();
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
        return 0;
      });
    }),
  );
}

export function registerEvents(program: Command, ctx: Context): void {
  const events = program.command('events').description('publish events and watch the event bus');
  setup(events, ['agentq events tail "job.*"', 'agentq events publish email.processed --payload \'{"id":42}\'']);
  registerPublish(events, ctx);
  registerTail(events, ctx);
}

// ---- monitor -------------------------------------------------------------------------------------

interface MonitorOptions extends DbOptions {
  once?: boolean;
  events?: number;
}

async function snapshot(ctx: Context, queue: CliQueue, recent: AgentqEvent[], opts: MonitorOptions, width: number): Promise<string[]> {
  const lines: string[] = [];
  const capture = {
    ...ctx,
    io: { ...ctx.io, stdout: { write: (s: string) => (lines.push(...s.replace(/\n$/, '').split('\n')), true) } },
  } as Context;
  const [stats, workers, running] = await Promise.all([
    queue.stats(),
    queue.workers(),
    queue.list({ status: 'running', limit: 15, order: 'asc' }),
  ]);
  lines.push(`${ctx.out('bold', 'agentq monitor')}  ${ctx.out('dim', new Date().toLocaleTimeString())}`);
  lines.push('');
  printStats(capture, stats, opts);
  lines.push('');
  printWorkers(capture, workers, opts);
  lines.push('');
  lines.push(`${ctx.out('bold', 'Running')}  ${running.jobs.length === 0 ? ctx.out('dim', 'nothing') : ''}`);
  for (const l of table(
    ctx.out,
    [{ header: 'ID' }, { header: 'AGENT' }, { header: 'STATUS' }, { header: 'PROGRESS' }, { header: 'MESSAGE' }],
    running.jobs.map((j) => [shortId(j.id), j.agent, statusText(ctx.out, j.status), progressBar(ctx.out, j.progress, 20), j.progressMessage ?? '']),
  )) {
    if (running.jobs.length) lines.push(l);
  }
  lines.push('');
  lines.push(ctx.out('bold', 'Latest events'));
  for (const e of recent.slice(-(opts.events ?? 10))) lines.push(describeEvent(ctx, e));
  return lines.map((l) => truncateVisible(l, width));
}

export function registerMonitor(program: Command, ctx: Context): void {
  const cmd = program
    .command('monitor')
    .description('a live view of the queue: counts, workers, running jobs with progress, the latest events (Ctrl+C exits)')
    .option('--once', 'print one snapshot and exit (also what a non-terminal gets on each change)')
    .option('--events <count>', 'how many recent events to show (default: 10)', parseInteger(0, 100));
  setup(cmd, ['agentq monitor', 'agentq monitor --once']);
  cmd.action(
    action(ctx, async (_opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<MonitorOptions>();
      return withApi(ctx, opts, async (queue) => {
        const keep = opts.events ?? 10;
        const last = await queue.events.lastId();
        const recent = await queue.events.list({ after: Math.max(0, last - keep), limit: 100 });
        const out = ctx.io.stdout;
        const tty = out.isTTY === true;
        const width = () => (tty ? (out.columns ?? 100) - 1 : 200);
        if (opts.once) {
          for (const l of await snapshot(ctx, queue, recent, opts, width())) line(out, l);
          return 0;
        }
        let drawing = false;
        let again = false;
        const draw = async () => {
          if (drawing) {
            again = true;
            return;
          }
          drawing = true;
          try {
            const lines = await snapshot(ctx, queue, recent, opts, width());
            // On a terminal: redraw in place on the alternate screen; elsewhere, one snapshot per change.
            if (tty) out.write('\x1b[H\x1b[2J' + lines.join('\n') + '\n');
            else out.write(lines.join('\n') + '\n\n');
          } finally {
            drawing = false;
            if (again) {
              again = false;
              setTimeout(() => void draw(), 100);
            }
          }
        };
        if (tty) out.write('\x1b[?1049h\x1b[?25l');
        const sub = queue.events.subscribe(
          '*',
          (e) => {
            recent.push(e);
            if (recent.length > 100) recent.splice(0, recent.length - 100);
            void draw();
          },
          { after: last, onError: () => {} },
        );
        const tick = setInterval(() => void draw(), 1000);
        await draw();
        await new Promise<void>((resolve) => {
          const stop = () => {
            clearInterval(tick);
            sub.close();
            if (tty) out.write('\x1b[?25h\x1b[?1049l');
            resolve();
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
        return 0;
      });
    }),
  );
}
