/**
 * `agentq serve`: everything in one process — the REST API, the scheduler,
 * and (unless --no-worker) a worker with the demo agents and --handlers /
 * --agents. On first start with no users it adds an admin and prints the
 * token once.
 */
import type { Command } from 'commander';
import { startHttpServer, type HttpServer } from '../http/node.ts';
import type { Queue } from '../queue.ts';
import type { Worker } from '../worker.ts';
import { action, databaseLocation, dbFlag, setup, withQueue, type Context, type DbOptions } from './context.ts';
import { CliError, line } from './io.ts';
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
  host?: string;
  port?: number;
  /** false with --no-worker: API and scheduler only. */
  worker?: boolean;
}

function banner(ctx: Context, opts: ServeOptions, workers: readonly Worker[], http: HttpServer): void {
  const p = ctx.out;
  const db = dbFlag(opts);
  const worker = describeWorkers(workers);
  const lines = [
    `${p('bold', 'agentq')} is running`,
    '',
    `  ${p('dim', 'dashboard')}    ${http.url}/  ${p('dim', '(sign in with an API token)')}`,
    `  ${p('dim', 'api')}          ${http.url}/api/v1  ${p('dim', `(OpenAPI: ${http.url}/api/v1/openapi.json)`)}`,
    `  ${p('dim', 'database')}     ${databaseLocation(ctx, opts)}`,
    ...(workers.length
      ? [`  ${p('dim', 'agents')}       ${worker.agents}`, `  ${p('dim', 'concurrency')}  ${worker.concurrency}`]
      : [`  ${p('dim', 'worker')}       none (--no-worker): run agentq worker elsewhere`]),
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

/** On first start, with no users: an admin, whose token is printed this once. */
async function firstAdmin(ctx: Context, queue: Queue): Promise<void> {
  if ((await queue.users.list()).length > 0) return;
  let user;
  try {
    user = await queue.users.add('admin', { admin: true });
  } catch {
    return; // another process made one at the same moment
  }
  const { token } = await queue.users.issueToken(user.name);
  const p = ctx.out;
  for (const l of [
    `${p('yellow', 'First start:')} added the admin user ${p('bold', 'admin')}. Its API token, shown this once:`,
    '',
    `  ${p('bold', token)}`,
    '',
    p('dim', `Keep it safe (only its hash is stored). More: agentq users add NAME, agentq users token NAME`),
    '',
  ]) {
    line(ctx.io.stdout, l);
  }
}

/** Resolves with the first SIGINT/SIGTERM. */
function untilSignal(ctx: Context): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const off = ctx.io.onSignal?.((signal) => {
      off?.();
      resolve(signal);
    });
  });
}

/** Runs the services until a signal stops them; returns the exit code. */
export async function serve(ctx: Context, opts: ServeOptions): Promise<number> {
  // A bad agents file stops everything before anything starts.
  if (opts.agents) loadAgentsFileOption(ctx, opts.agents);
  const port = opts.port ?? (ctx.io.env.AGENTQ_PORT ? Number(ctx.io.env.AGENTQ_PORT) : 8080);
  const host = opts.host ?? ctx.io.env.AGENTQ_HOST ?? '127.0.0.1';
  return withQueue(
    ctx,
    opts,
    async (queue) => {
      await firstAdmin(ctx, queue);
      let http: HttpServer;
      try {
        http = await startHttpServer(queue, { host, port, dashboard: true });
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE') throw new CliError(`port ${port} on ${host} is in use`, { hint: 'choose another with --port N (0 picks a free one)' });
        if (code === 'EADDRNOTAVAIL') throw new CliError(`cannot listen on ${host}: no such address here`, { hint: 'use --host 127.0.0.1, or 0.0.0.0 for every interface' });
        throw error;
      }
      try {
        return await withScheduler(ctx, queue, { schedules: opts.schedules }, async () => {
          if (opts.worker === false) {
            banner(ctx, opts, [], http);
            const signal = await untilSignal(ctx);
            line(ctx.io.stderr, `agentq: ${signal} received — stopping`);
            return 0;
          }
          return runWorker(ctx, queue, { handlers: opts.handlers, agentsFile: opts.agents, concurrency: opts.concurrency }, (workers) =>
            banner(ctx, opts, workers, http),
          );
        });
      } finally {
        await http.close();
      }
    },
    { create: true },
  );
}

export function registerServe(program: Command, ctx: Context): void {
  const cmd = program
    .command('serve')
    .description('run agentq in one process: the REST API, the scheduler, and a worker with the demo agents (echo, demo) and your --handlers')
    .option('--handlers <module>', 'a .js/.ts module exporting {agentName: handler}, served beside the demo agents')
    .option('--agents <file>', 'a YAML agents file of command agents (format: agentq worker --help)')
    .option('-c, --concurrency <n>', 'jobs run at once (default: 10)', parseInteger(1, 10_000))
    .option('--schedules <file>', 'apply this YAML schedules file at start (the scheduler always runs)')
    .option('--host <address>', 'listen on this address (default: 127.0.0.1, this machine only; env: AGENTQ_HOST)')
    .option('--port <n>', 'listen on this port (default: 8080; 0 picks a free one; env: AGENTQ_PORT)', parseInteger(0, 65_535))
    .option('--no-worker', 'run no worker here: only the API and the scheduler');
  setup(cmd, ['agentq serve', 'agentq serve --port 9000 --host 0.0.0.0', 'agentq serve --no-worker --db postgres://localhost/agentq', 'agentq serve --handlers ./agents.ts --db ./agentq.db', 'agentq serve --schedules tasks.yaml', 'agentq serve --agents examples/agents.yaml']);
  cmd.action(
    action(ctx, async (_opts: unknown, command: Command) => serve(ctx, command.optsWithGlobals<ServeOptions>())),
  );
}
