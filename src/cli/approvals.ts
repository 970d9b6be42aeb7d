/** `agentq approvals list | show | approve | reject`: the people's side of approval gates. */
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import type { Approval } from '../durable.ts';
import { APPROVAL_STATUSES, type ApprovalStatus } from '../store/store.ts';
import { action, jsonOption, setup, withApi, type Context, type DbOptions } from './context.ts';
import { compactJson, dateTime, relativeTime, shortId, table } from './format.ts';
import { line, printJson, usageError } from './io.ts';
import { collect, parseInteger } from './parse.ts';

interface ApprovalsOptions extends DbOptions {
  json?: boolean;
  status?: string[];
  job?: string;
  limit?: number;
  comment?: string;
  by?: string;
  all?: boolean;
}

const STATUSES: readonly string[] = APPROVAL_STATUSES;

function statusText(ctx: Context, s: ApprovalStatus): string {
  const colour = { pending: 'yellow', approved: 'green', rejected: 'red', expired: 'gray' } as const;
  return ctx.out(colour[s], s);
}

function show(ctx: Context, a: Approval): void {
  const out = ctx.io.stdout;
  line(out, `${ctx.out('bold', a.title)}`);
  for (const [k, v] of [
    ['Approval', a.id],
    ['Status', statusText(ctx, a.status)],
    ['Job', `${a.jobId} (${a.agent}${a.owner ? `, owner ${a.owner}` : ''})`],
    ['Assignee', a.assignee ?? ctx.out('dim', 'anyone who may decide')],
    ['Asked', dateTime(a.createdAt)],
    ['Expires', a.expiresAt ? dateTime(a.expiresAt) : ctx.out('dim', 'never')],
    ...(a.decidedAt ? [['Decided', `${dateTime(a.decidedAt)}${a.decidedBy ? ` by ${a.decidedBy}` : ''}`]] : []),
    ...(a.comment ? [['Comment', a.comment]] : []),
  ] as Array<[string, string]>) {
    line(out, `  ${ctx.out('dim', k.padEnd(9))} ${v}`);
  }
  if (a.details !== null) line(out, `  ${ctx.out('dim', 'Details'.padEnd(9))} ${compactJson(a.details, 2000)}`);
}

export function registerApprovals(program: Command, ctx: Context): void {
  const approvals = program.command('approvals').description('approval gates: jobs waiting for a person to say yes or no');
  setup(approvals, ['agentq approvals', 'agentq approvals approve 01JF3K9Z --comment "looks right"', 'agentq approvals reject 01JF3K9Z --comment "not now"']);

  const list = approvals
    .command('list', { isDefault: true })
    .description('approval requests, newest first (default: the pending ones)')
    .option('-s, --status <status...>', `${STATUSES.join(', ')}`, collect)
    .option('-a, --all', 'every status')
    .option('--job <id>', 'only those of this job')
    .option('--limit <n>', 'at most this many (default: 50)', parseInteger(1, 1000))
    .addOption(jsonOption());
  setup(list, ['agentq approvals list', 'agentq approvals list --all --json']);
  list.action(
    action(ctx, async (_o: unknown, command: Command) => {
      const opts = command.optsWithGlobals<ApprovalsOptions>();
      for (const s of opts.status ?? []) if (!STATUSES.includes(s)) throw usageError(`--status: ${s} is not one of ${STATUSES.join(', ')}`);
      const status = (opts.all ? undefined : opts.status?.length ? opts.status : ['pending']) as ApprovalStatus[] | undefined;
      return withApi(ctx, opts, async (queue) => {
        const jobId = opts.job ? await queue.resolveId(opts.job) : undefined;
        const all = await queue.approvals.list({ status, jobId, limit: opts.limit ?? 50 });
        if (opts.json) {
          printJson(ctx.io.stdout, all);
          return 0;
        }
        if (all.length === 0) {
          line(ctx.io.stdout, status?.length === 1 && status[0] === 'pending' ? 'No approval is waiting for a decision.' : 'No approvals.');
          return 0;
        }
        for (const l of table(
          ctx.out,
          [{ header: 'ID' }, { header: 'STATUS' }, { header: 'TITLE' }, { header: 'JOB' }, { header: 'ASSIGNEE' }, { header: 'ASKED' }],
          all.map((a) => [shortId(a.id), statusText(ctx, a.status), a.title.slice(0, 60), `${shortId(a.jobId)} ${a.agent}`, a.assignee ?? '', relativeTime(a.createdAt)]),
        )) {
          line(ctx.io.stdout, l);
        }
        return 0;
      });
    }),
  );

  const showCmd = approvals.command('show').argument('<id>').description('one approval: what is asked, of whom, and the decision').addOption(jsonOption());
  setup(showCmd, ['agentq approvals show 01JF3K9Z']);
  showCmd.action(
    action(ctx, async (id: string, _o: unknown, command: Command) => {
      const opts = command.optsWithGlobals<ApprovalsOptions>();
      return withApi(ctx, opts, async (queue) => {
        const a = await queue.approvals.get(id);
        if (opts.json) printJson(ctx.io.stdout, a);
        else show(ctx, a);
        return 0;
      });
    }),
  );

  for (const verb of ['approve', 'reject'] as const) {
    const cmd = approvals
      .command(verb)
      .argument('<id>', 'an approval id (or an unambiguous prefix)')
      .description(verb === 'approve' ? 'approve: the job goes on' : 'reject: the job fails with your reason')
      .option('--comment <text>', 'why (kept with the decision)')
      .option('--by <name>', 'who decides (default: your login name; through --server: the token\'s user)')
      .addOption(jsonOption());
    setup(cmd, [`agentq approvals ${verb} 01JF3K9Z --comment "${verb === 'approve' ? 'checked the plan' : 'too risky today'}"`]);
    cmd.action(
      action(ctx, async (id: string, _o: unknown, command: Command) => {
        const opts = command.optsWithGlobals<ApprovalsOptions>();
        return withApi(ctx, opts, async (queue) => {
          const by = queue.remote ? undefined : (opts.by ?? safeUser());
          const a = await queue.approvals[verb](id, { by, comment: opts.comment });
          if (opts.json) printJson(ctx.io.stdout, a);
          else line(ctx.io.stdout, `${verb === 'approve' ? 'approved' : 'rejected'} ${shortId(a.id)} "${a.title}" — job ${shortId(a.jobId)} ${verb === 'approve' ? 'resumes' : 'fails'}`);
          return 0;
        });
      }),
    );
  }
}

function safeUser(): string | undefined {
  try {
    return userInfo().username;
  } catch {
    return undefined;
  }
}
