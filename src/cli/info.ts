/** `agentq info ID`: everything about one job. */
import type { Command } from 'commander';
import type { Job } from '../job.ts';
import type { CliQueue } from './remote.ts';
import { action, setup, withApi, type Context, type DbOptions } from './context.ts';
import { dateTime, fields, formatDuration, indent, progressBar, shortId, statusText } from './format.ts';
import { line, printJson } from './io.ts';

interface InfoOptions extends DbOptions {
  json?: boolean;
}

function backoffText(job: Job): string {
  const b = job.backoff;
  const base = `${b.type} from ${formatDuration(b.delayMs)}`;
  return `${base}${b.type === 'exponential' ? ` up to ${formatDuration(b.maxDelayMs)}` : ''}${b.jitter ? ', with jitter' : ''}`;
}

function block(text: string): string {
  return indent(text, '    ');
}

export async function printJob(ctx: Context, queue: CliQueue, job: Job): Promise<void> {
  const p = ctx.out;
  const now = Date.now();
  let status = statusText(p, job.status);
  if (job.status === 'running') status += `  ${progressBar(p, job.progress, 20)}`;
  if (job.progressMessage) status += `  ${p('dim', job.progressMessage)}`;
  const deps: string[] = [];
  for (const id of job.dependsOn) {
    const dep = await queue.store.getJob(id);
    deps.push(`${shortId(id)} (${dep ? statusText(p, dep.status) : 'deleted'})`);
  }
  const children = await queue.list({ parentId: job.id, limit: 1000 });
  const entries: Array<[string, string]> = [
    ['ID', p('bold', job.id)],
    ['Agent', job.agent],
    ['Type', job.type],
    ['Status', status],
    ['Attempts', `${job.attempts} of ${job.maxAttempts}`],
    ['Priority', String(job.priority)],
  ];
  if (job.owner) entries.push(['Owner', job.owner]);
  if (job.tags.length) entries.push(['Tags', job.tags.join(', ')]);
  if (job.key) entries.push(['Key', job.key]);
  if (job.parentId) entries.push(['Parent', job.parentId]);
  if (deps.length) entries.push(['Depends on', deps.join(', ')]);
  if (children.jobs.length) {
    const n = children.jobs.length + (children.nextCursor ? '+' : '');
    entries.push(['Children', `${n} (see: agentq tree ${shortId(job.id)})`]);
  }
  if (job.scheduleId) entries.push(['Schedule', job.scheduleId]);
  entries.push(['Timeout', job.timeoutMs != null ? formatDuration(job.timeoutMs) : 'none']);
  entries.push(['Backoff', backoffText(job)]);
  if (job.workerId) entries.push(['Worker', job.workerId]);
  if (job.status === 'waiting') {
    const w = job.waitingFor;
    const until = w?.deadline != null ? ` (until ${dateTime(new Date(w.deadline).toISOString(), now)})` : '';
    entries.push([
      'Waiting for',
      w == null
        ? 'its children to finish'
        : w.kind === 'event'
          ? `an event ${w.pattern}${w.match ? ` with ${JSON.stringify(w.match)}` : ''}${until}`
          : `approval ${w.approvalId}${until} — agentq approvals show ${shortId(w.approvalId)}`,
    ]);
  }
  entries.push(['Created', dateTime(job.createdAt, now)]);
  if (Date.parse(job.runAt) > Date.parse(job.createdAt) + 1000) {
    entries.push(['Run at', dateTime(job.runAt, now)]);
  }
  if (job.startedAt) entries.push(['Started', dateTime(job.startedAt, now)]);
  if (job.heartbeatAt && job.status === 'running') entries.push(['Heartbeat', dateTime(job.heartbeatAt, now)]);
  if (job.leaseExpiresAt && job.status === 'running') entries.push(['Lease until', dateTime(job.leaseExpiresAt, now)]);
  if (job.finishedAt) entries.push(['Finished', dateTime(job.finishedAt, now)]);
  if (job.durationMs != null) entries.push(['Duration', formatDuration(job.durationMs) + (job.finishedAt ? '' : ' so far')]);
  const usage = await queue.limits.usage(job.id);
  const tokens = (u: { tokens: number; costUsd: number; calls: number }) =>
    `${u.tokens.toLocaleString('en-US')} tokens${u.costUsd ? `, $${u.costUsd.toFixed(4)}` : ''} (${u.calls} call${u.calls === 1 ? '' : 's'})`;
  if (usage.job.calls > 0) entries.push(['Usage', tokens(usage.job)]);
  if (usage.tree.calls > usage.job.calls) entries.push(['Tree usage', tokens(usage.tree)]);
  if (job.budget) {
    const b = [job.budget.tokens != null ? `${job.budget.tokens.toLocaleString('en-US')} tokens` : '', job.budget.costUsd != null ? `$${job.budget.costUsd}` : ''].filter(Boolean).join(', ');
    entries.push(['Budget', `${b} for its tree`]);
  }
  if (job.rateKey) entries.push(['Rate key', job.rateKey]);
  if (job.error) {
    const code = job.error.code ? p('dim', ` (${job.error.code})`) : '';
    entries.push(['Error', p('red', job.error.message) + code]);
  }
  const out = ctx.io.stdout;
  for (const l of fields(p, entries)) line(out, l);
  if (job.instructions) {
    line(out, p('dim', 'Instructions'));
    line(out, block(job.instructions));
  }
  if (job.payload !== null) {
    line(out, p('dim', 'Payload'));
    line(out, block(JSON.stringify(job.payload, null, 2)));
  }
  if (Object.keys(job.metadata).length) {
    line(out, p('dim', 'Metadata'));
    line(out, block(JSON.stringify(job.metadata, null, 2)));
  }
  if (job.result !== null) {
    line(out, p('dim', 'Result'));
    line(out, block(JSON.stringify(job.result, null, 2)));
  }
}

export function registerInfo(program: Command, ctx: Context): void {
  const cmd = program
    .command('info')
    .alias('show')
    .description('show every field of a job')
    .argument('<id>', 'job id, or an unambiguous prefix of one')
    .option('--json', 'print the job as JSON');
  setup(cmd, ['agentq info 01JF3K9Z', 'agentq info 01JF3K9Z --json | jq .result']);
  cmd.action(
    action(ctx, async (id: string, _opts: InfoOptions, command: Command) => {
      const opts = command.optsWithGlobals<InfoOptions>();
      return withApi(ctx, opts, async (queue) => {
        const job = await queue.get(id);
        if (opts.json) printJson(ctx.io.stdout, job);
        else await printJob(ctx, queue, job);
        return 0;
      });
    }),
  );
}
