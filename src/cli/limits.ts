/** `agentq limits list | set | remove`: rate limits across every worker, and usage per agent or owner. */
import { InvalidArgumentError, type Command } from 'commander';
import { action, jsonOption, setup, withApi, type Context, type DbOptions } from './context.ts';
import { formatDuration, relativeTime, table, usageTable } from './format.ts';
import { line, printJson } from './io.ts';
import { parseDuration, parseInteger } from './parse.ts';

interface LimitsOptions extends DbOptions {
  json?: boolean;
  max?: number;
  per?: number;
  by?: 'agent' | 'owner';
}

export function registerLimits(program: Command, ctx: Context): void {
  const limits = program.command('limits').description('rate limits (starts per interval, across all workers) and usage (tokens, cost)');
  setup(limits, ['agentq limits set agent:researcher --max 2 --per 1s', 'agentq limits set openai:gpt-5 --max 500 --per 1m', 'agentq limits usage --by owner']);

  const list = limits.command('list', { isDefault: true }).description('the declared limits and paused keys').addOption(jsonOption());
  setup(list, ['agentq limits', 'agentq limits list --json']);
  list.action(
    action(ctx, async (_o: unknown, command: Command) => {
      const opts = command.optsWithGlobals<LimitsOptions>();
      return withApi(ctx, opts, async (queue) => {
        const all = await queue.limits.rateLimits();
        if (opts.json) {
          printJson(ctx.io.stdout, all);
          return 0;
        }
        if (all.length === 0) {
          line(ctx.io.stdout, 'No rate limits. Declare one with: agentq limits set agent:NAME --max 5 --per 1s');
          return 0;
        }
        const now = Date.now();
        for (const l of table(
          ctx.out,
          [{ header: 'KEY' }, { header: 'LIMIT' }, { header: 'PAUSED' }],
          all.map((r) => [
            r.key,
            r.max != null && r.perMs != null ? `${r.max} per ${formatDuration(r.perMs)}` : ctx.out('dim', 'none'),
            r.pausedUntil && Date.parse(r.pausedUntil) > now ? ctx.out('yellow', `until ${relativeTime(r.pausedUntil)}`) : '',
          ]),
        )) {
          line(ctx.io.stdout, l);
        }
        return 0;
      });
    }),
  );

  const set = limits
    .command('set')
    .argument('<key>', 'agent:NAME for an agent, or a key jobs name with --rate-key (e.g. openai:gpt-5)')
    .description('at most --max starts per --per for a key, held across every worker and machine')
    .requiredOption('--max <n>', 'starts allowed per interval', parseInteger(1, 1_000_000))
    .requiredOption('--per <duration>', 'the interval: 1s, 1m, 1h', parseDuration)
    .addOption(jsonOption());
  setup(set, ['agentq limits set agent:researcher --max 5 --per 1s']);
  set.action(
    action(ctx, async (key: string, _o: unknown, command: Command) => {
      const opts = command.optsWithGlobals<LimitsOptions>();
      return withApi(ctx, opts, async (queue) => {
        await queue.limits.setRateLimit(key, { max: opts.max!, per: opts.per! });
        if (opts.json) printJson(ctx.io.stdout, await queue.limits.rateLimits());
        else line(ctx.io.stdout, `${key}: at most ${opts.max} starts per ${formatDuration(opts.per!)} (workers see it within a second)`);
        return 0;
      }, { create: true });
    }),
  );

  const remove = limits.command('remove').argument('<key>').description('lift a rate limit').addOption(jsonOption());
  setup(remove, ['agentq limits remove agent:researcher']);
  remove.action(
    action(ctx, async (key: string, _o: unknown, command: Command) => {
      const opts = command.optsWithGlobals<LimitsOptions>();
      return withApi(ctx, opts, async (queue) => {
        await queue.limits.setRateLimit(key, null);
        if (opts.json) printJson(ctx.io.stdout, await queue.limits.rateLimits());
        else line(ctx.io.stdout, `${key}: no limit`);
        return 0;
      });
    }),
  );

  const usage = limits
    .command('usage')
    .description('tokens and cost recorded by jobs (ctx.usage), per agent or per owner')
    .option('--by <group>', 'agent (default) or owner', (v: string) => {
      if (v !== 'agent' && v !== 'owner') throw new InvalidArgumentError('expected agent or owner');
      return v;
    })
    .addOption(jsonOption());
  setup(usage, ['agentq limits usage', 'agentq limits usage --by owner --json']);
  usage.action(
    action(ctx, async (_o: unknown, command: Command) => {
      const opts = command.optsWithGlobals<LimitsOptions>();
      return withApi(ctx, opts, async (queue) => {
        const rows = await queue.limits.usageBy(opts.by ?? 'agent');
        if (opts.json) {
          printJson(ctx.io.stdout, rows);
          return 0;
        }
        if (rows.length === 0) {
          line(ctx.io.stdout, 'No usage recorded yet (handlers record it with ctx.usage).');
          return 0;
        }
        for (const l of usageTable(ctx.out, opts.by ?? 'agent', rows)) line(ctx.io.stdout, l);
        return 0;
      });
    }),
  );
}
