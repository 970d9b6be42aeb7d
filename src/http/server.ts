/**
 * The REST API under /api/v1, with /healthz and /metrics at the root.
 *
 * Every route is declared once in the route table (routes.ts): its schemas
 * validate the request and write /api/v1/openapi.json. Who may see what:
 * a user sees and acts on their own jobs only, and gets 404 for anyone
 * else's (as if it did not exist); an admin sees all. Errors are
 * `{error: {code, message, details}}` with the status the error carries.
 */
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { compilePattern } from '../events.ts';
import { AgentqError, AmbiguousIdError, NotFoundError, ValidationError } from '../errors.ts';
import type { Job } from '../job.ts';
import type { Queue, JobTree, ListOptions } from '../queue.ts';
import { parseOrThrow, type SubmitInput, type GraphJobInput } from '../schema.ts';
import type { Principal } from '../users.ts';
import { Metrics } from './metrics.ts';
import { readJson, Routes, UnsupportedMediaTypeError, type Access, type Env } from './routes.ts';
import * as S from './schemas.ts';

export interface ApiOptions {
  /** Largest request body read, in bytes; larger ones get 413 before they are read whole. (Default: 2 × the payload limit) */
  maxBodyBytes?: number;
  /** A name for the OpenAPI document's version. */
  version?: string;
  /** Reads a token from a cookie too (the dashboard's sign-in), when given its name. */
  cookieName?: string;
}

export interface Api {
  app: Hono<Env>;
  openapi: Record<string, unknown>;
  metrics: Metrics;
  /** Stops what the API runs in the background (SSE streams, metric counters). */
  close(): void;
}

function fail(code: string, status: number, message: string, details?: Record<string, unknown>): never {
  throw new AgentqError(code, status, message, details);
}

function errorBody(error: AgentqError | { code: string; message: string; details?: unknown }) {
  return { error: { code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) } };
}

/** The value of a cookie, or null. */
export function readCookie(c: Context, name: string): string | null {
  const cookie = c.req.header('cookie') ?? '';
  for (const part of cookie.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) {
      try {
        return decodeURIComponent(v.join('='));
      } catch {
        return null;
      }
    }
  }
  return null;
}

/** The token of a request and where it came from: the Authorization header, else the cookie. */
function credentials(c: Context, cookieName?: string): { token: string; cookie: boolean } | null {
  const header = c.req.header('authorization');
  if (header != null) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) fail('unauthorized', 401, 'the Authorization header must be: Bearer <token>');
    return { token: m[1], cookie: false };
  }
  const token = cookieName ? readCookie(c, cookieName) : null;
  return token ? { token, cookie: true } : null;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Whether a request comes from a page of this server. A browser that sends
 * Sec-Fetch-Site (which pages cannot set) is taken at its word, so the check
 * holds behind a proxy that rewrites Host. Without it, Origin must name this
 * host. Without either, it does not.
 */
export function sameOrigin(c: Context): boolean {
  const site = c.req.header('sec-fetch-site');
  if (site != null) return site === 'same-origin';
  const origin = c.req.header('origin');
  if (origin != null) {
    let host: string;
    try {
      host = new URL(origin).host;
    } catch {
      return false; // "null" and anything else that is not a URL
    }
    return host !== '' && host.toLowerCase() === (c.req.header('host') ?? '').toLowerCase();
  }
  return false;
}

/** Refuses a state change authenticated by a cookie unless it comes from this server's own pages. */
export function checkCrossSite(c: Context): void {
  if (SAFE_METHODS.has(c.req.method)) return;
  if (!sameOrigin(c)) fail('forbidden', 403, 'cross-site request refused: a request signed in by cookie must come from this server\'s pages (or send Authorization: Bearer)');
}

/** A body that may be left out (cancel, revoke, decisions): validated when one was sent. */
async function optionalBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S> | undefined> {
  const sent = (c.req.header('content-length') ?? '0') !== '0' || c.req.header('transfer-encoding') != null;
  return sent ? parseOrThrow(schema, await readJson(c)) : undefined;
}

export function createApi(queue: Queue, options: ApiOptions = {}): Api {
  const app = new Hono<Env>();
  const metrics = new Metrics(queue);
  const streams = new Set<() => void>();

  app.onError((error, c) => {
    if (error instanceof AgentqError) return c.json(errorBody(error), error.status as 400);
    if (error instanceof UnsupportedMediaTypeError) return c.json(errorBody(error), 415);
    if (error instanceof HTTPException) {
      return c.json(errorBody({ code: error.status === 413 ? 'payload_too_large' : 'bad_request', message: error.message }), error.status);
    }
    console.error('agentq api:', error);
    return c.json(errorBody({ code: 'internal', message: 'internal error: the request was not carried out' }), 500);
  });
  app.notFound((c) => c.json(errorBody({ code: 'not_found', message: `no route ${c.req.method} ${c.req.path}` }), 404));

  const maxBody = options.maxBodyBytes ?? queue.maxPayloadBytes * 2 + 64 * 1024;
  app.use(
    '/api/*',
    bodyLimit({
      maxSize: maxBody,
      onError: (c) =>
        c.json(errorBody({ code: 'payload_too_large', message: `the request body is over the limit of ${maxBody} bytes`, details: { limit: maxBody } }), 413),
    }),
  );
  app.use('*', async (c, next) => {
    await next();
    c.header('X-Content-Type-Options', 'nosniff');
    if (!c.res.headers.has('Cache-Control')) c.header('Cache-Control', 'no-store');
  });

  const authorize = async (c: Context<Env>, access: Access): Promise<Principal | null> => {
    if (access === 'public') return null;
    const given = credentials(c, options.cookieName);
    if (given == null) fail('unauthorized', 401, 'sign in: send Authorization: Bearer <token> (make one with: agentq users token NAME)');
    // A cookie goes with every request the browser makes, also those another site starts.
    if (given.cookie) checkCrossSite(c);
    const principal = await queue.users.authenticate(given.token);
    if (!principal) fail('unauthorized', 401, 'the token is unknown or revoked');
    if (access === 'admin' && principal.role !== 'admin') fail('forbidden', 403, 'this needs an admin token');
    c.set('principal', principal);
    return principal;
  };
  const routes = new Routes(app, authorize);

  const isAdmin = (p: Principal | null) => p?.role === 'admin';

  /** A job the caller may see, by id or unambiguous prefix among theirs; 404 otherwise. */
  const visibleJob = (p: Principal | null, idOrPrefix: string): Promise<Job> =>
    queue.get(idOrPrefix, isAdmin(p) ? {} : { owner: p!.user });

  /** What a user submits is theirs; what it refers to must be theirs too (else: unknown, as for any missing id). */
  const ownInput = async (p: Principal | null, input: Record<string, unknown>, field: string, refs: Set<string>) => {
    if (isAdmin(p)) return input.owner === undefined ? { ...input, owner: p!.user } : input;
    if (input.owner != null && input.owner !== p!.user) throw new ValidationError(`${field}owner`, 'only an admin may submit for another user');
    const check = async (id: unknown, name: string) => {
      if (typeof id !== 'string' || refs.has(id)) return;
      try {
        await visibleJob(p, id);
      } catch (error) {
        if (error instanceof NotFoundError || error instanceof AmbiguousIdError) throw new ValidationError(name, `unknown job ${id}`);
        throw error;
      }
    };
    if (input.parentId != null) await check(input.parentId, `${field}parentId`);
    if (Array.isArray(input.dependsOn)) {
      for (const [i, id] of input.dependsOn.entries()) await check(id, `${field}dependsOn.${i}`);
    }
    return { ...input, owner: p!.user };
  };

  /** A user's tree shows their jobs only. */
  const prune = (tree: JobTree, p: Principal | null): JobTree => ({
    job: tree.job,
    children: tree.children.filter((t) => isAdmin(p) || t.job.owner === p!.user).map((t) => prune(t, p)),
  });

  const listFor = async (p: Principal | null, q: S.ListQuery, forced: Partial<ListOptions> = {}) => {
    const options: ListOptions = { ...q, ...forced };
    if (!isAdmin(p)) {
      if (q.owner && q.owner.some((o) => o !== p!.user)) throw new NotFoundError('user', q.owner.find((o) => o !== p!.user)!);
      options.owner = p!.user;
      if (q.parentId) options.parentId = (await visibleJob(p, q.parentId)).id;
    }
    return queue.list(options);
  };

  // ---- jobs ----------------------------------------------------------------------------------

  routes.add(
    {
      method: 'post',
      path: '/api/v1/jobs',
      operationId: 'submitJob',
      summary: 'Submit a job, or a batch or graph of jobs ({jobs: [...]}, jobs naming each other by ref); answers 202',
      tag: 'jobs',
      access: 'user',
      body: S.submitBodySchema,
      // The library checks each job (naming the field); here only the envelope.
      ownValidation: true,
      answers: {
        202: { description: 'accepted: the job (or {jobs}) as stored', schema: S.jobSchema },
        400: { description: 'bad input, naming the field; nothing stored', schema: S.errorSchema },
        401: { description: 'no valid token', schema: S.errorSchema },
        413: { description: 'over the size limit', schema: S.errorSchema },
        415: { description: 'not JSON', schema: S.errorSchema },
      },
    },
    async (c, { principal, body: raw }) => {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        throw new ValidationError('body', 'must be a job object, or {jobs: [...]} for a batch or graph');
      }
      const body = raw as { jobs?: unknown };
      if ('jobs' in body) {
        const batch = parseOrThrow(S.batchSchema, body);
        const refs = new Set(batch.jobs.map((j) => j.ref).filter((r): r is string => typeof r === 'string'));
        const inputs: Record<string, unknown>[] = [];
        for (const [i, job] of batch.jobs.entries()) inputs.push(await ownInput(principal, job, `jobs.${i}.`, refs));
        const jobs = refs.size > 0 ? await queue.submitGraph(inputs as GraphJobInput[]) : await queue.submitMany(inputs as SubmitInput[]);
        metrics.submitted(jobs.length);
        return c.json({ jobs }, 202);
      }
      const job = await queue.submit((await ownInput(principal, body as Record<string, unknown>, '', new Set())) as SubmitInput);
      metrics.submitted(1);
      return c.json(job, 202);
    },
  );

  routes.add(
    {
      method: 'get',
      path: '/api/v1/jobs',
      operationId: 'listJobs',
      summary: 'List jobs, newest first, with filters and keyset pages',
      tag: 'jobs',
      access: 'user',
      query: S.listQuerySchema,
      answers: { 200: { description: 'a page of jobs', schema: S.jobPageSchema }, 400: { description: 'bad filter', schema: S.errorSchema } },
    },
    async (c, { principal, query }) => c.json(await listFor(principal, query)),
  );

  const idParam = { id: 'a job id, or an unambiguous prefix of one' };
  const notFound = { description: 'no such job, or not yours', schema: S.errorSchema };

  routes.add(
    {
      method: 'get',
      path: '/api/v1/jobs/:id',
      operationId: 'getJob',
      summary: 'One job',
      tag: 'jobs',
      access: 'user',
      params: idParam,
      answers: { 200: { description: 'the job', schema: S.jobSchema }, 404: notFound },
    },
    async (c, { principal, params }) => c.json(await visibleJob(principal, params.id)),
  );

  const cancel = async (c: Context<Env>, principal: Principal | null, id: string, body: z.infer<typeof S.cancelBodySchema>) => {
    const job = await visibleJob(principal, id);
    return c.json(await queue.cancel(job.id, body ?? {}));
  };
  routes.add(
    {
      method: 'delete',
      path: '/api/v1/jobs/:id',
      operationId: 'deleteJob',
      summary: 'Cancel a job (a running one through its signal)',
      tag: 'jobs',
      access: 'user',
      params: idParam,
      answers: { 200: { description: 'the job, cancelled', schema: S.jobSchema }, 404: notFound, 409: { description: 'already finished', schema: S.errorSchema } },
    },
    async (c, { principal, params }) => cancel(c, principal, params.id, undefined),
  );
  routes.add(
    {
      method: 'post',
      path: '/api/v1/jobs/:id/cancel',
      operationId: 'cancelJob',
      summary: 'Cancel a job; {descendants: true} also cancels what it delegated, {force: true} kills a command at once',
      tag: 'jobs',
      access: 'user',
      params: idParam,
      answers: { 200: { description: 'the job, cancelled', schema: S.jobSchema }, 404: notFound, 409: { description: 'already finished', schema: S.errorSchema } },
    },
    async (c, { principal, params }) => {
      const body = await optionalBody(c, S.cancelBodySchema);
      return cancel(c, principal, params.id, body);
    },
  );
  routes.add(
    {
      method: 'post',
      path: '/api/v1/jobs/:id/retry',
      operationId: 'retryJob',
      summary: 'Run a failed or cancelled job again',
      tag: 'jobs',
      access: 'user',
      params: idParam,
      answers: { 200: { description: 'the job, pending again', schema: S.jobSchema }, 404: notFound, 409: { description: 'not failed or cancelled', schema: S.errorSchema } },
    },
    async (c, { principal, params }) => {
      const job = await visibleJob(principal, params.id);
      return c.json(await queue.retry(job.id));
    },
  );
  routes.add(
    {
      method: 'get',
      path: '/api/v1/jobs/:id/logs',
      operationId: 'jobLogs',
      summary: 'Log lines of a job, oldest first, after a cursor',
      tag: 'jobs',
      access: 'user',
      params: idParam,
      query: S.logsQuerySchema,
      answers: { 200: { description: 'log lines', schema: S.logsSchema }, 404: notFound },
    },
    async (c, { principal, params, query }) => {
      const job = await visibleJob(principal, params.id);
      return c.json({ logs: await queue.logs(job.id, query) });
    },
  );
  routes.add(
    {
      method: 'get',
      path: '/api/v1/jobs/:id/tree',
      operationId: 'jobTree',
      summary: 'The delegation tree of a job (each job names its dependencies in dependsOn)',
      tag: 'jobs',
      access: 'user',
      params: idParam,
      answers: { 200: { description: 'the tree', schema: S.treeSchema }, 404: notFound },
    },
    async (c, { principal, params }) => {
      const job = await visibleJob(principal, params.id);
      return c.json(prune(await queue.tree(job.id), principal));
    },
  );
  routes.add(
    {
      method: 'get',
      path: '/api/v1/jobs/:id/events',
      operationId: 'jobEvents',
      summary: "A job's events, oldest first (its timeline: created, started, retrying, failed, ...), as far as event retention kept them",
      tag: 'jobs',
      access: 'user',
      params: idParam,
      query: S.jobEventsQuerySchema,
      answers: { 200: { description: 'events', schema: z.object({ events: z.array(S.eventSchema) }) }, 404: notFound },
    },
    async (c, { principal, params, query }) => {
      const job = await visibleJob(principal, params.id);
      return c.json({ events: await queue.jobEvents(job.id, { limit: query.limit }) });
    },
  );
  routes.add(
    {
      method: 'get',
      path: '/api/v1/users/:user/jobs',
      operationId: 'userJobs',
      summary: "One user's jobs (a user may ask for their own)",
      tag: 'jobs',
      access: 'user',
      params: { user: 'a user name' },
      query: S.listQuerySchema.omit({ owner: true }),
      answers: { 200: { description: 'a page of jobs', schema: S.jobPageSchema }, 404: { description: 'no such user, or not you', schema: S.errorSchema } },
    },
    async (c, { principal, params, query }) => {
      if (!isAdmin(principal) && params.user !== principal!.user) throw new NotFoundError('user', params.user);
      return c.json(await listFor(principal, { ...query, owner: [params.user] }));
    },
  );
  routes.add(
    {
      method: 'get',
      path: '/api/v1/stats',
      operationId: 'stats',
      summary: 'Counts per status and per agent (a user: of their own jobs)',
      tag: 'jobs',
      access: 'user',
      answers: { 200: { description: 'counts', schema: S.statsSchema } },
    },
    async (c, { principal }) => c.json(await queue.stats(isAdmin(principal) ? {} : { owner: principal!.user })),
  );

  routes.add(
    {
      method: 'get',
      path: '/api/v1/hung',
      operationId: 'hungJobs',
      summary: 'Running jobs whose last heartbeat is older than timeoutMs (default: the server\'s hung timeout; a user: their own)',
      tag: 'jobs',
      access: 'user',
      query: S.hungQuerySchema,
      answers: { 200: { description: 'hung jobs', schema: S.jobsSchema } },
    },
    async (c, { principal, query }) => {
      const jobs = await queue.hung({ timeoutMs: query.timeoutMs });
      return c.json({ jobs: isAdmin(principal) ? jobs : jobs.filter((j) => j.owner === principal!.user) });
    },
  );
  routes.add(
    {
      method: 'post',
      path: '/api/v1/cleanup',
      operationId: 'cleanup',
      summary: 'Delete finished jobs older than a cut-off, or with dryRun list them (admins)',
      tag: 'jobs',
      access: 'admin',
      body: S.cleanupSchema,
      answers: { 200: { description: 'what went (or would go)', schema: S.cleanupResultSchema } },
    },
    async (c, { body }) => c.json(await queue.cleanup(body)),
  );

  routes.add(
    {
      method: 'get',
      path: '/api/v1/stats/throughput',
      operationId: 'throughput',
      summary: 'Jobs finished per minute (completed, failed, cancelled) over the last minutes, oldest first (a user: their own)',
      tag: 'jobs',
      access: 'user',
      query: S.throughputQuerySchema,
      answers: { 200: { description: 'one entry per minute', schema: S.throughputSchema }, 400: { description: 'bad minutes', schema: S.errorSchema } },
    },
    async (c, { principal, query }) =>
      c.json(await queue.throughput({ minutes: query.minutes ?? 60, ...(isAdmin(principal) ? {} : { owner: principal!.user }) })),
  );

  // ---- usage, budgets and rate limits --------------------------------------------------------

  routes.add(
    {
      method: 'get',
      path: '/api/v1/jobs/:id/usage',
      operationId: 'jobUsage',
      summary: "What a job and its delegation tree used (tokens, cost), its budget and what is left",
      tag: 'usage',
      access: 'user',
      params: idParam,
      answers: { 200: { description: 'usage', schema: S.jobUsageSchema }, 404: notFound },
    },
    async (c, { principal, params }) => {
      const job = await visibleJob(principal, params.id);
      const [usage, left] = await Promise.all([queue.limits.usage(job.id), queue.limits.remaining(job.id)]);
      return c.json({ ...usage, budget: job.budget, remaining: { tokens: left.tokens, costUsd: left.costUsd } });
    },
  );
  routes.add(
    {
      method: 'get',
      path: '/api/v1/usage',
      operationId: 'usage',
      summary: 'Usage summed per agent (default) or per owner (a user: of their own jobs)',
      tag: 'usage',
      access: 'user',
      query: S.usageQuerySchema,
      answers: { 200: { description: 'usage per agent or owner', schema: S.usageBySchema } },
    },
    async (c, { principal, query }) =>
      c.json({ usage: await queue.limits.usageBy(query.groupBy ?? 'agent', isAdmin(principal) ? {} : { owner: principal!.user }) }),
  );
  routes.add(
    {
      method: 'get',
      path: '/api/v1/rate-limits',
      operationId: 'rateLimits',
      summary: 'Declared rate limits and paused keys',
      tag: 'usage',
      access: 'user',
      answers: { 200: { description: 'rate limits', schema: z.object({ rateLimits: z.array(S.rateLimitSchema) }) } },
    },
    async (c) => c.json({ rateLimits: await queue.limits.rateLimits() }),
  );
  routes.add(
    {
      method: 'put',
      path: '/api/v1/rate-limits/:key',
      operationId: 'setRateLimit',
      summary: 'At most max starts per `per` for a key (agent:NAME, or a rateKey jobs name), across all workers (admins)',
      tag: 'usage',
      access: 'admin',
      params: { key: 'the key, e.g. agent:researcher or openai:gpt-5' },
      body: S.rateLimitBodySchema,
      answers: { 200: { description: 'the limits now', schema: z.object({ rateLimits: z.array(S.rateLimitSchema) }) }, 400: { description: 'bad limit', schema: S.errorSchema } },
    },
    async (c, { params, body }) => {
      await queue.limits.setRateLimit(params.key, body);
      return c.json({ rateLimits: await queue.limits.rateLimits() });
    },
  );
  routes.add(
    {
      method: 'delete',
      path: '/api/v1/rate-limits/:key',
      operationId: 'removeRateLimit',
      summary: 'Remove a rate limit (admins)',
      tag: 'usage',
      access: 'admin',
      params: { key: 'the key' },
      answers: { 200: { description: 'the limits now', schema: z.object({ rateLimits: z.array(S.rateLimitSchema) }) } },
    },
    async (c, { params }) => {
      await queue.limits.setRateLimit(params.key, null);
      return c.json({ rateLimits: await queue.limits.rateLimits() });
    },
  );

  // ---- workers and agents --------------------------------------------------------------------

  routes.add(
    {
      method: 'get',
      path: '/api/v1/workers',
      operationId: 'workers',
      summary: 'Live workers: what they serve and run',
      tag: 'workers',
      access: 'user',
      answers: { 200: { description: 'workers', schema: z.object({ workers: z.array(S.workerSchema) }) } },
    },
    async (c, { principal }) => {
      const workers = await queue.workers();
      if (isAdmin(principal)) return c.json({ workers });
      // Which jobs a worker holds is the owners' business.
      const states = await queue.store.jobStates([...new Set(workers.flatMap((w) => w.running))]);
      const mine = new Set(states.filter((s) => s.owner === principal!.user).map((s) => s.id));
      return c.json({ workers: workers.map((w) => ({ ...w, running: w.running.filter((id) => mine.has(id)) })) });
    },
  );
  routes.add(
    {
      method: 'get',
      path: '/api/v1/agents',
      operationId: 'agents',
      summary: 'Known agents: those with jobs, workers or a cap',
      tag: 'workers',
      access: 'user',
      answers: { 200: { description: 'agents', schema: z.object({ agents: z.array(S.agentSchema) }) } },
    },
    async (c, { principal }) => {
      const [workers, stats, caps] = await Promise.all([
        queue.workers(),
        queue.stats(isAdmin(principal) ? {} : { owner: principal!.user }),
        queue.store.agentConcurrency(),
      ]);
      const names = new Set([...Object.keys(stats.byAgent), ...workers.flatMap((w) => w.agents), ...Object.keys(caps)]);
      const agents = [...names].sort().map((name) => {
        const serving = workers.filter((w) => w.agents.includes(name) || w.agents.includes('*'));
        const { total: _t, ...jobs } = stats.byAgent[name] ?? { total: 0 };
        return {
          name,
          workers: serving.length,
          concurrency: serving.reduce((n, w) => n + w.concurrency, 0),
          maxConcurrency: caps[name] ?? null,
          jobs,
        };
      });
      return c.json({ agents });
    },
  );

  // ---- schedules -----------------------------------------------------------------------------

  const scheduleParam = { id: 'a schedule id or name' };
  const scheduleNotFound = { description: 'no such schedule', schema: S.errorSchema };
  routes.add(
    {
      method: 'get',
      path: '/api/v1/schedules',
      operationId: 'listSchedules',
      summary: 'Every schedule, by name',
      tag: 'schedules',
      access: 'user',
      answers: { 200: { description: 'schedules', schema: z.object({ schedules: z.array(S.scheduleSchema) }) } },
    },
    async (c) => c.json({ schedules: await queue.schedules.list() }),
  );
  routes.add(
    {
      method: 'post',
      path: '/api/v1/schedules',
      operationId: 'createSchedule',
      summary: 'Create a schedule (admins)',
      tag: 'schedules',
      access: 'admin',
      body: S.scheduleInputSchema,
      answers: {
        201: { description: 'the schedule', schema: S.scheduleSchema },
        400: { description: 'bad schedule, naming the field', schema: S.errorSchema },
        409: { description: 'the name is taken', schema: S.errorSchema },
      },
    },
    async (c, { body }) => c.json(await queue.schedules.create(body as never), 201),
  );
  routes.add(
    {
      method: 'post',
      path: '/api/v1/schedules/apply',
      operationId: 'applySchedules',
      summary: 'Apply a YAML schedules file: create and update, with prune remove the rest; all or nothing (admins)',
      tag: 'schedules',
      access: 'admin',
      body: S.applySchema,
      answers: { 200: { description: 'what changed', schema: S.applyResultSchema }, 400: { description: 'an error in the file, naming schedule and field', schema: S.errorSchema } },
    },
    async (c, { body }) => c.json(await queue.schedules.applyFile(body.text, { prune: body.prune, dryRun: body.dryRun })),
  );
  routes.add(
    {
      method: 'get',
      path: '/api/v1/schedules/:id',
      operationId: 'getSchedule',
      summary: 'One schedule',
      tag: 'schedules',
      access: 'user',
      params: scheduleParam,
      answers: { 200: { description: 'the schedule', schema: S.scheduleSchema }, 404: scheduleNotFound },
    },
    async (c, { params }) => c.json(await queue.schedules.get(params.id)),
  );
  routes.add(
    {
      method: 'put',
      path: '/api/v1/schedules/:id',
      operationId: 'updateSchedule',
      summary: 'Change a schedule: the fields given (admins)',
      tag: 'schedules',
      access: 'admin',
      params: scheduleParam,
      body: S.schedulePatchSchema,
      answers: { 200: { description: 'the schedule', schema: S.scheduleSchema }, 400: { description: 'bad field', schema: S.errorSchema }, 404: scheduleNotFound },
    },
    async (c, { params, body }) => c.json(await queue.schedules.update(params.id, body as never)),
  );
  routes.add(
    {
      method: 'delete',
      path: '/api/v1/schedules/:id',
      operationId: 'removeSchedule',
      summary: 'Remove a schedule; its jobs stay (admins)',
      tag: 'schedules',
      access: 'admin',
      params: scheduleParam,
      answers: { 200: { description: 'the schedule removed', schema: S.scheduleSchema }, 404: scheduleNotFound },
    },
    async (c, { params }) => c.json(await queue.schedules.remove(params.id)),
  );
  for (const verb of ['enable', 'disable'] as const) {
    routes.add(
      {
        method: 'post',
        path: `/api/v1/schedules/:id/${verb}`,
        operationId: `${verb}Schedule`,
        summary: `${verb === 'enable' ? 'Enable' : 'Disable'} a schedule (admins)`,
        tag: 'schedules',
        access: 'admin',
        params: scheduleParam,
        answers: { 200: { description: 'the schedule', schema: S.scheduleSchema }, 404: scheduleNotFound },
      },
      async (c, { params }) => c.json(await queue.schedules[verb](params.id)),
    );
  }
  routes.add(
    {
      method: 'post',
      path: '/api/v1/schedules/:id/run',
      operationId: 'runSchedule',
      summary: "Submit a schedule's job now (admins); answers 202",
      tag: 'schedules',
      access: 'admin',
      params: scheduleParam,
      answers: { 202: { description: 'the job', schema: S.jobSchema }, 404: scheduleNotFound },
    },
    async (c, { params }) => {
      const job = await queue.schedules.runNow(params.id);
      metrics.submitted(1);
      return c.json(job, 202);
    },
  );
  routes.add(
    {
      method: 'get',
      path: '/api/v1/schedules/:id/executions',
      operationId: 'scheduleExecutions',
      summary: 'The jobs a schedule made, newest first (a user: their own)',
      tag: 'schedules',
      access: 'user',
      params: scheduleParam,
      query: S.executionsQuerySchema,
      answers: { 200: { description: 'a page of jobs', schema: S.jobPageSchema }, 404: scheduleNotFound },
    },
    async (c, { principal, params, query }) => {
      const schedule = await queue.schedules.get(params.id);
      return c.json(await listFor(principal, query, { scheduleId: schedule.id }));
    },
  );

  // ---- users (admins) ------------------------------------------------------------------------

  routes.add(
    {
      method: 'get',
      path: '/api/v1/users',
      operationId: 'listUsers',
      summary: 'Users, their roles and how many tokens they hold (admins)',
      tag: 'users',
      access: 'admin',
      answers: { 200: { description: 'users', schema: z.object({ users: z.array(S.userSchema) }) } },
    },
    async (c) => c.json({ users: await queue.users.list() }),
  );
  routes.add(
    {
      method: 'post',
      path: '/api/v1/users',
      operationId: 'addUser',
      summary: 'Add a user, with a first token shown once (admins)',
      tag: 'users',
      access: 'admin',
      body: S.newUserSchema,
      answers: {
        201: { description: 'the user, and its token', schema: z.object({ user: S.userSchema, token: z.string().optional(), tokenId: z.string().optional() }) },
        409: { description: 'the name is taken', schema: S.errorSchema },
      },
    },
    async (c, { body }) => {
      const user = await queue.users.add(body.name, { admin: body.admin });
      if (body.token === false) return c.json({ user }, 201);
      const issued = await queue.users.issueToken(user.name);
      return c.json({ user: { ...user, tokens: 1 }, token: issued.token, tokenId: issued.id }, 201);
    },
  );
  routes.add(
    {
      method: 'post',
      path: '/api/v1/users/:user/tokens',
      operationId: 'issueToken',
      summary: 'Make a new token for a user; their other tokens keep working (admins)',
      tag: 'users',
      access: 'admin',
      params: { user: 'a user name' },
      answers: { 201: { description: 'the token, shown this once', schema: S.issuedTokenSchema }, 404: { description: 'no such user', schema: S.errorSchema } },
    },
    async (c, { params }) => {
      const issued = await queue.users.issueToken(params.user);
      return c.json({ user: issued.user, token: issued.token, tokenId: issued.id }, 201);
    },
  );
  routes.add(
    {
      method: 'post',
      path: '/api/v1/users/:user/revoke',
      operationId: 'revokeTokens',
      summary: "Revoke a user's tokens: all, or {tokenId} (admins)",
      tag: 'users',
      access: 'admin',
      params: { user: 'a user name' },
      answers: { 200: { description: 'how many were revoked', schema: z.object({ user: z.string(), revoked: z.number().int() }) }, 404: { description: 'no such user', schema: S.errorSchema } },
    },
    async (c, { params }) => {
      const body = await optionalBody(c, S.revokeSchema);
      return c.json({ user: params.user, revoked: await queue.users.revoke(params.user, body?.tokenId) });
    },
  );
  routes.add(
    {
      method: 'delete',
      path: '/api/v1/users/:user',
      operationId: 'removeUser',
      summary: 'Remove a user and revoke their tokens; their jobs stay (admins)',
      tag: 'users',
      access: 'admin',
      params: { user: 'a user name' },
      answers: { 200: { description: 'removed', schema: z.object({ removed: z.string() }) }, 404: { description: 'no such user', schema: S.errorSchema } },
    },
    async (c, { params }) => {
      await queue.users.remove(params.user);
      return c.json({ removed: params.user });
    },
  );

  // ---- approvals -----------------------------------------------------------------------------

  /** An approval the caller may see and decide: of their job, assigned to them, or any for an admin. */
  const visibleApproval = (p: Principal | null, id: string) => queue.approvals.get(id, isAdmin(p) ? {} : { visibleTo: p!.user });
  routes.add(
    {
      method: 'get',
      path: '/api/v1/approvals',
      operationId: 'listApprovals',
      summary: 'Approval requests, newest first (a user: of their jobs, or assigned to them)',
      tag: 'approvals',
      access: 'user',
      query: S.approvalsQuerySchema,
      answers: { 200: { description: 'approvals', schema: z.object({ approvals: z.array(S.approvalSchema) }) } },
    },
    async (c, { principal, query }) => {
      if (query.jobId) await visibleJob(principal, query.jobId);
      const visibleTo = isAdmin(principal) ? undefined : principal!.user;
      return c.json({ approvals: await queue.approvals.list({ status: query.status, jobId: query.jobId, visibleTo, limit: query.limit ?? 100 }) });
    },
  );
  const approvalParam = { id: 'an approval id' };
  const approvalNotFound = { description: 'no such approval, or not yours', schema: S.errorSchema };
  routes.add(
    {
      method: 'get',
      path: '/api/v1/approvals/:id',
      operationId: 'getApproval',
      summary: 'One approval request and its decision',
      tag: 'approvals',
      access: 'user',
      params: approvalParam,
      answers: { 200: { description: 'the approval', schema: S.approvalSchema }, 404: approvalNotFound },
    },
    async (c, { principal, params }) => c.json(await visibleApproval(principal, params.id)),
  );
  for (const verb of ['approve', 'reject'] as const) {
    routes.add(
      {
        method: 'post',
        path: `/api/v1/approvals/:id/${verb}`,
        operationId: `${verb}Approval`,
        summary: verb === 'approve' ? 'Approve: the job resumes' : 'Reject: the job fails with the reason',
        tag: 'approvals',
        access: 'user',
        params: approvalParam,
        answers: {
          200: { description: 'the approval, decided (by the caller)', schema: S.approvalSchema },
          404: approvalNotFound,
          409: { description: 'already decided or expired', schema: S.errorSchema },
        },
      },
      async (c, { principal, params }) => {
        const body = await optionalBody(c, S.decisionSchema);
        const approval = await visibleApproval(principal, params.id);
        return c.json(await queue.approvals[verb](approval.id, { by: principal!.user, comment: body?.comment }));
      },
    );
  }

  // ---- events --------------------------------------------------------------------------------

  routes.add(
    {
      method: 'get',
      path: '/api/v1/events',
      operationId: 'events',
      summary:
        'Events after an id: a JSON page, or with Accept: text/event-stream a Server-Sent Events stream that resumes after Last-Event-ID',
      tag: 'events',
      access: 'user',
      query: S.eventsQuerySchema,
      answers: {
        200: {
          description: 'a page of events and the id to resume after (or an SSE stream: id, event = type, data = the event)',
          schema: z.object({ events: z.array(S.eventSchema), lastId: z.number().int() }),
        },
      },
    },
    async (c, { principal, query }) => {
      const owner = isAdmin(principal) ? undefined : principal!.user;
      const read = { pattern: query.pattern, target: query.target, owner };
      const lastEventId = c.req.header('last-event-id');
      let after = query.after;
      if (lastEventId != null) {
        if (!/^\d{1,15}$/.test(lastEventId)) throw new ValidationError('Last-Event-ID', 'must be an event id');
        after = Number(lastEventId);
      }
      if (!(c.req.header('accept') ?? '').includes('text/event-stream')) {
        const events = await queue.events.list({ ...read, after: after ?? 0, limit: query.limit ?? 100 });
        return c.json({ events, lastId: events.length ? events[events.length - 1].id : (after ?? 0) });
      }
      // Checked before the stream starts, so a bad pattern is a 400, not a broken stream.
      if (query.pattern) for (const p of query.pattern) compilePattern(p);
      const start = after ?? (await queue.events.lastId());
      return streamSSE(c, async (stream) => {
        let closed = false;
        let wake: () => void = () => {};
        const done = new Promise<void>((resolve) => {
          wake = resolve;
        });
        const end = () => {
          closed = true;
          wake();
        };
        streams.add(end);
        stream.onAbort(end);
        const sub = queue.events.subscribe(
          query.pattern ?? '*',
          async (event) => {
            if (closed) return;
            await stream.writeSSE({ id: String(event.id), event: event.type, data: JSON.stringify(event) });
          },
          { ...read, after: start, onError: () => end() },
        );
        const ping = setInterval(() => void stream.write(': ping\n\n').catch(end), 15_000);
        await stream.write(`retry: 1000\n\n`);
        await done;
        clearInterval(ping);
        sub.close();
        streams.delete(end);
      });
    },
  );
  routes.add(
    {
      method: 'get',
      path: '/api/v1/events/last-id',
      operationId: 'lastEventId',
      summary: 'The newest event id a reader can start after without missing one being written (to follow events from now)',
      tag: 'events',
      access: 'user',
      answers: { 200: { description: 'the id', schema: z.object({ lastId: z.number().int() }) } },
    },
    async (c) => c.json({ lastId: await queue.events.lastId() }),
  );
  routes.add(
    {
      method: 'post',
      path: '/api/v1/events',
      operationId: 'publishEvent',
      summary: 'Publish an event, to everyone or to one agent (target)',
      tag: 'events',
      access: 'user',
      body: S.publishSchema,
      answers: { 201: { description: 'the event as stored', schema: S.eventSchema }, 400: { description: 'bad event', schema: S.errorSchema } },
    },
    async (c, { principal, body }) => {
      if (body.jobId != null) await visibleJob(principal, body.jobId);
      const event = await queue.events.publish({ ...body, source: principal!.user, owner: principal!.user } as never);
      return c.json(event, 201);
    },
  );

  // ---- the root: health, metrics, the document -----------------------------------------------

  routes.add(
    {
      method: 'get',
      path: '/healthz',
      operationId: 'health',
      summary: 'Whether the server and its database answer',
      tag: 'server',
      access: 'public',
      answers: { 200: { description: 'up', schema: z.object({ ok: z.boolean(), engine: z.string() }) }, 503: { description: 'the database does not answer', schema: S.errorSchema } },
    },
    async (c) => {
      try {
        await queue.store.lastEventId();
      } catch {
        return c.json(errorBody({ code: 'unavailable', message: 'the database does not answer' }), 503);
      }
      return c.json({ ok: true, engine: queue.store.engine });
    },
  );
  routes.add(
    {
      method: 'get',
      path: '/metrics',
      operationId: 'metrics',
      summary: 'Prometheus metrics (admins): jobs by status and agent, submits, completions, failures, durations, queue latency',
      tag: 'server',
      access: 'admin',
      answers: { 200: { description: 'the Prometheus text format', schema: z.string(), mediaType: 'text/plain' } },
    },
    async (c) => c.body(await metrics.render(), 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }),
  );

  const openapi = routes.openapi({
    title: 'agentq',
    version: options.version ?? '1',
    description: 'A durable job queue, scheduler and event bus for AI-agent work.',
  });
  app.get('/api/v1/openapi.json', (c) => c.json(openapi));

  return {
    app,
    openapi,
    metrics,
    close() {
      for (const end of [...streams]) end();
    },
  };
}

