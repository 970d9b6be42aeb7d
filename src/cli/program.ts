/**
 * The `agentq` command line: builds the commander program and runs one
 * command line against injected streams, returning the exit code
 * (0 success, 1 failure, 2 bad usage).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { createContext, dbOption, reportError } from './context.ts';
import { registerControl } from './control.ts';
import { registerEvents, registerMonitor } from './events.ts';
import { registerInfo } from './info.ts';
import type { Io } from './io.ts';
import { registerJobs } from './jobs.ts';
import { registerLogs } from './logs.ts';
import { registerMaintenance } from './maintenance.ts';
import { registerMcp } from './mcp.ts';
import { registerServe } from './serve.ts';
import { registerScheduler, registerSchedules } from './schedules.ts';
import { registerStatus } from './status.ts';
import { registerSubmit } from './submit.ts';
import { registerTree } from './tree.ts';
import { registerUsers } from './users.ts';
import { registerApprovals } from './approvals.ts';
import { registerLimits } from './limits.ts';
import { registerWorker } from './worker.ts';

export type { Io, Output } from './io.ts';

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Runs one command line (without `node agentq`) and resolves with its exit code. */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  const ctx = createContext(argv, io);
  const program = new Command('agentq')
    .description('A durable job queue for AI-agent work, on SQLite.')
    .version(version(), '-V, --version', 'print the version')
    .addOption(dbOption())
    .option('--server <url>', 'work through an agentq server instead of a database (env: AGENTQ_SERVER)')
    .option('--token <token>', 'the API token for --server (env: AGENTQ_TOKEN)')
    .helpCommand('help [command]', 'show help for a command')
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      // Usage errors are reported by reportError, as one line.
      outputError: () => {},
      getOutHasColors: () => ctx.out.enabled,
      getErrHasColors: () => ctx.err.enabled,
    });
  program.hook('preSubcommand', (_program, sub) => {
    ctx.command = sub.name();
  });
  program.addHelpText(
    'after',
    `
Examples:
  $ agentq serve                               # a worker with the demo agents
  $ agentq submit --agent demo --wait          # in another terminal
  $ agentq jobs -s running
  $ agentq logs 01JF3K9Z -f

The database is --db, else AGENTQ_DATABASE_URL, else ~/.local/share/agentq/agentq.db.
`,
  );
  registerSubmit(program, ctx);
  registerStatus(program, ctx);
  registerJobs(program, ctx);
  registerInfo(program, ctx);
  registerLogs(program, ctx);
  registerTree(program, ctx);
  registerControl(program, ctx);
  registerMaintenance(program, ctx);
  registerWorker(program, ctx);
  registerServe(program, ctx);
  registerSchedules(program, ctx);
  registerScheduler(program, ctx);
  registerEvents(program, ctx);
  registerMonitor(program, ctx);
  registerUsers(program, ctx);
  registerApprovals(program, ctx);
  registerLimits(program, ctx);
  registerMcp(program, ctx);

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return ctx.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return 0;
      // `agentq` with no command: commander has printed the help on stderr.
      if (error.code === 'commander.help') return 2;
    }
    return reportError(ctx, error);
  }
}
