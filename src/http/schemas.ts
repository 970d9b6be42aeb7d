/**
 * What the REST API takes and gives, as zod schemas: they validate requests
 * and write the OpenAPI document; the client's types are the library's.
 * Submissions reuse the library's own schema, so the API and the library
 * accept exactly the same jobs.
 */
import { z } from 'zod';
import { LOG_LEVELS, STATUSES } from '../job.ts';
import { submitSchema } from '../schema.ts';
import { APPROVAL_STATUSES } from '../store/store.ts';

const json = z.unknown().meta({ description: 'any JSON value' });
const time = z.string().meta({ format: 'date-time' });
const nullableTime = time.nullable();

export const errorSchema = z
  .object({
    error: z.object({
      code: z.string().meta({ description: 'stable, e.g. invalid_input, not_found, conflict, unauthorized' }),
      message: z.string(),
      details: z.record(z.string(), json).optional().meta({ description: 'details.field names the input that is wrong' }),
    }),
  })
  .meta({ id: 'Error' });

export const jobSchema = z
  .object({
    id: z.string(),
    agent: z.string(),
    type: z.string(),
    instructions: z.string(),
    payload: json,
    metadata: z.record(z.string(), json),
    tags: z.array(z.string()),
    owner: z.string().nullable(),
    priority: z.number().int(),
    status: z.enum(STATUSES),
    progress: z.number(),
    progressMessage: z.string().nullable(),
    result: json,
    error: z.object({ message: z.string() }).catchall(json).nullable(),
    attempts: z.number().int(),
    maxAttempts: z.number().int(),
    backoff: z.object({ type: z.enum(['exponential', 'fixed']), delayMs: z.number(), maxDelayMs: z.number(), jitter: z.boolean() }),
    timeoutMs: z.number().int().nullable(),
    runAt: time,
    key: z.string().nullable(),
    parentId: z.string().nullable(),
    dependsOn: z.array(z.string()),
    scheduleId: z.string().nullable(),
    workerId: z.string().nullable(),
    createdAt: time,
    updatedAt: time,
    startedAt: nullableTime,
    finishedAt: nullableTime,
    heartbeatAt: nullableTime,
    leaseExpiresAt: nullableTime,
    waitingFor: z.record(z.string(), json).nullable().meta({ description: 'what a waiting job waits for: an event or an approval' }),
    durationMs: z.number().nullable(),
  })
  .meta({ id: 'Job' });

/** One job, or a batch or graph `{jobs: [...]}` (jobs of a graph name each other by `ref`). */
export const batchSchema = z.strictObject({ jobs: z.array(z.looseObject({ ref: z.string().optional() })).min(1).max(10_000) });
export const submitBodySchema = z.union([submitSchema, batchSchema]);

export const jobPageSchema = z.object({ jobs: z.array(jobSchema), nextCursor: z.string().nullable() }).meta({ id: 'JobPage' });

export const jobsSchema = z.object({ jobs: z.array(jobSchema) });

const many = (what: string) => z.array(z.string().max(200)).max(50).optional().meta({ description: `${what} (repeat or comma-separate)` });

export const listQuerySchema = z.strictObject({
  status: many('statuses, also queued, active, processing, success'),
  agent: many('agents'),
  type: many('job types'),
  owner: many('owners (admins only; a user sees their own jobs)'),
  tag: z.string().max(200).optional(),
  parentId: z.string().max(200).optional(),
  scheduleId: z.string().max(200).optional(),
  idPrefix: z.string().max(26).optional().meta({ description: 'only ids that start with this' }),
  cursor: z.string().max(200).optional().meta({ description: 'the nextCursor of the previous page' }),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  order: z.enum(['asc', 'desc']).optional(),
});

export type ListQuery = Partial<z.output<typeof listQuerySchema>>;

export const cancelBodySchema = z
  .strictObject({ reason: z.string().max(1000).optional(), descendants: z.boolean().optional(), force: z.boolean().optional() })
  .optional();

export const logsQuerySchema = z.strictObject({
  after: z.coerce.number().int().min(0).optional().meta({ description: 'the id of the last line seen' }),
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
});

export const jobEventsQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(10_000).optional().meta({ description: 'at most this many (default 500)' }),
});

export const logSchema = z.object({
  id: z.number().int(),
  jobId: z.string(),
  attempt: z.number().int(),
  at: time,
  level: z.enum(LOG_LEVELS),
  message: z.string(),
  data: json,
});

export const logsSchema = z.object({ logs: z.array(logSchema) });

export interface TreeNode {
  job: z.output<typeof jobSchema>;
  children: TreeNode[];
}
export const treeSchema: z.ZodType<TreeNode> = z
  .object({
    job: jobSchema,
    get children() {
      return z.array(treeSchema);
    },
  })
  .meta({ id: 'JobTree' });

const counts = z.record(z.string(), z.number().int());
export const statsSchema = z.object({
  total: z.number().int(),
  byStatus: counts,
  byAgent: z.record(z.string(), counts),
});

export const throughputQuerySchema = z.strictObject({
  minutes: z.coerce.number().int().min(1).max(1440).optional().meta({ description: 'how many minutes back, this one included (default 60)' }),
});

export const throughputSchema = z
  .object({
    since: z.number().int().meta({ description: "the first minute's start, epoch ms" }),
    minutes: z.array(
      z.object({ at: z.number().int().meta({ description: 'epoch ms' }), completed: z.number().int(), failed: z.number().int(), cancelled: z.number().int() }),
    ),
  })
  .meta({ id: 'Throughput' });

export const workerSchema = z.object({
  id: z.string(),
  name: z.string(),
  host: z.string(),
  pid: z.number().int(),
  agents: z.array(z.string()),
  types: z.array(z.string()).nullable(),
  concurrency: z.number().int(),
  startedAt: time,
  heartbeatAt: time,
  running: z.array(z.string()),
});

export const agentSchema = z.object({
  name: z.string(),
  workers: z.number().int().meta({ description: 'live workers serving it' }),
  concurrency: z.number().int().meta({ description: 'slots those workers give it' }),
  maxConcurrency: z.number().int().nullable().meta({ description: 'the cap across all workers, if any' }),
  jobs: counts,
});

export const eventSchema = z
  .object({
    id: z.number().int(),
    type: z.string(),
    source: z.string(),
    target: z.string().nullable(),
    jobId: z.string().nullable(),
    owner: z.string().nullable(),
    payload: json,
    createdAt: time,
  })
  .meta({ id: 'Event' });

export const eventsQuerySchema = z.strictObject({
  pattern: many('event type patterns, * matches any run of characters: job.*, email.processed'),
  target: z.string().max(200).optional().meta({ description: 'only events for this agent and for everyone' }),
  after: z.coerce.number().int().min(0).optional().meta({ description: 'the id of the last event seen (SSE: or Last-Event-ID)' }),
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
});

export const publishSchema = z.strictObject({
  type: z.string().max(200),
  payload: json.optional(),
  target: z.string().max(200).nullable().optional().meta({ description: 'deliver to one agent; default everyone' }),
  jobId: z.string().max(200).nullable().optional(),
});

const scheduleTemplate = {
  agent: z.string(),
  type: z.string().optional(),
  instructions: z.string().optional(),
  payload: json.optional(),
  metadata: z.record(z.string(), json).optional(),
  tags: z.array(z.string()).optional(),
  owner: z.string().nullable().optional(),
  priority: z.number().int().optional(),
  maxAttempts: z.number().int().optional(),
  timeoutMs: z.number().int().nullable().optional(),
};

export const scheduleInputSchema = z
  .looseObject({
    name: z.string(),
    description: z.string().nullable().optional(),
    cron: z.string().optional().meta({ description: '5 or 6 fields' }),
    interval: z.string().optional().meta({ description: '30 seconds, 5 minutes, 1 hour, 2 days, 1 week' }),
    timezone: z.string().optional(),
    enabled: z.boolean().optional(),
    overlap: z.enum(['allow', 'skip']).optional(),
    ...scheduleTemplate,
  })
  .meta({ description: 'checked in full by the schedule rules; unknown fields are refused' });

export const schedulePatchSchema = z.looseObject({}).meta({ description: 'the fields of a schedule to change' });

export const scheduleSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    cron: z.string().nullable(),
    interval: z.string().nullable(),
    timezone: z.string(),
    enabled: z.boolean(),
    overlap: z.enum(['allow', 'skip']),
    nextRunAt: nullableTime,
    lastRunAt: nullableTime,
    lastJobId: z.string().nullable(),
    lastJobStatus: z.enum(STATUSES).nullable(),
    createdAt: time,
    updatedAt: time,
  })
  .catchall(json)
  .meta({ id: 'Schedule' });

export const executionsQuerySchema = listQuerySchema.pick({ status: true, cursor: true, limit: true, order: true });

export const hungQuerySchema = z.strictObject({
  timeoutMs: z.coerce.number().int().min(0).optional().meta({ description: 'silent for longer than this' }),
});

export const cleanupSchema = z.strictObject({
  olderThanMs: z.number().min(0).optional(),
  status: z.array(z.string().max(50)).max(10).optional(),
  dryRun: z.boolean().optional(),
});

export const cleanupResultSchema = z.object({ dryRun: z.boolean(), count: z.number().int(), ids: z.array(z.string()) });

export const applySchema = z.strictObject({
  text: z.string().max(1_000_000).meta({ description: 'the YAML file' }),
  prune: z.boolean().optional(),
  dryRun: z.boolean().optional(),
});

export const applyResultSchema = z.object({
  dryRun: z.boolean(),
  created: z.array(z.string()),
  updated: z.array(z.string()),
  unchanged: z.array(z.string()),
  removed: z.array(z.string()),
  changes: z.record(z.string(), z.array(z.string())),
});

export const approvalSchema = z
  .object({
    id: z.string(),
    jobId: z.string(),
    owner: z.string().nullable(),
    agent: z.string(),
    title: z.string(),
    details: json,
    assignee: z.string().nullable(),
    status: z.enum(APPROVAL_STATUSES),
    comment: z.string().nullable(),
    decidedBy: z.string().nullable(),
    decidedAt: nullableTime,
    expiresAt: nullableTime,
    createdAt: time,
  })
  .meta({ id: 'Approval' });

export const approvalsQuerySchema = z.strictObject({
  status: z.array(z.enum(APPROVAL_STATUSES)).max(APPROVAL_STATUSES.length).optional().meta({ description: 'pending, approved, rejected, expired' }),
  jobId: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});

export const decisionSchema = z.strictObject({ comment: z.string().max(10_000).optional() }).optional();

const usageTotals = z.object({
  calls: z.number().int(),
  inputTokens: z.number().int(),
  outputTokens: z.number().int(),
  tokens: z.number().int(),
  costUsd: z.number(),
});

export const jobUsageSchema = z.object({
  job: usageTotals.meta({ description: 'what this job used' }),
  tree: usageTotals.meta({ description: 'what it and every descendant used' }),
  budget: z.object({ tokens: z.number().optional(), costUsd: z.number().optional() }).nullable(),
  remaining: z.object({ tokens: z.number().nullable(), costUsd: z.number().nullable() }).meta({ description: 'left of every budget that applies (its own and its ancestors\')' }),
});

export const usageQuerySchema = z.strictObject({ groupBy: z.enum(['agent', 'owner']).optional() });
export const usageBySchema = z.object({ usage: z.array(usageTotals.extend({ name: z.string().nullable() })) });

export const rateLimitSchema = z.object({
  key: z.string(),
  max: z.number().int().nullable(),
  perMs: z.number().int().nullable(),
  pausedUntil: nullableTime,
});
export const rateLimitBodySchema = z.strictObject({
  max: z.number().int().min(1).max(1_000_000),
  per: z.union([z.number().int().positive(), z.string().max(20)]).meta({ description: 'ms, or 1s, 1m, 1h' }),
});

export const userSchema = z.object({ name: z.string(), role: z.enum(['admin', 'user']), createdAt: time, tokens: z.number().int() }).meta({ id: 'User' });
export const newUserSchema = z.strictObject({ name: z.string().max(100), admin: z.boolean().optional(), token: z.boolean().optional().meta({ description: 'make a first token (default: true)' }) });
export const issuedTokenSchema = z.object({ user: z.string(), token: z.string().meta({ description: 'shown this once; only its hash is kept' }), tokenId: z.string() });
export const revokeSchema = z.strictObject({ tokenId: z.string().max(100).optional() }).optional();
