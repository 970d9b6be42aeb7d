/** `agentq worker`: runs jobs with handlers from a module (and the built-in demo agents). */
import { hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { AgentsFileError, allCommandsSettled, applyAgentCaps, commandHandlers, loadAgentsFile, type CommandAgent } from '../agents/command.ts';
import { demoHandlers } from '../agents/demo.ts';
import { JobCancelledError, LeaseLostError } from '../errors.ts';
import type { Job } from '../job.ts';
import type { Queue } from '../queue.ts';
import { Worker, type Handler, type Handlers } from '../worker.ts';
import { action, databaseLocation, setup, withQueue, type Context, type DbOptions } from './context.ts';
import { formatDuration, shortId } from './format.ts';
import { line, printJson, usageError } from './io.ts';
import { collect, parseDuration, parseInteger } from './parse.ts';
import { printWorkers } from './status.ts';

export interface RunWorkerOptions {
  /** A module whose exports map agent names to handlers. */
  handlers?: string;
  /** A YAML agents file of command agents. */
  agentsFile?: string;
  agents?: string[];
  types?: string[];
  concurrency?: number;
  prefetch?: number;
  pollInterval?: number;
  lease?: number;
  grace?: number;
  name?: string;
}

function isHandlerEntry(value: unknown): value is Handler | Record<string, Handler> {
  if (typeof value === 'function') return true;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const entries = Object.values(value);
  return entries.length > 0 && entries.every((v) => typeof v === 'function');
}

/** Loads a handlers module: a default export `{agent: handler}`, or named exports (handlers, or `{type: handler}` maps). */
export async function loadHandlers(ctx: Context, modulePath: string): Promise<Handlers> {
  const path = isAbsolute(modulePath) ? modulePath : resolve(ctx.io.cwd ?? process.cwd(), modulePath);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const why = e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes(path) ? 'no such file' : e.message;
    throw usageError(`--handlers: cannot load ${modulePath}: ${why}`, 'give the path to a .js or .ts module that exports handlers');
  }
  const handlers: Handlers = {};
  const def = mod.default;
  if (def !== null && typeof def === 'object' && !Array.isArray(def)) {
    for (const [name, value] of Object.entries(def)) if (isHandlerEntry(value)) handlers[name] = value;
  }
  for (const [name, value] of Object.entries(mod)) {
    if (name !== 'default' && isHandlerEntry(value)) handlers[name] = value;
  }
  if (Object.keys(handlers).length === 0) {
    throw usageError(
      `--handlers: ${modulePath} exports no handlers`,
      'export default { agentName: async (job, ctx) => result }, or export named handler functions',
    );
  }
  return handlers;
}

/** Loads an agents file for `--agents`; a bad file is a usage error (exit 2) naming the agent and field. */
export function loadAgentsFileOption(ctx: Context, file: string): CommandAgent[] {
  try {
    return loadAgentsFile(isAbsolute(file) ? file : resolve(ctx.io.cwd ?? process.cwd(), file));
  } catch (error) {
    if (error instanceof AgentsFileError) {
      throw usageError(`--agents ${file}: ${error.message}`, 'fix the agents file; its format is in: agentq worker --help');
    }
    throw error;
  }
}

/**
 * The workers of one process: agents that set `concurrency` in the agents
 * file get a worker of their own with that many slots; every other agent
 * shares one worker with --concurrency slots.
 */
function planWorkers(
  handlers: Handlers,
  agents: readonly string[],
  commandAgents: readonly CommandAgent[],
): Array<{ handlers: Handlers; agents: string[]; concurrency?: number }> {
  const own = new Map(commandAgents.filter((a) => a.concurrency !== null).map((a) => [a.name, a.concurrency!]));
  const shared = agents.filter((a) => !own.has(a));
  const plans: Array<{ handlers: Handlers; agents: string[]; concurrency?: number }> = [];
  if (shared.length > 0) plans.push({ handlers: Object.fromEntries(shared.map((a) => [a, handlers[a]])), agents: shared });
  for (const agent of agents) {
    if (own.has(agent)) plans.push({ handlers: { [agent]: handlers[agent] }, agents: [agent], concurrency: own.get(agent) });
  }
  return plans;
}

/** `echo, demo (10 slots); summarize (2 slots)` */
export function describeWorkers(workers: readonly Worker[]): { agents: string; concurrency: string } {
  return {
    agents: workers.flatMap((w) => w.agents).join(', '),
    concurrency:
      workers.length === 1
        ? String(workers[0].concurrency)
        : `${workers.reduce((n, w) => n + w.concurrency, 0)} in all: ${workers.map((w) => `${w.agents.join(', ')} ${w.concurrency}`).join('; ')}`,
  };
}

function time(): string {
  const d = new Date();
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

function took(job: Job): string {
  const started = job.startedAt ? Date.parse(job.startedAt) : NaN;
  return Number.isFinite(started) ? formatDuration(Math.max(0, Date.now() - started)) : '?';
}

/** Prints one line per job start and end, as it happens. */
function narrate(ctx: Context, worker: Worker): void {
  const p = ctx.out;
  const say = (symbol: string, job: Job, text: string) =>
    line(ctx.io.stdout, `${p('dim', time())} ${symbol} ${p('bold', shortId(job.id))} ${job.agent}${job.type !== 'default' ? `/${job.type}` : ''} ${text}`);
  worker.on('job:start', (job) => say(p('cyan', '▶'), job, `started (attempt ${job.attempts} of ${job.maxAttempts})`));
  worker.on('job:complete', (job) => say(p('green', '✔'), job, `completed in ${took(job)}`));
  worker.on('job:retry', (job, error, runAt) =>
    say(p('yellow', '↻'), job, `failed: ${error.message} — retry in ${formatDuration(Math.max(0, runAt - worker.queue.clock.now()))}`),
  );
  worker.on('job:fail', (job, error) => say(p('red', '✖'), job, `failed after ${took(job)}: ${error.message}`));
  worker.on('job:dropped', (job, reason) => {
    const why =
      reason instanceof JobCancelledError ? 'cancelled' : reason instanceof LeaseLostError ? 'lost its lease (another worker may run it)' : `dropped: ${reason.message}`;
    say(p('gray', '■'), job, why);
  });
  worker.on('job:release', (job) => say(p('gray', '⏏'), job, 'handed back (worker stopping); it will run again'));
  worker.on('error', (error) => line(ctx.io.stderr, `${ctx.err('red', 'agentq worker:')} ${error instanceof Error ? error.message : String(error)}`));
}

/**
 * Runs a worker until SIGINT/SIGTERM, then stops it gracefully: running jobs
 * get the grace period to finish, the rest are handed back. A second signal
 * exits at once with code 1.
 */
export async function runWorker(
  ctx: Context,
  queue: Queue,
  options: RunWorkerOptions,
  onStarted?: (workers: readonly Worker[]) => void,
): Promise<number> {
  const moduleHandlers = options.handlers ? await loadHandlers(ctx, options.handlers) : {};
  const commandAgents = options.agentsFile ? loadAgentsFileOption(ctx, options.agentsFile) : [];
  const twice = commandAgents.filter((a) => moduleHandlers[a.name]);
  if (twice.length > 0) {
    throw usageError(`agent ${twice[0].name} is in both --handlers ${options.handlers} and --agents ${options.agentsFile}`, 'give each agent one definition');
  }
  const handlers: Handlers = { ...demoHandlers, ...moduleHandlers, ...commandHandlers(commandAgents) };
  const agents = options.agents?.length ? options.agents : Object.keys(handlers);
  const missing = agents.filter((a) => !handlers[a]);
  if (missing.length > 0) {
    throw usageError(
      `--agent: no handler for agent ${missing.join(', ')}`,
      `available: ${Object.keys(handlers).join(', ')}; add yours with --handlers MODULE or --agents FILE`,
    );
  }
  const served = commandAgents.filter((a) => agents.includes(a.name));
  await applyAgentCaps(queue, served);
  const plans = planWorkers(handlers, agents, served);
  const workers = plans.map(
    (plan) =>
      new Worker(queue, {
        handlers: plan.handlers,
        agents: plan.agents,
        types: options.types,
        concurrency: plan.concurrency ?? options.concurrency,
        prefetch: options.prefetch,
        pollIntervalMs: options.pollInterval,
        leaseMs: options.lease,
        shutdownGraceMs: options.grace,
        name: plans.length > 1 && plan.concurrency !== undefined ? `${options.name ?? `${hostname()}:${process.pid}`}/${plan.agents[0]}` : options.name,
      }),
  );
  for (const worker of workers) narrate(ctx, worker);

  let stopRequested: (signal: NodeJS.Signals) => void = () => {};
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => (stopRequested = resolve));
  let signals = 0;
  const off =
    ctx.io.onSignal?.((signal) => {
      signals++;
      if (signals === 1) {
        stopRequested(signal);
        return;
      }
      line(ctx.io.stderr, `agentq: ${signal} again — exiting now; running jobs will be taken back when their leases expire`);
      (ctx.io.exit ?? process.exit)(1);
    }) ?? (() => {});
  try {
    for (const worker of workers) await worker.start();
    onStarted?.(workers);
    const signal = await stopSignal;
    const running = workers.reduce((n, w) => n + w.running.length, 0);
    const grace = formatDuration(options.grace ?? 10_000);
    line(
      ctx.io.stderr,
      `agentq: ${signal} received — stopping${running ? `: waiting up to ${grace} for ${running} running job${running === 1 ? '' : 's'}, then handing back the rest` : ''} (press Ctrl+C again to exit now)`,
    );
    await Promise.all(workers.map((w) => w.stop()));
    // Aborted command agents get their kill grace to end; wait until their processes are gone.
    await allCommandsSettled();
    line(ctx.io.stderr, 'agentq: worker stopped');
    return 0;
  } finally {
    off();
    // Started workers that did not stop (start failed part-way): stop them now.
    await Promise.all(workers.map((w) => w.stop()));
  }
}

interface WorkerCliOptions extends DbOptions, Omit<RunWorkerOptions, 'agents'> {
  /** --agents FILE */
  agents?: string;
  agent?: string[];
  type?: string[];
  status?: boolean;
  json?: boolean;
}

export function registerWorker(program: Command, ctx: Context): void {
  const cmd = program
    .command('worker')
    .description('run jobs: claims jobs of its agents and runs their handlers until stopped (Ctrl+C stops gracefully)')
    .option('-a, --agent <name...>', 'serve only these agents (default: every agent of the handlers, plus echo and demo)', collect)
    .option('-t, --type <type...>', 'serve only these job types', collect)
    .option('--handlers <module>', 'a .js/.ts module exporting {agentName: handler} (default export or named exports)')
    .option('--agents <file>', 'a YAML agents file: command agents (any command-line program) — see below')
    .option('-c, --concurrency <n>', 'jobs run at once (default: 10; agents with their own concurrency: in the agents file get their own slots)', parseInteger(1, 10_000))
    .option(
      '--prefetch <n>',
      'at most this many jobs claimed ahead of free slots, when jobs take milliseconds (default: 16 × concurrency on PostgreSQL, 8 × on SQLite; 0: off)',
      parseInteger(0, 1_000_000),
    )
    .option('--poll-interval <duration>', 'how often to look for work when nothing woke it (default: 1s)', parseDuration)
    .option('--lease <duration>', 'how long a job is held without a heartbeat (default: 30s)', parseDuration)
    .option('--grace <duration>', 'on stop, how long running jobs may take to finish (default: 10s)', parseDuration)
    .option('--name <name>', 'a name for listings (default: host:pid)')
    .option('--status', 'list live workers and exit')
    .option('--json', 'with --status: print the workers as JSON');
  setup(cmd, [
    'agentq worker                                   # the demo agents: echo and demo',
    'agentq worker --handlers ./agents.ts --concurrency 4',
    'agentq worker --agent researcher --handlers ./agents.js --lease 2m',
    'agentq worker --agents examples/agents.yaml',
    'agentq worker --status',
  ]);
  cmd.addHelpText('after', AGENTS_FILE_HELP);
  cmd.action(
    action(ctx, async (_opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<WorkerCliOptions>();
      return withQueue(ctx, opts, async (queue) => {
        if (opts.status) {
          const workers = await queue.workers();
          if (opts.json) printJson(ctx.io.stdout, workers);
          else printWorkers(ctx, workers, opts);
          return 0;
        }
        return runWorker(ctx, queue, { ...opts, agentsFile: opts.agents, agents: opts.agent, types: opts.type }, (workers) => {
          const { agents, concurrency } = describeWorkers(workers);
          line(
            ctx.io.stderr,
            `agentq: worker ${workers[0].name} serving ${agents} (concurrency ${concurrency}) on ${databaseLocation(ctx, opts)}`,
          );
        });
      }, { create: !opts.status });
    }),
  );
}

export const AGENTS_FILE_HELP = `
Agents file (--agents FILE): each agent is a command; the job's data is passed in safely.
  agents:
    research:
      command: [llm, --prompt, "{instructions}"]   # one list element = one argument, never a shell
      stdin: none        # none | json (the job as JSON) | instructions
      cwd: .             # relative to the file (default: the file's folder)
      env: { TOPIC: "{payload.topic}" }
      shell: false       # true: command is a sh script; job data as "$1"... or $AGENTQ_*
      timeout: 10m       # then the process tree is ended
      killGrace: 5s      # SIGTERM, then SIGKILL after this (kill --force: SIGKILL at once)
      concurrency: 2     # slots of its own in this worker
      maxConcurrency: 4  # global cap across all workers
      maxAttempts: 3     # cap on attempts
      result: auto       # auto (JSON if stdout is JSON, else text) | text | json | none
  Placeholders: {instructions} {payload} {payload.a.b} {payload.x?} {metadata.x} {job.id} {job.attempt} ...
  Output lines go to the job log (stdout info, stderr warn); special lines:
    ::progress 40 fetching sources    ::result {"answer": 42}    ::log warn message
`;
