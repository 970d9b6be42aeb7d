/** `agentq status`: how many jobs are in each state, per agent, and which workers are alive. */
import type { Command } from 'commander';
import type { CliQueue } from './remote.ts';
import { STATUSES, type JobStatus } from '../job.ts';
import type { Queue, Stats } from '../queue.ts';
import type { WorkerInfo } from '../store/store.ts';
import { action, databaseLocation, dbFlag, setup, withApi, type Context, type DbOptions } from './context.ts';
import { relativeTime, statusText, table, usageTable } from './format.ts';
import { line, printJson } from './io.ts';

interface StatusOptions extends DbOptions {
  json?: boolean;
}

export function printWorkers(ctx: Context, workers: readonly WorkerInfo[], opts: DbOptions): void {
  const out = ctx.io.stdout;
  if (workers.length === 0) {
    line(out, `${ctx.out('bold', 'Workers')}  none alive — start one with: agentq worker${dbFlag(opts)}`);
    return;
  }
  line(out, `${ctx.out('bold', 'Workers')}  ${workers.length} alive`);
  const rows = workers.map((w) => [
    w.name,
    String(w.pid),
    w.agents.join(', ') + (w.types ? ` (${w.types.join(', ')})` : ''),
    `${w.running.length}/${w.concurrency}`,
    relativeTime(w.startedAt),
    relativeTime(w.heartbeatAt),
  ]);
  for (const l of table(
    ctx.out,
    [
      { header: 'NAME' },
      { header: 'PID', align: 'right' },
      { header: 'AGENTS' },
      { header: 'RUNNING', align: 'right' },
      { header: 'STARTED' },
      { header: 'HEARTBEAT' },
    ],
    rows,
  )) {
    line(out, l);
  }
}

export function printStats(ctx: Context, stats: Stats, opts: DbOptions): void {
  const out = ctx.io.stdout;
  if (stats.total === 0) {
    line(out, `${ctx.out('bold', 'Jobs')}     none yet — submit one with: agentq submit --agent demo${dbFlag(opts)}`);
    return;
  }
  const present = STATUSES.filter((s) => stats.byStatus[s] > 0);
  const summary = present.map((s) => `${stats.byStatus[s]} ${statusText(ctx.out, s)}`).join(' · ');
  line(out, `${ctx.out('bold', 'Jobs')}     ${stats.total} total · ${summary}`);
  line(out);
  const agents = Object.keys(stats.byAgent).sort();
  const rows = agents.map((agent) => {
    const a = stats.byAgent[agent];
    return [agent, String(a.total), ...present.map((s: JobStatus) => (a[s] ? String(a[s]) : ctx.out('dim', '0')))];
  });
  const columns = [
    { header: 'AGENT' },
    { header: 'TOTAL', align: 'right' as const },
    ...present.map((s) => ({ header: s.toUpperCase(), align: 'right' as const })),
  ];
  for (const l of table(ctx.out, columns, rows)) line(out, l);
}

async function gather(queue: CliQueue) {
  const [stats, workers, usage] = await Promise.all([queue.stats(), queue.workers(), queue.limits.usageBy('agent')]);
  return { stats, workers, usage };
}

export function registerStatus(program: Command, ctx: Context): void {
  const cmd = program
    .command('status')
    .description('count jobs per status (in all and per agent) and list live workers')
    .option('--json', 'print {stats, workers} as JSON');
  setup(cmd, ['agentq status', 'agentq status --json | jq .stats.byStatus']);
  cmd.action(
    action(ctx, async (_opts: StatusOptions, command: Command) => {
      const opts = command.optsWithGlobals<StatusOptions>();
      return withApi(ctx, opts, async (queue) => {
        const { stats, workers, usage } = await gather(queue);
        if (opts.json) {
          printJson(ctx.io.stdout, { stats, workers, usage });
          return 0;
        }
        line(ctx.io.stdout, `${ctx.out('bold', 'Database')} ${databaseLocation(ctx, opts)}`);
        printStats(ctx, stats, opts);
        line(ctx.io.stdout);
        printWorkers(ctx, workers, opts);
        if (usage.length > 0) {
          line(ctx.io.stdout);
          line(ctx.io.stdout, ctx.out('bold', 'Usage'));
          for (const l of usageTable(ctx.out, 'agent', usage)) line(ctx.io.stdout, l);
        }
        return 0;
      });
    }),
  );
}
