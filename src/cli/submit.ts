/** `agentq submit` (alias `create`): submit one job, optionally waiting for it. */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { NotFoundError } from '../errors.ts';
import type { CliQueue } from './remote.ts';
import type { SubmitInput } from '../schema.ts';
import { action, setup, withApi, type Context, type DbOptions } from './context.ts';
import { CliError, line, printJson, usageError } from './io.ts';
import { collect, collectRaw, parseDate, parseDuration, parseInteger, parseJsonValue } from './parse.ts';
import { exitCodeOf, printOutcome, watchJob } from './watch.ts';

interface SubmitOptions extends DbOptions {
  agent: string;
  type?: string;
  instructions?: string;
  payload?: unknown;
  payloadFile?: string;
  priority?: number;
  delay?: number;
  runAt?: Date;
  dependsOn?: string[];
  parent?: string;
  tag?: string[];
  maxAttempts?: number;
  timeout?: number;
  key?: string;
  owner?: string;
  rateKey?: string;
  budgetTokens?: number;
  budgetUsd?: number;
  wait?: boolean;
  json?: boolean;
}

async function readStdin(ctx: Context): Promise<string> {
  const stdin = ctx.io.stdin;
  if (!stdin) throw usageError('--payload-file -: there is no standard input to read', 'pass a file path instead');
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

async function readPayloadFile(ctx: Context, file: string): Promise<unknown> {
  let text: string;
  try {
    text = file === '-' ? await readStdin(ctx) : await readFile(resolve(ctx.io.cwd ?? process.cwd(), file), 'utf8');
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw usageError(`--payload-file: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, 'check the path');
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw usageError(`--payload-file: ${file === '-' ? 'standard input' : file} is not valid JSON (${(error as Error).message})`, 'fix the JSON in it');
  }
}

/** Resolves an id prefix given to a flag, naming the flag when there is no such job. */
async function resolveFlagId(queue: CliQueue, flag: string, id: string): Promise<string> {
  try {
    return await queue.resolveId(id);
  } catch (error) {
    if (error instanceof NotFoundError) {
      throw new CliError(`${flag}: job ${id} not found`, { hint: 'list jobs with: agentq jobs', exitCode: 1 });
    }
    throw error;
  }
}

function parsePositiveNumber(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number, e.g. 2.50');
  return n;
}

export function registerSubmit(program: Command, ctx: Context): void {
  const cmd = program
    .command('submit')
    .alias('create')
    .description('submit a job for an agent; prints its id')
    .requiredOption('-a, --agent <name>', 'the agent that runs the job (required)')
    .option('-t, --type <type>', 'the kind of job, when an agent has several (default: "default")')
    .option('-q, --instructions <text>', 'what to do, in words (a prompt)')
    .addOption(new Option('--payload <json>', 'input data as JSON').argParser(parseJsonValue).conflicts('payloadFile'))
    .option('--payload-file <file>', 'read the payload (JSON) from a file; - reads standard input')
    .option('--priority <n>', 'higher runs first (default: 0)', parseInteger(-1_000_000, 1_000_000))
    .addOption(new Option('--delay <duration>', 'run no sooner than this from now: 30s, 5m, 1h, 2d').argParser(parseDuration).conflicts('runAt'))
    .option('--run-at <time>', 'run no sooner than this time (ISO 8601)', parseDate)
    .option('--depends-on <id...>', 'run only after these jobs completed (an id prefix is enough; repeatable)', collect)
    .option('--parent <id>', 'the job that delegated this one')
    .option('--tag <tag>', 'a label to filter by (repeatable)', collectRaw)
    .option('--max-attempts <n>', 'runs before it fails for good (default: 3)', parseInteger(1, 1000))
    .option('--timeout <duration>', 'abort an attempt that runs longer than this: 30s, 10m', parseDuration)
    .option('--key <key>', 'idempotency key: submitting the same key again returns the first job')
    .option('--owner <user>', 'who the job is for')
    .option('--rate-key <key>', "count its starts against this key's rate limit too (e.g. openai:gpt-5)")
    .option('--budget-tokens <n>', 'tokens it and what it delegates may use together', parseInteger(1, Number.MAX_SAFE_INTEGER))
    .option('--budget-usd <amount>', 'dollars it and what it delegates may spend together', parsePositiveNumber)
    .option('--wait', 'wait until the job finished; exit 0 if it completed, 1 if not')
    .option('--json', 'print the job as JSON instead of its id');
  setup(cmd, [
    'agentq submit --agent demo --wait',
    `agentq submit -a researcher -q "Summarise the latest papers on RAG" --payload '{"topic":"rag"}' --tag nightly`,
    'agentq submit -a writer --depends-on 01JF3K --delay 5m --priority 10',
    'echo \'{"url":"https://example.com"}\' | agentq submit -a fetcher --payload-file - --json',
  ]);
  cmd.action(
    action(ctx, async (_opts: SubmitOptions, command: Command) => {
      const opts = command.optsWithGlobals<SubmitOptions>();
      const payload = opts.payloadFile !== undefined ? await readPayloadFile(ctx, opts.payloadFile) : opts.payload;
      return withApi(ctx, opts, async (queue) => {
        const input: SubmitInput = { agent: opts.agent };
        if (opts.type !== undefined) input.type = opts.type;
        if (opts.instructions !== undefined) input.instructions = opts.instructions;
        if (payload !== undefined) input.payload = payload as SubmitInput['payload'];
        if (opts.priority !== undefined) input.priority = opts.priority;
        if (opts.delay !== undefined) input.delayMs = opts.delay;
        if (opts.runAt !== undefined) input.runAt = opts.runAt;
        if (opts.tag !== undefined) input.tags = opts.tag;
        if (opts.maxAttempts !== undefined) input.maxAttempts = opts.maxAttempts;
        if (opts.timeout !== undefined) input.timeoutMs = opts.timeout;
        if (opts.key !== undefined) input.key = opts.key;
        if (opts.owner !== undefined) input.owner = opts.owner;
        if (opts.rateKey !== undefined) input.rateKey = opts.rateKey;
        if (opts.budgetTokens !== undefined || opts.budgetUsd !== undefined) {
          input.budget = {
            ...(opts.budgetTokens !== undefined ? { tokens: opts.budgetTokens } : {}),
            ...(opts.budgetUsd !== undefined ? { costUsd: opts.budgetUsd } : {}),
          };
        }
        if (opts.parent !== undefined) input.parentId = await resolveFlagId(queue, '--parent', opts.parent);
        if (opts.dependsOn !== undefined) {
          input.dependsOn = [];
          for (const id of opts.dependsOn) input.dependsOn.push(await resolveFlagId(queue, '--depends-on', id));
        }
        const job = await queue.submit(input);
        if (!opts.wait) {
          if (opts.json) printJson(ctx.io.stdout, job);
          else line(ctx.io.stdout, job.id);
          return 0;
        }
        if (!opts.json) line(ctx.io.stdout, job.id);
        const live = !opts.json && ctx.io.stderr.isTTY ? ctx.io.stderr : undefined;
        const done = await watchJob(ctx, queue, job.id, { live });
        printOutcome(ctx, done, opts.json === true);
        return exitCodeOf(done);
      }, { create: true });
    }),
  );
}
