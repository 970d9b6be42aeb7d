/** `agentq jobs`: a page of jobs, newest first, filtered. */
import type { Command } from 'commander';
import type { Job } from '../job.ts';
import type { ListOptions } from '../queue.ts';
import { action, dbFlag, setup, shellQuote, withApi, type Context, type DbOptions } from './context.ts';
import { formatDuration, progressBar, relativeTime, shortId, statusText, table } from './format.ts';
import { line, printJson } from './io.ts';
import { collect, parseInteger } from './parse.ts';

interface JobsOptions extends DbOptions {
  status?: string[];
  agent?: string[];
  type?: string[];
  user?: string[];
  tag?: string;
  parent?: string;
  limit: number;
  cursor?: string;
  json?: boolean;
}

export function jobRows(ctx: Context, jobs: readonly Job[], now = Date.now()): string[] {
  const rows = jobs.map((job) => [
    shortId(job.id),
    job.agent,
    job.type,
    statusText(ctx.out, job.status),
    job.status === 'running' ? progressBar(ctx.out, job.progress) : '',
    relativeTime(job.createdAt, now),
    job.finishedAt && job.durationMs != null
      ? formatDuration(job.durationMs)
      : job.status === 'running' && job.durationMs != null
        ? ctx.out('dim', formatDuration(job.durationMs))
        : job.status === 'pending' && Date.parse(job.runAt) > now + 1000
          ? ctx.out('dim', `runs ${relativeTime(job.runAt, now)}`)
          : '',
  ]);
  return table(
    ctx.out,
    [
      { header: 'ID' },
      { header: 'AGENT' },
      { header: 'TYPE' },
      { header: 'STATUS' },
      { header: 'PROGRESS' },
      { header: 'AGE' },
      { header: 'DURATION' },
    ],
    rows,
  );
}

/** The command line again, with `--cursor` set to the next page. */
function nextPageCommand(argv: readonly string[], cursor: string): string {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--cursor') {
      i++;
      continue;
    }
    if (a.startsWith('--cursor=')) continue;
    args.push(a);
  }
  return ['agentq', ...args.map(shellQuote), '--cursor', cursor].join(' ');
}

export function registerJobs(program: Command, ctx: Context): void {
  const cmd = program
    .command('jobs')
    .alias('ls')
    .description('list jobs, newest first')
    .option('-s, --status <status>', 'only these statuses (repeatable or a comma list; queued, active, success... work too)', collect)
    .option('-a, --agent <name>', 'only these agents (repeatable)', collect)
    .option('-t, --type <type>', 'only these job types (repeatable)', collect)
    .option('-u, --user <owner>', 'only jobs of these owners (repeatable)', collect)
    .option('--tag <tag>', 'only jobs with this tag')
    .option('--parent <id>', 'only the children of this job')
    .option('--limit <n>', 'jobs per page, 1 to 1000', parseInteger(1, 1000), 20)
    .option('--cursor <cursor>', 'the page after this cursor (printed under the previous page)')
    .option('--json', 'print {jobs, nextCursor} as JSON');
  setup(cmd, [
    'agentq jobs',
    'agentq jobs -s running,pending -a researcher',
    'agentq jobs -s failed --limit 100 --json | jq -r ".jobs[].id"',
  ]);
  cmd.action(
    action(ctx, async (_opts: JobsOptions, command: Command) => {
      const opts = command.optsWithGlobals<JobsOptions>();
      return withApi(ctx, opts, async (queue) => {
        const filter: ListOptions = { limit: opts.limit };
        if (opts.status?.length) filter.status = opts.status;
        if (opts.agent?.length) filter.agent = opts.agent;
        if (opts.type?.length) filter.type = opts.type;
        if (opts.user?.length) filter.owner = opts.user;
        if (opts.tag !== undefined) filter.tag = opts.tag;
        if (opts.parent !== undefined) filter.parentId = await queue.resolveId(opts.parent);
        if (opts.cursor !== undefined) filter.cursor = opts.cursor;
        const page = await queue.list(filter);
        if (opts.json) {
          printJson(ctx.io.stdout, page);
          return 0;
        }
        const out = ctx.io.stdout;
        if (page.jobs.length === 0) {
          const filtered = Object.keys(filter).length > 1;
          line(out, filtered ? 'No jobs match.' : `No jobs yet — submit one with: agentq submit --agent demo${dbFlag(opts)}`);
          return 0;
        }
        for (const l of jobRows(ctx, page.jobs)) line(out, l);
        if (page.nextCursor) {
          line(out);
          line(out, ctx.out('dim', `more: ${nextPageCommand(ctx.argv, page.nextCursor)}`));
        }
        return 0;
      });
    }),
  );
}
