/**
 * The MCP tools: their names and parameters (those of the MindRoot job queue's
 * services, plus wait_for_job and get_job_logs), what a model reads about
 * them, and what each does through an McpBackend.
 */
import { z } from 'zod';
import { parseDuration } from '../cli/parse.ts';
import { FINISHED_STATUSES, isFinished, type Job, type Json } from '../job.ts';
import type { SubmitInput } from '../schema.ts';
import { APPROVAL_STATUSES } from '../store/store.ts';
import type { McpBackend } from './backend.ts';
import { ArgumentError, errorMessage, ToolError } from './errors.ts';
import { jobDetail, jobSummary, logLine } from './present.ts';

/** What a running tool may use besides its arguments. */
export interface ToolContext {
  /** Fires when the client cancels the call or the server shuts down. */
  signal: AbortSignal;
  /** Reports progress to the client, when it asked for progress (0–100). */
  progress?: (progress: number, message: string) => Promise<void>;
}

export interface ToolAnnotations {
  readOnlyHint?: boolean;
  destructiveHint?: boolean;
  idempotentHint?: boolean;
  openWorldHint?: boolean;
}

export interface Tool<S extends z.ZodObject = z.ZodObject> {
  name: string;
  title: string;
  description: string;
  schema: S;
  annotations: ToolAnnotations;
  run(backend: McpBackend, args: z.output<S>, ctx: ToolContext): Promise<unknown>;
}

function tool<S extends z.ZodObject>(definition: Tool<S>): Tool {
  return definition as unknown as Tool;
}

// ---- parameter schemas, with messages that read after the parameter's name -------------------

function must(what: string) {
  return (issue: { input?: unknown }) => (issue.input === undefined ? 'is required' : `must be ${what}`);
}

function text(max: number) {
  return z
    .string({ error: must('a string') })
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`);
}

function integer(min: number, max: number) {
  return z
    .number({ error: must('a number') })
    .int(`must be a whole number from ${min} to ${max}`)
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`);
}

function number(min: number, max: number, exclusiveMin = false) {
  const n = z.number({ error: must('a number') });
  return (exclusiveMin ? n.gt(min, `must be more than ${min}`) : n.min(min, `must be at least ${min}`)).max(max, `must be at most ${max}`);
}

const jobId = text(200).describe(
  'The job\'s id, as submit_job or get_jobs gave it; a prefix of it works too, when no other job\'s id starts with it.',
);

const STATUS_WORDS =
  'blocked (waiting for its depends_on jobs), pending (queued, waiting for a worker), running, waiting (paused until jobs it delegated finish), completed, failed, cancelled';

const finishedStatus = z.enum(FINISHED_STATUSES, { error: 'must be completed, failed or cancelled' });

// ---- helpers ------------------------------------------------------------------------------------

const DURATION_HINT = 'must be a number of seconds or a duration such as "30s", "5m", "1h" or "1h30m"';

function delayMs(delay: number | string): number {
  if (typeof delay === 'number') return Math.round(delay * 1000);
  try {
    return parseDuration(delay);
  } catch {
    throw new ArgumentError('delay', DURATION_HINT);
  }
}

/** Full ids for ids or prefixes, naming the one that does not resolve (`depends_on[1]: ...`). */
async function resolveIds(backend: McpBackend, ids: readonly string[], parameter: string): Promise<string[]> {
  const out: string[] = [];
  for (const [i, id] of ids.entries()) {
    try {
      out.push((await backend.get(id)).id);
    } catch (error) {
      throw new ToolError(errorMessage(error, `${parameter}[${i}]`));
    }
  }
  return out;
}

/** `"pending, running"` or `["pending","running"]` → `["pending","running"]`. */
function words(value: string | string[] | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const list = (typeof value === 'string' ? value.split(',') : value).map((w) => w.trim()).filter(Boolean);
  return list.length > 0 ? list : undefined;
}

function isWaitTimeout(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'wait_timeout';
}

/**
 * Waits for a job until `deadline`, in slices when the client follows
 * progress, so that it hears each rise of the job's progress. Resolves with
 * the finished job, or with the unfinished one when the time ran out.
 */
async function waitUntil(backend: McpBackend, job: Job, deadline: number, ctx: ToolContext): Promise<Job> {
  let reported = -1;
  const report = async (current: Job) => {
    if (!ctx.progress || current.progress <= reported) return;
    reported = current.progress;
    await ctx.progress(current.progress, current.progressMessage ?? current.status);
  };
  await report(job);
  const sliceMs = ctx.progress ? 1000 : Infinity;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) return backend.get(job.id);
    try {
      return await backend.wait(job.id, { timeoutMs: Math.min(left, sliceMs), signal: ctx.signal });
    } catch (error) {
      if (!isWaitTimeout(error)) throw error;
    }
    if (ctx.progress) await report(await backend.get(job.id));
  }
}

// ---- the tools ----------------------------------------------------------------------------------

export const TOOLS: readonly Tool[] = [
  tool({
    name: 'submit_job',
    title: 'Submit a job',
    description:
      'Delegate a task to an agent: queues a job that a worker serving that agent picks up and runs in the background. ' +
      'Returns at once with the job\'s id and status (pending; blocked while it waits for its depends_on jobs). ' +
      'Then call wait_for_job to wait for the outcome, or get_job_status to check on it; the agent\'s output is the job\'s result once it has completed.',
    schema: z.strictObject({
      instructions: text(10_000_000).describe('What the agent should do, in words: its task or prompt.'),
      agent_name: text(200).describe(
        'The agent that runs the job, e.g. "researcher". A worker serving this agent has to be running, or the job waits in the queue until one is.',
      ),
      job_type: text(200)
        .optional()
        .describe('A category for the job, when an agent does several kinds of work, e.g. "summarize" (default: "default"). get_jobs can filter by it.'),
      metadata: z
        .record(z.string(), z.unknown(), { error: 'must be a JSON object' })
        .optional()
        .describe('Extra data kept with the job, as a JSON object (e.g. where the request came from). The agent can read it.'),
      payload: z
        .unknown()
        .optional()
        .describe('Input data for the agent, as any JSON value (object, array, string, number).'),
      priority: integer(-1_000_000, 1_000_000)
        .optional()
        .describe('Higher runs first among the jobs waiting for a worker (default: 0).'),
      depends_on: z
        .array(text(200), { error: must('a list of job ids') })
        .max(1000, 'must have at most 1000 jobs')
        .optional()
        .describe(
          'Ids (or unambiguous prefixes) of jobs that must complete before this one starts. If one of them fails or is cancelled, this job is cancelled too.',
        ),
      delay: z
        .union([number(0, 31_536_000), z.string()], { error: DURATION_HINT })
        .optional()
        .describe('Start no sooner than this long from now: seconds as a number (90), or a duration such as "30s", "5m", "1h", "1h30m".'),
    }),
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    async run(backend, a) {
      const input: SubmitInput = { agent: a.agent_name, instructions: a.instructions };
      if (a.job_type !== undefined) input.type = a.job_type;
      if (a.metadata !== undefined) input.metadata = a.metadata as { [key: string]: Json };
      if (a.payload !== undefined) input.payload = a.payload as Json;
      if (a.priority !== undefined) input.priority = a.priority;
      if (a.delay !== undefined) input.delayMs = delayMs(a.delay);
      if (a.depends_on !== undefined) input.dependsOn = await resolveIds(backend, a.depends_on, 'depends_on');
      const job = await backend.submit(input);
      const out: Record<string, unknown> = { job_id: job.id, status: job.status, agent_name: job.agent, job_type: job.type };
      if (input.delayMs) out.run_at = job.runAt;
      if (job.dependsOn.length > 0) out.depends_on = job.dependsOn;
      return out;
    },
  }),

  tool({
    name: 'get_job_status',
    title: 'Get a job\'s status',
    description:
      `The current state of one job: its status — ${STATUS_WORDS} — with progress (0–100) and what it is doing, attempts, times, ` +
      'and its result once completed or its error once failed or cancelled (`finished` says whether it has ended). ' +
      'Answers at once; use wait_for_job to wait until the job has finished.',
    schema: z.strictObject({ job_id: jobId }),
    annotations: { readOnlyHint: true, openWorldHint: false },
    async run(backend, a) {
      return jobDetail(await backend.get(a.job_id));
    },
  }),

  tool({
    name: 'get_jobs',
    title: 'List jobs',
    description:
      'List jobs, newest first, optionally filtered by status, agent, type or user. Each job is a summary (id, agent, type, status, ' +
      'the start of its instructions, times, the error message of a failed job); get_job_status gives one job in full, with its result. ' +
      'When next_cursor is not null there are more jobs: pass it as cursor for the next page.',
    schema: z.strictObject({
      status: z
        .union([z.string(), z.array(z.string())], { error: must('a status or a list of statuses') })
        .optional()
        .describe(
          `Only jobs in this status, or in any of a list of them: ${STATUS_WORDS}. ` +
            'The words queued (= pending), active (= running) and success (= completed) work too.',
        ),
      agent_name: text(200).optional().describe('Only jobs for this agent.'),
      job_type: text(200).optional().describe('Only jobs of this type (see submit_job).'),
      username: text(200).optional().describe('Only jobs of this user (their owner).'),
      limit: integer(1, 200).optional().describe('At most this many jobs (default: 50).'),
      cursor: text(200).optional().describe('The next_cursor of the previous page, for the page after it.'),
    }),
    annotations: { readOnlyHint: true, openWorldHint: false },
    async run(backend, a) {
      const page = await backend.list({
        status: words(a.status),
        agent: a.agent_name,
        type: a.job_type,
        owner: a.username,
        limit: a.limit ?? 50,
        cursor: a.cursor,
      });
      return { count: page.jobs.length, jobs: page.jobs.map((job) => jobSummary(job)), next_cursor: page.nextCursor };
    },
  }),

  tool({
    name: 'cancel_job',
    title: 'Cancel a job',
    description:
      'Cancel a job that has not finished. A blocked, pending or waiting job is cancelled at once; a running one is cancelled and its agent is told to stop. ' +
      'Jobs that depend on it are cancelled too. A job that already completed or failed cannot be cancelled (an error says so); cancelling a cancelled job changes nothing.',
    schema: z.strictObject({
      job_id: jobId,
      reason: text(10_000).optional().describe('Why, in a few words; kept as the job\'s error message (default: "cancelled by request").'),
    }),
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    async run(backend, a) {
      const job = await backend.cancel(a.job_id, a.reason !== undefined ? { reason: a.reason } : {});
      return { success: true, job_id: job.id, status: job.status };
    },
  }),

  tool({
    name: 'cleanup_jobs',
    title: 'Delete old finished jobs',
    description:
      'Delete finished jobs, and their logs, that finished more than older_than_days days ago. Jobs that have not finished are never deleted. ' +
      'With dry_run: true nothing is deleted: it counts and lists what would be.',
    schema: z.strictObject({
      status: z
        .union([finishedStatus, z.array(finishedStatus).min(1, 'must not be empty')], {
          error: 'must be completed, failed or cancelled, or a list of them',
        })
        .optional()
        .describe('Only jobs that ended this way: completed, failed or cancelled, or a list of them (default: all three).'),
      older_than_days: number(0, 36_500)
        .optional()
        .describe('Only jobs that finished more than this many days ago; may be a fraction, 0 means every finished job (default: 30).'),
      dry_run: z.boolean({ error: must('true or false') }).optional().describe('true: delete nothing, only report what would be deleted (default: false).'),
    }),
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    async run(backend, a) {
      const days = a.older_than_days ?? 30;
      const result = await backend.cleanup({
        olderThanMs: Math.round(days * 86_400_000),
        status: a.status === undefined ? undefined : typeof a.status === 'string' ? [a.status] : a.status,
        dryRun: a.dry_run === true,
      });
      if (!result.dryRun) return { removed_count: result.count };
      const shown = result.ids.slice(0, 50);
      return {
        dry_run: true,
        would_remove_count: result.count,
        job_ids: shown,
        ...(result.count > shown.length ? { more: result.count - shown.length } : {}),
      };
    },
  }),

  tool({
    name: 'wait_for_job',
    title: 'Wait for a job',
    description:
      'Wait until a job has finished — completed, failed or cancelled — and return it as get_job_status does, with its result or error. ' +
      'If it is still unfinished after timeout_seconds, this returns its current state with finished: false (not an error); call it again to keep waiting. ' +
      'Many clients end a tool call after about 60 seconds, so wait in steps shorter than that.',
    schema: z.strictObject({
      job_id: jobId,
      timeout_seconds: number(0, 3600, true)
        .optional()
        .describe('Give up waiting after this many seconds and return the job as it is (default: 30).'),
    }),
    annotations: { readOnlyHint: true, openWorldHint: false },
    async run(backend, a, ctx) {
      const timeoutS = a.timeout_seconds ?? 30;
      const deadline = Date.now() + Math.round(timeoutS * 1000);
      const start = await backend.get(a.job_id);
      const job = isFinished(start.status) ? start : await waitUntil(backend, start, deadline, ctx);
      const out = jobDetail(job);
      if (!out.finished) out.note = `still ${job.status} after ${timeoutS} s; call wait_for_job again to keep waiting`;
      return out;
    },
  }),

  tool({
    name: 'get_job_logs',
    title: 'Read a job\'s log',
    description:
      'The log lines a job\'s agent wrote (progress notes, warnings, output), oldest first, with the job\'s status. ' +
      'Each line has an id: pass the last one as after to read the lines written since (more: true means there are more to read now).',
    schema: z.strictObject({
      job_id: jobId,
      limit: integer(1, 500).optional().describe('At most this many lines (default: 100).'),
      after: integer(0, Number.MAX_SAFE_INTEGER)
        .optional()
        .describe('Only lines after the line with this id: the next_after of the previous call (default: 0, from the start).'),
    }),
    annotations: { readOnlyHint: true, openWorldHint: false },
    async run(backend, a) {
      const job = await backend.get(a.job_id);
      const limit = a.limit ?? 100;
      const logs = await backend.logs(job.id, { after: a.after ?? 0, limit: limit + 1 });
      const more = logs.length > limit;
      if (more) logs.length = limit;
      return {
        job_id: job.id,
        status: job.status,
        count: logs.length,
        logs: logs.map(logLine),
        next_after: logs.at(-1)?.id ?? a.after ?? 0,
        more,
      };
    },
  }),

  tool({
    name: 'get_approvals',
    title: 'List approval requests',
    description:
      'Jobs that wait for a person to approve or reject something (a deploy, a payment, a message to send). ' +
      'Each request has an approval_id, a title, details, the job it gates and its status: pending, approved, rejected or expired.',
    schema: z.strictObject({
      status: z
        .enum(APPROVAL_STATUSES, { error: 'must be pending, approved, rejected or expired' })
        .optional()
        .describe('Only requests in this state (default: pending).'),
      job_id: jobId.optional().describe('Only the requests of this job.'),
      limit: integer(1, 200).optional().describe('At most this many (default: 50).'),
    }),
    annotations: { readOnlyHint: true, openWorldHint: false },
    async run(backend, a) {
      if (!backend.approvals) throw new ToolError('approvals are not available here');
      const jobIdFull = a.job_id ? (await backend.get(a.job_id)).id : undefined;
      const list = await backend.approvals.list({ status: [a.status ?? 'pending'], jobId: jobIdFull, limit: a.limit ?? 50 });
      return {
        count: list.length,
        approvals: list.map((x) => ({
          approval_id: x.id,
          status: x.status,
          title: x.title,
          details: x.details,
          job_id: x.jobId,
          agent: x.agent,
          assignee: x.assignee ?? undefined,
          expires_at: x.expiresAt ?? undefined,
          decided_by: x.decidedBy ?? undefined,
          comment: x.comment ?? undefined,
        })),
      };
    },
  }),

  tool({
    name: 'decide_approval',
    title: 'Approve or reject a request',
    description:
      'Decide an approval request: approve (the job goes on) or reject (the job fails with your comment as the reason). ' +
      'A request can be decided once; deciding it again is an error that says how it was decided.',
    schema: z.strictObject({
      approval_id: text(100).describe('The approval_id from get_approvals.'),
      decision: z.enum(['approve', 'reject'], { error: 'must be approve or reject' }).describe('approve or reject.'),
      comment: text(10_000).optional().describe('Why; kept with the decision.'),
    }),
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    async run(backend, a) {
      if (!backend.approvals) throw new ToolError('approvals are not available here');
      const decided = await backend.approvals[a.decision](a.approval_id, { by: 'mcp', comment: a.comment });
      return { success: true, approval_id: decided.id, status: decided.status, job_id: decided.jobId };
    },
  }),
];
