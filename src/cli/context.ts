/** What every command shares: the io, colours, the database, and error reporting. */
import { existsSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { defaultDatabasePath, parseConnectionString, withoutPassword } from '../connect.ts';
import {
  AgentqError,
  AmbiguousIdError,
  ConflictError,
  NotFoundError,
  PayloadTooLargeError,
  ValidationError,
} from '../errors.ts';
import { Queue } from '../queue.ts';
import { RemoteQueue, type CliQueue } from './remote.ts';
import { CliError, line, painter, type Io, type Painter } from './io.ts';

export interface Context {
  io: Io;
  out: Painter;
  err: Painter;
  /** The command line as given (without `node agentq`), for hints that repeat it. */
  argv: readonly string[];
  /** The exit code the finished command asks for. */
  exitCode: number;
  /** The command being run, for "see: agentq X --help" hints. */
  command: string | undefined;
}

export function createContext(argv: readonly string[], io: Io): Context {
  return {
    io,
    out: painter(io.stdout, io.env),
    err: painter(io.stderr, io.env),
    argv,
    exitCode: 0,
    command: undefined,
  };
}

export interface DbOptions {
  db?: string;
  /** Work through this agentq server's REST API instead of a database. */
  server?: string;
  token?: string;
}

/** The server the command works through (`--server` or AGENTQ_SERVER), if any. */
export function serverOf(ctx: Context, opts: DbOptions): string | undefined {
  return opts.server?.trim() || ctx.io.env.AGENTQ_SERVER?.trim() || undefined;
}

/** The connection string: --db, then AGENTQ_DATABASE_URL, then the default file. */
export function databaseUrl(ctx: Context, opts: DbOptions): string {
  return opts.db?.trim() || ctx.io.env.AGENTQ_DATABASE_URL?.trim() || defaultDatabasePath(ctx.io.env);
}

/** Where the data lives, for people: the file path (or the PostgreSQL URL). */
export function databaseLocation(ctx: Context, opts: DbOptions): string {
  let location: string;
  try {
    location = parseConnectionString(databaseUrl(ctx, opts), ctx.io.env).location;
  } catch {
    location = databaseUrl(ctx, opts);
  }
  return withoutPassword(location);
}

/** `--db X` to repeat in a copy-paste hint, when the database was chosen on the command line (its password left out). */
export function dbFlag(opts: DbOptions): string {
  return opts.db ? ` --db ${shellQuote(withoutPassword(opts.db))}` : '';
}

export function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * Opens the queue, runs `fn`, and closes the queue whatever happens. Only
 * commands that write (`create`) make a new SQLite file; the others refuse a
 * path where there is none, so a mistyped --db is an error, not an empty queue.
 */
export async function withQueue<T>(
  ctx: Context,
  opts: DbOptions,
  fn: (queue: Queue) => Promise<T>,
  { create = false }: { create?: boolean } = {},
): Promise<T> {
  if (serverOf(ctx, opts)) {
    throw new CliError(`agentq ${ctx.command ?? ''} works on a database, not through --server`.replace('  ', ' '), {
      hint: 'run it where the database is reachable, with --db',
      exitCode: 2,
    });
  }
  const url = databaseUrl(ctx, opts);
  if (!create) {
    const target = parseConnectionString(url, ctx.io.env);
    if (target.engine === 'sqlite' && target.location !== ':memory:' && !existsSync(target.location)) {
      throw new CliError(`no agentq database at ${target.location}`, {
        hint: opts.db
          ? 'check the --db path, or create it by submitting a job or with: agentq migrate' + dbFlag(opts)
          : 'submit a job, start agentq serve, or run agentq migrate to create it (or choose one with --db)',
      });
    }
  }
  const queue = await Queue.open(url);
  try {
    return await fn(queue);
  } finally {
    await queue.close();
  }
}

/**
 * For the job, event and schedule commands: through the REST API with
 * --server URL --token T (or AGENTQ_SERVER / AGENTQ_TOKEN), else on the database.
 */
export async function withApi<T>(
  ctx: Context,
  opts: DbOptions,
  fn: (queue: CliQueue) => Promise<T>,
  options: { create?: boolean } = {},
): Promise<T> {
  const server = serverOf(ctx, opts);
  if (!server) return withQueue(ctx, opts, fn, options);
  if (!/^https?:\/\/[^\s/]+/.test(server)) throw new CliError(`--server: ${server} is not an http(s) URL`, { hint: 'e.g. --server http://127.0.0.1:8080', exitCode: 2 });
  const token = opts.token?.trim() || ctx.io.env.AGENTQ_TOKEN?.trim();
  if (!token) throw new CliError('--server needs a token: --token T or AGENTQ_TOKEN', { hint: 'make one with: agentq users token NAME', exitCode: 2 });
  const remote = new RemoteQueue(server, token);
  try {
    return await fn(remote);
  } finally {
    remote.close();
  }
}

/** The global option of every command. */
export function dbOption(): Option {
  return new Option('--db <url>', 'database: a SQLite file path, a sqlite: URL, or a postgres:// URL (env: AGENTQ_DATABASE_URL)');
}

export function jsonOption(what = 'print machine-readable JSON on stdout'): Option {
  return new Option('--json', what);
}

/** Flags of submit options, for errors that name the library's field. */
const FIELD_FLAGS: Record<string, string> = {
  agent: '--agent',
  agents: '--agent',
  type: '--type',
  types: '--type',
  instructions: '--instructions',
  payload: '--payload',
  metadata: '--metadata',
  tags: '--tag',
  owner: '--owner',
  priority: '--priority',
  maxAttempts: '--max-attempts',
  timeoutMs: '--timeout',
  runAt: '--run-at',
  delayMs: '--delay',
  key: '--key',
  parentId: '--parent',
  dependsOn: '--depends-on',
  rateKey: '--rate-key',
  budget: '--budget-tokens/--budget-usd',
  status: '--status',
  limit: '--limit',
  cursor: '--cursor',
  concurrency: '--concurrency',
  handlers: '--handlers',
  db: '--db',
  olderThanMs: '--days',
  attempts: '--attempts',
  id: 'ID',
};

function flagFor(field: string): string {
  const head = field.split('.')[0];
  return FIELD_FLAGS[head] ?? field;
}

function helpHint(ctx: Context): string {
  return ctx.command ? `see: agentq ${ctx.command} --help` : 'see: agentq --help';
}

function oneLine(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ');
}

/** Turns any error into the one line `agentq: <what is wrong> — <what to do>` and an exit code. */
export function describeError(ctx: Context, error: unknown): { message: string; hint?: string; exitCode: number } {
  if (error instanceof CliError) return { message: error.message, hint: error.hint, exitCode: error.exitCode };
  if (error instanceof CommanderError) {
    const message = oneLine(error.message.replace(/^error:\s*/i, '').replace(/ is invalid\. /, ' is invalid: '));
    return { message, hint: helpHint(ctx), exitCode: 2 };
  }
  if (error instanceof AmbiguousIdError) {
    const matches = (error.details?.matches as string[] | undefined) ?? [];
    const prefix = error.message.split(' ')[2] ?? '';
    const shown = matches.slice(0, 5).join(', ');
    return {
      message: `id prefix ${prefix} is ambiguous: it matches ${shown}${matches.length > 5 ? ' and more' : ''}`,
      hint: 'give more characters of the id',
      exitCode: 2,
    };
  }
  if (error instanceof ValidationError) {
    const flag = flagFor(error.field);
    const detail = error.field && error.message.startsWith(error.field + ': ') ? error.message.slice(error.field.length + 2) : error.message;
    const where = error.field.includes('.') && flag.startsWith('--') ? `${flag} (${error.field})` : flag;
    return { message: error.field ? `${where}: ${detail}` : detail, hint: helpHint(ctx), exitCode: 2 };
  }
  if (error instanceof PayloadTooLargeError) {
    const field = String(error.details?.field ?? 'payload');
    return { message: error.message.replace(field, flagFor(field)), hint: 'make it smaller, or store it elsewhere and pass a reference', exitCode: 2 };
  }
  if (error instanceof NotFoundError) {
    const what = error.message.split(' ')[0];
    const hint = what === 'user' ? 'list users with: agentq users list' : what === 'schedule' ? 'list schedules with: agentq schedules' : 'list jobs with: agentq jobs';
    return { message: error.message, hint, exitCode: 1 };
  }
  if (error instanceof ConflictError) {
    const id = typeof error.details?.id === 'string' ? error.details.id : undefined;
    return { message: error.message, hint: id ? `see it with: agentq info ${id}` : 'see the job with: agentq info ID', exitCode: 1 };
  }
  if (error instanceof AgentqError) return { message: error.message, exitCode: 1 };
  const e = error as NodeJS.ErrnoException;
  if (e && typeof e === 'object' && e.code === 'ERR_SQLITE_ERROR') {
    return { message: `database error: ${e.message}`, hint: 'check the --db path and that the file is an agentq database', exitCode: 1 };
  }
  const message = e instanceof Error ? e.message : String(error);
  return { message: message || 'unexpected error', hint: ctx.io.env.AGENTQ_DEBUG ? undefined : 'run again with AGENTQ_DEBUG=1 for details', exitCode: 1 };
}

export function reportError(ctx: Context, error: unknown): number {
  const { message, hint, exitCode } = describeError(ctx, error);
  line(ctx.io.stderr, `${ctx.err('red', 'agentq:')} ${oneLine(message)}${hint ? ` — ${oneLine(hint)}` : ''}`);
  if (ctx.io.env.AGENTQ_DEBUG && error instanceof Error && error.stack) ctx.io.stderr.write(error.stack + '\n');
  return exitCode;
}

/** Adds an "Examples:" section to a command's help. (`--db` is a global option, shown in every command's help.) */
export function setup(cmd: Command, examples: readonly string[]): Command {
  if (examples.length > 0) {
    cmd.addHelpText('after', `\nExamples:\n${examples.map((e) => `  $ ${e}`).join('\n')}\n`);
  }
  return cmd;
}

/** Wraps an action so its returned exit code (or thrown error) lands in the context. */
export function action<A extends unknown[]>(
  ctx: Context,
  fn: (...args: A) => Promise<number | void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    ctx.exitCode = (await fn(...args)) ?? 0;
  };
}
