/**
 * `agentq serve`: everything in one process. For now a worker with the demo
 * agents (and `--handlers`); the HTTP API will be started from `serve()` too.
 */
import type { Command } from 'commander';
import type { Worker } from '../worker.ts';
import { action, databaseLocation, dbFlag, setup, withQueue, type Context, type DbOptions } from './context.ts';
import { line } from './io.ts';
import { parseInteger } from './parse.ts';
import { describeWorkers, loadAgentsFileOption, runWorker } from './worker.ts';
import { withScheduler } from './schedules.ts';

export interface ServeOptions extends DbOptions {
  handlers?: string;
  /** A YAML agents file of command agents. */
  agents?: string;
  concurrency?: number;
  /** A YAML schedules file to apply at start. */
  schedules?: string;
}

function banner(ctx: Context, opts: ServeOptions, workers: readonly Worker[]): void {
  const p = ctx.out;
  const db = dbFlag(opts);
  const worker = describeWorkers(workers);
  const lines = [
    `${p('bold', 'agentq')} is running`,
    '',
    `  ${p('dim', 'database')}     ${databaseLocation(ctx, opts)}`,
    `  ${p('dim', 'agents')}       ${worker.agents}`,
    `  ${p('dim', 'concurrency')}  ${worker.concurrency}`,
    '',
    'Try it in another terminal:',
    '',
    `  ${p('cyan', `agentq submit --agent demo --wait${db}`)}`,
    `  ${p('cyan', `agentq jobs${db}`)}`,
    '',
    p('dim', 'Press Ctrl+C to stop.'),
  ];
  for (const l of lines) line(ctx.io.stdout, l);
}

/** Runs the services until a signal stops them; returns the exit code. */
export async function serve(ctx: Context, opts: ServeOptions): Promise<number> {
  // A bad agents file stops everything before anything starts.
  if (opts.agents) loadAgentsFileOption(ctx, opts.agents);
  return withQueue(
    ctx,
    opts,
    (queue) =>
      withScheduler(ctx, queue, { schedules: opts.schedules }, () =>
        runWorker(ctx, queue, { handlers: opts.handlers, agentsFile: opts.agents, concurrency: opts.concurrency }, (workers) =>
          banner(ctx, opts, workers),
        ),
      ),
    { create: true },
  );
}

export function registerServe(program: Command, ctx: Context): void {
  const cmd = program
    .command('serve')
    .description('run agentq in one process: the scheduler, and a worker with the demo agents (echo, demo) and your --handlers')
    .option('--handlers <module>', 'a .js/.ts module exporting {agentName: handler}, served beside the demo agents')
    .option('--agents <file>', 'a YAML agents file of command agents (format: agentq worker --help)')
    .option('-c, --concurrency <n>', 'jobs run at once (default: 10)', parseInteger(1, 10_000))
    .option('--schedules <file>', 'apply this YAML schedules file at start (the scheduler always runs)');
  setup(cmd, ['agentq serve', 'agentq serve --handlers ./agents.ts --db ./agentq.db', 'agentq serve --schedules tasks.yaml', 'agentq serve --agents examples/agents.yaml']);
  cmd.action(
    action(ctx, async (_opts: unknown, command: Command) => serve(ctx, command.optsWithGlobals<ServeOptions>())),
  );
}
