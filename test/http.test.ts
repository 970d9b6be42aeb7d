/** The REST API on a real server on a loopback port, the typed client against it, on both engines. */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, describe, it } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { AgentqClient, ForbiddenError, UnauthorizedError } from '../src/client.ts';
import { ConflictError, NotFoundError, Queue, startHttpServer, ValidationError, Worker, type HttpServer } from '../src/index.ts';
import { forEachEngine, freshQueue, type Engine } from './helpers/engines.ts';
import { waitFor } from './helpers/wait.ts';
import { startWorker } from './helpers/workers.ts';

interface Setup {
  queue: Queue;
  server: HttpServer;
  admin: string;
  alice: string;
  bob: string;
  call: (method: string, path: string, options?: { token?: string | null; body?: unknown; raw?: string; headers?: Record<string, string> }) => Promise<{ status: number; body: any; headers: Headers }>;
}

async function setup(engine: Engine): Promise<Setup> {
  const { queue } = await freshQueue(engine);
  await queue.users.add('root', { admin: true });
  await queue.users.add('alice');
  await queue.users.add('bob');
  const [admin, alice, bob] = await Promise.all(['root', 'alice', 'bob'].map(async (u) => (await queue.users.issueToken(u)).token));
  const server = await startHttpServer(queue, { port: 0 });
  after(() => server.close());
  const call: Setup['call'] = async (method, path, options = {}) => {
    const token = options.token === undefined ? admin : options.token;
    const headers: Record<string, string> = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...options.headers };
    let body: string | undefined = options.raw;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const r = await fetch(`${server.url}${path}`, { method, headers, body });
    const text = await r.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // text/plain
    }
    return { status: r.status, body: parsed, headers: r.headers };
  };
  return { queue, server, admin, alice, bob, call };
}

async function jobCount(queue: Queue): Promise<number> {
  return (await queue.stats()).total;
}

forEachEngine((engine) => {
  describe(`REST API [${engine.name}]`, () => {
    it('serves every endpoint: jobs, logs, tree, stats, workers, agents, schedules, events, health, metrics', async () => {
      const { queue, call, server, admin } = await setup(engine);
      const submitted = await call('POST', '/api/v1/jobs', { body: { agent: 'echo', instructions: 'hi', payload: { n: 1 }, tags: ['t1'] } });
      assert.equal(submitted.status, 202);
      const id = submitted.body.id as string;
      assert.equal(submitted.body.owner, 'root');
      assert.equal((await call('GET', `/api/v1/jobs/${id}`)).body.instructions, 'hi');
      assert.equal((await call('GET', `/api/v1/jobs/${id.slice(0, 20)}`)).body.id, id, 'a prefix works');

      const graph = await call('POST', '/api/v1/jobs', {
        body: { jobs: [{ ref: 'a', agent: 'w' }, { ref: 'b', agent: 'w', dependsOn: ['a'] }] },
      });
      assert.equal(graph.status, 202);
      assert.deepEqual(graph.body.jobs.map((j: { status: string }) => j.status), ['pending', 'blocked']);

      const page = await call('GET', '/api/v1/jobs?status=queued&limit=1');
      assert.equal(page.status, 200);
      assert.equal(page.body.jobs.length, 1);
      assert.ok(page.body.nextCursor);
      const next = await call('GET', `/api/v1/jobs?status=queued&limit=1&cursor=${page.body.nextCursor}`);
      assert.notEqual(next.body.jobs[0].id, page.body.jobs[0].id);
      assert.equal((await call('GET', '/api/v1/jobs?tag=t1')).body.jobs.length, 1);
      assert.equal((await call('GET', '/api/v1/jobs?agent=w&agent=echo')).body.jobs.length, 3);

      // A worker runs the echo job, logging as it goes.
      const worker = new Worker(queue, {
        handlers: {
          echo: async (job, ctx) => {
            await ctx.log('info', 'echoing');
            const child = await ctx.spawn({ agent: 'w', payload: 'child' });
            return { echoed: job.payload, child: child.id };
          },
        },
        pollIntervalMs: 50,
      });
      await worker.start();
      await waitFor(async () => (await call('GET', `/api/v1/jobs/${id}`)).body.status === 'completed', { what: 'the echo job' });
      const logs = await call('GET', `/api/v1/jobs/${id}/logs`);
      assert.deepEqual(logs.body.logs.map((l: { message: string }) => l.message), ['echoing']);
      assert.equal((await call('GET', `/api/v1/jobs/${id}/logs?after=${logs.body.logs[0].id}`)).body.logs.length, 0);
      const tree = await call('GET', `/api/v1/jobs/${id}/tree`);
      assert.equal(tree.body.job.id, id);
      assert.equal(tree.body.children.length, 1);
      const workers = await call('GET', '/api/v1/workers');
      assert.equal(workers.body.workers.length, 1);
      const agents = await call('GET', '/api/v1/agents');
      assert.ok(agents.body.agents.some((a: { name: string; workers: number }) => a.name === 'echo' && a.workers === 1));
      await worker.stop();

      const stats = await call('GET', '/api/v1/stats');
      assert.equal(stats.body.byStatus.completed, 1);
      assert.equal(stats.body.total, 4);

      // Cancel (DELETE and POST), retry, a conflict.
      const cancelled = await call('DELETE', `/api/v1/jobs/${graph.body.jobs[1].id}`);
      assert.equal(cancelled.body.status, 'cancelled');
      assert.equal((await call('POST', `/api/v1/jobs/${graph.body.jobs[1].id}/retry`)).body.status, 'blocked');
      const conflict = await call('POST', `/api/v1/jobs/${id}/retry`);
      assert.equal(conflict.status, 409);
      assert.equal(conflict.body.error.code, 'conflict');
      assert.equal((await call('POST', `/api/v1/jobs/${graph.body.jobs[0].id}/cancel`, { body: { descendants: true } })).body.status, 'cancelled');
      assert.equal((await call('GET', '/api/v1/users/root/jobs')).body.jobs.length, 4);

      // Schedules.
      const created = await call('POST', '/api/v1/schedules', { body: { name: 'nightly', cron: '0 3 * * *', agent: 'w' } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal((await call('POST', '/api/v1/schedules', { body: { name: 'bad', cron: 'nope', agent: 'w' } })).status, 400);
      assert.equal((await call('GET', '/api/v1/schedules')).body.schedules.length, 1);
      assert.equal((await call('POST', '/api/v1/schedules/nightly/disable')).body.enabled, false);
      assert.equal((await call('POST', '/api/v1/schedules/nightly/enable')).body.enabled, true);
      assert.equal((await call('PUT', '/api/v1/schedules/nightly', { body: { cron: '0 4 * * *' } })).body.cron, '0 4 * * *');
      const ran = await call('POST', '/api/v1/schedules/nightly/run');
      assert.equal(ran.status, 202);
      const executions = await call('GET', '/api/v1/schedules/nightly/executions');
      assert.deepEqual(executions.body.jobs.map((j: { id: string }) => j.id), [ran.body.id]);
      assert.equal((await call('GET', '/api/v1/schedules/nightly')).body.lastJobId, ran.body.id);
      assert.equal((await call('DELETE', '/api/v1/schedules/nightly')).status, 200);
      assert.equal((await call('GET', '/api/v1/schedules/nightly')).status, 404);

      // Events.
      const published = await call('POST', '/api/v1/events', { body: { type: 'email.processed', payload: { id: 42 }, target: 'mailer' } });
      assert.equal(published.status, 201);
      const events = await call('GET', '/api/v1/events?pattern=email.*');
      assert.deepEqual(events.body.events.map((e: { type: string }) => e.type), ['email.processed']);
      assert.equal(events.body.lastId, published.body.id);
      const jobEvents = await call('GET', `/api/v1/events?pattern=job.completed`);
      assert.equal(jobEvents.body.events[0].jobId, id);
      // Where to start to follow events from now: after everything settled so far, the published event included.
      await waitFor(async () => (await call('GET', '/api/v1/events/last-id')).body.lastId >= published.body.id, { what: 'the head to pass the published event' });
      const head = (await call('GET', '/api/v1/events/last-id')).body.lastId;
      assert.deepEqual((await call('GET', `/api/v1/events?after=${head}`)).body.events, [], 'nothing after the head yet');
      const client = new AgentqClient({ url: server.url, token: admin });
      assert.equal(await client.events.lastId(), head, 'the client asks the server');

      // Health and metrics.
      assert.deepEqual((await call('GET', '/healthz', { token: null })).body, { ok: true, engine: engine.name });
      const metrics = await call('GET', '/metrics');
      assert.equal(metrics.status, 200);
      assert.match(metrics.headers.get('content-type')!, /text\/plain/);
      assert.match(metrics.body, /agentq_jobs\{agent="echo",status="completed"\} 1/);
      assert.match(metrics.body, /agentq_job_duration_seconds_count 1/);
      assert.match(metrics.body, /agentq_jobs_submitted_total\{agent="w"\} \d+/);
      assert.equal((await call('GET', '/metrics', { token: null })).status, 401);
    });

    it('reports usage and budgets per job and tree, usage per agent, and manages rate limits', async () => {
      const { queue, call, alice, bob } = await setup(engine);
      const worker = new Worker(queue, {
        pollIntervalMs: 50,
        handlers: { llm: async (job, ctx) => void (await ctx.usage({ model: 'm', inputTokens: 40, outputTokens: 2, costUsd: 0.5 })) },
      });
      await worker.start();
      const job = (await call('POST', '/api/v1/jobs', { token: alice, body: { agent: 'llm', budget: { tokens: 100 }, rateKey: 'model:m' } })).body;
      assert.deepEqual([job.budget, job.rateKey], [{ tokens: 100 }, 'model:m']);
      await waitFor(async () => (await queue.get(job.id)).status === 'completed', { what: 'the llm job' });
      const usage = await call('GET', `/api/v1/jobs/${job.id}/usage`, { token: alice });
      assert.equal(usage.status, 200);
      assert.deepEqual(usage.body.job, { calls: 1, inputTokens: 40, outputTokens: 2, costUsd: 0.5, tokens: 42 });
      assert.deepEqual(usage.body.remaining, { tokens: 58, costUsd: null });
      assert.equal((await call('GET', `/api/v1/jobs/${job.id}/usage`, { token: bob })).status, 404);
      assert.deepEqual((await call('GET', '/api/v1/usage', { token: alice })).body.usage.map((u: { name: string; tokens: number }) => [u.name, u.tokens]), [['llm', 42]]);
      assert.deepEqual((await call('GET', '/api/v1/usage', { token: bob })).body.usage, [], 'nothing of Alice’s');
      assert.equal((await call('GET', '/api/v1/usage?groupBy=owner')).body.usage[0].name, 'alice');
      assert.equal((await call('PUT', '/api/v1/rate-limits/agent:llm', { token: alice, body: { max: 2, per: '1s' } })).status, 403);
      const put = await call('PUT', '/api/v1/rate-limits/agent:llm', { body: { max: 2, per: '1s' } });
      assert.deepEqual(put.body.rateLimits.map((l: { key: string; max: number; perMs: number }) => [l.key, l.max, l.perMs]), [['agent:llm', 2, 1000]]);
      assert.equal((await call('PUT', '/api/v1/rate-limits/x', { body: { max: 0, per: '1s' } })).status, 400);
      assert.equal((await call('GET', '/api/v1/rate-limits', { token: bob })).body.rateLimits.length, 1);
      assert.deepEqual((await call('DELETE', '/api/v1/rate-limits/agent:llm')).body.rateLimits, []);
      const metrics = await call('GET', '/metrics');
      assert.match(metrics.body, /agentq_usage_tokens_total\{agent="llm",direction="input"\} 40/);
      assert.match(metrics.body, /agentq_usage_cost_usd_total\{agent="llm"\} 0\.5/);
      await worker.stop();
    });

    it('publishes an OpenAPI 3.1 document that a validator accepts, naming every route', async () => {
      const { call } = await setup(engine);
      const doc = await call('GET', '/api/v1/openapi.json', { token: null });
      assert.equal(doc.status, 200);
      assert.equal(doc.body.openapi, '3.1.0');
      const result = await new Validator().validate(doc.body);
      assert.equal(result.valid, true, JSON.stringify(result.errors));
      for (const path of ['/api/v1/jobs', '/api/v1/jobs/{id}', '/api/v1/jobs/{id}/logs', '/api/v1/jobs/{id}/tree', '/api/v1/stats', '/api/v1/events', '/api/v1/schedules/{id}/executions', '/api/v1/workers', '/api/v1/agents', '/metrics', '/healthz']) {
        assert.ok(doc.body.paths[path], `documents ${path}`);
      }
      assert.ok(doc.body.paths['/api/v1/jobs'].post.requestBody, 'the submit body is described');
    });

    it('keeps users to their own jobs: 404 for anyone else’s, nothing of theirs in lists, stats or events', async () => {
      const { queue, call, alice, bob } = await setup(engine);
      const a = (await call('POST', '/api/v1/jobs', { token: alice, body: { agent: 'w', instructions: 'alice secret' } })).body;
      const failed = await queue.submit({ agent: 'w', owner: 'alice' });
      await queue.cancel(failed.id);
      assert.equal(a.owner, 'alice');
      for (const [method, path] of [
        ['GET', `/api/v1/jobs/${a.id}`],
        ['GET', `/api/v1/jobs/${a.id.slice(0, 16)}`],
        ['DELETE', `/api/v1/jobs/${a.id}`],
        ['POST', `/api/v1/jobs/${a.id}/cancel`],
        ['POST', `/api/v1/jobs/${failed.id}/retry`],
        ['GET', `/api/v1/jobs/${a.id}/logs`],
        ['GET', `/api/v1/jobs/${a.id}/tree`],
        ['GET', `/api/v1/jobs?parentId=${a.id}`],
        ['GET', `/api/v1/jobs?owner=alice`],
        ['GET', `/api/v1/users/alice/jobs`],
      ] as const) {
        const r = await call(method, path, { token: bob });
        assert.equal(r.status, 404, `${method} ${path}: ${JSON.stringify(r.body)}`);
        assert.doesNotMatch(JSON.stringify(r.body), /alice secret/);
      }
      // Bob cannot hang his jobs on Alice's, nor submit as her.
      const dep = await call('POST', '/api/v1/jobs', { token: bob, body: { agent: 'w', dependsOn: [a.id] } });
      assert.equal(dep.status, 400);
      assert.equal(dep.body.error.details.field, 'dependsOn.0');
      assert.equal((await call('POST', '/api/v1/jobs', { token: bob, body: { agent: 'w', parentId: a.id } })).status, 400);
      assert.equal((await call('POST', '/api/v1/jobs', { token: bob, body: { agent: 'w', owner: 'alice' } })).status, 400);
      assert.equal((await call('POST', '/api/v1/events', { token: bob, body: { type: 'x.y', jobId: a.id } })).status, 404);
      // Lists, stats and events show Bob only his own.
      const mine = (await call('POST', '/api/v1/jobs', { token: bob, body: { agent: 'w' } })).body;
      assert.deepEqual((await call('GET', '/api/v1/jobs', { token: bob })).body.jobs.map((j: { id: string }) => j.id), [mine.id]);
      assert.equal((await call('GET', '/api/v1/stats', { token: bob })).body.total, 1);
      const events = (await call('GET', '/api/v1/events', { token: bob })).body.events as Array<{ jobId: string }>;
      assert.ok(events.length > 0);
      assert.ok(events.every((e) => e.jobId === mine.id), 'no event of Alice’s jobs');
      // Alice still sees hers; the admin sees all; Bob may not act as admin.
      assert.equal((await call('GET', `/api/v1/jobs/${a.id}`, { token: alice })).status, 200);
      assert.equal((await call('GET', '/api/v1/jobs?owner=alice,bob')).body.jobs.length, 3);
      const forbidden = await call('POST', '/api/v1/schedules', { token: bob, body: { name: 'x', interval: '1 hour', agent: 'w' } });
      assert.equal(forbidden.status, 403);
      assert.equal((await call('GET', '/metrics', { token: bob })).status, 403);
      assert.equal((await queue.get(a.id)).status, 'pending', "Alice's job untouched");
    });

    it('shows a user, of what each worker runs, only their own jobs, however many they run', async () => {
      const { queue, call, alice, bob } = await setup(engine);
      await queue.store.registerWorker({ id: 'w1', name: 'w1', host: 'h', pid: 1, agents: ['w'], types: null, concurrency: 2000 });
      const hers = await queue.submitMany(Array.from({ length: 1001 }, () => ({ agent: 'w', owner: 'alice' })));
      const his = await queue.submit({ agent: 'w', owner: 'bob' });
      const claimed = await queue.store.claimJobs({ workerId: 'w1', agents: ['w'], limit: 2000, leaseMs: 60_000 });
      assert.equal(claimed.length, 1002);
      const running = async (token?: string) =>
        ((await call('GET', '/api/v1/workers', { token })).body.workers as Array<{ id: string; running: string[] }>)
          .find((w) => w.id === 'w1')!.running.toSorted();
      assert.deepEqual(await running(alice), hers.map((j) => j.id).toSorted(), 'all 1,001 of hers, none of his');
      assert.deepEqual(await running(bob), [his.id]);
      assert.equal((await running()).length, 1002, 'the admin sees every job');
    });

    it('finds a user’s approval by a prefix that another’s shares, and not the other’s', async () => {
      const { queue, call, alice, bob } = await setup(engine);
      const worker = await startWorker(queue, { gate: async (_job, ctx) => (await ctx.approval({ title: 'ok?' })).by });
      const jobs = await Promise.all(['bob', 'alice'].map((owner) => queue.submit({ agent: 'gate', owner })));
      const approvals = await waitFor(async () => {
        const list = await queue.approvals.list({ status: 'pending' });
        return list.length === 2 ? list : null;
      });
      const [his, hers] = jobs.map((j) => approvals.find((a) => a.jobId === j.id)!);
      let shared = hers.id;
      while (!his.id.startsWith(shared)) shared = shared.slice(0, -1);
      assert.ok(shared.length > 0);
      const found = await call('GET', `/api/v1/approvals/${shared}`, { token: alice });
      assert.equal(found.status, 200, JSON.stringify(found.body));
      assert.equal(found.body.id, hers.id);
      const other = await call('GET', `/api/v1/approvals/${his.id}`, { token: alice });
      assert.equal(other.status, 404);
      assert.equal((await call('GET', `/api/v1/approvals/${shared}`, { token: bob })).body.id, his.id);
      const ambiguous = await call('GET', `/api/v1/approvals/${shared}`);
      assert.equal(ambiguous.body.error.code, 'ambiguous_id', 'for the admin, both count');
      await worker.stop();
    });

    it('finds a user’s job by a prefix that many others’ jobs share, and calls it ambiguous only among their own', async () => {
      const { queue, call, alice } = await setup(engine);
      const others = await queue.submitMany(Array.from({ length: 60 }, () => ({ agent: 'w', owner: 'bob' })));
      const mine = (await call('POST', '/api/v1/jobs', { token: alice, body: { agent: 'w' } })).body;
      let shared = mine.id as string;
      while (!others.every((j) => j.id.startsWith(shared))) shared = shared.slice(0, -1);
      assert.ok(shared.length > 0 && others.every((j) => j.id < mine.id), 'Alice’s job sorts after all of Bob’s');
      const found = await call('GET', `/api/v1/jobs/${shared.toLowerCase()}`, { token: alice });
      assert.equal(found.status, 200, 'hers is the only one of hers with that prefix');
      assert.equal(found.body.id, mine.id);
      const ambiguous = await call('GET', `/api/v1/jobs/${shared}`);
      assert.equal(ambiguous.status, 400, 'for the admin, every job counts');
      assert.equal(ambiguous.body.error.code, 'ambiguous_id');
      assert.equal((await call('GET', `/api/v1/jobs/${others[0].id}`, { token: alice })).status, 404, 'not Bob’s');
    });

    it('refuses missing, malformed and revoked tokens with 401', async () => {
      const { queue, call, alice } = await setup(engine);
      const attempts: Array<Record<string, string>> = [{}, { authorization: 'Basic abc' }, { authorization: 'Bearer' }, { authorization: 'Bearer aq_not-a-real-token-at-all' }];
      for (const headers of attempts) {
        const r = await call('GET', '/api/v1/jobs', { token: null, headers });
        assert.equal(r.status, 401, JSON.stringify(headers));
        assert.equal(r.body.error.code, 'unauthorized');
      }
      assert.equal((await call('GET', '/api/v1/jobs', { token: alice })).status, 200);
      assert.equal(await queue.users.revoke('alice'), 1);
      assert.equal((await call('GET', '/api/v1/jobs', { token: alice })).status, 401);
      const before = await jobCount(queue);
      assert.equal((await call('POST', '/api/v1/jobs', { token: null, body: { agent: 'w' } })).status, 401);
      assert.equal(await jobCount(queue), before);
    });

    it('answers bad requests with 4xx naming the field, stores nothing and stays up', async () => {
      const { queue, call, server } = await setup(engine);
      const cases: Array<{ what: string; status: number; field?: string; options: Parameters<Setup['call']>[2] }> = [
        { what: 'malformed JSON', status: 400, field: 'body', options: { raw: '{"agent": "w",', headers: { 'content-type': 'application/json' } } },
        { what: 'wrong type', status: 400, field: 'priority', options: { body: { agent: 'w', priority: 'high' } } },
        { what: 'missing agent', status: 400, field: 'agent', options: { body: { instructions: 'x' } } },
        { what: 'unknown field', status: 400, field: 'colour', options: { body: { agent: 'w', colour: 'red' } } },
        { what: 'fractional attempts', status: 400, field: 'maxAttempts', options: { body: { agent: 'w', maxAttempts: 1.5 } } },
        { what: 'NUL in agent', status: 400, field: 'agent', options: { body: { agent: 'w\u0000x' } } },
        { what: 'NUL in instructions', status: 400, field: 'instructions', options: { body: { agent: 'w', instructions: 'a\u0000b' } } },
        { what: 'deep nesting', status: 400, field: 'payload', options: { raw: `{"agent":"w","payload":${'['.repeat(5000)}${']'.repeat(5000)}}`, headers: { 'content-type': 'application/json' } } },
        { what: 'very deep nesting', status: 400, options: { raw: `{"agent":"w","payload":${'['.repeat(200_000)}${']'.repeat(200_000)}}`, headers: { 'content-type': 'application/json' } } },
        { what: 'wrong content type', status: 415, options: { raw: '{"agent":"w"}', headers: { 'content-type': 'text/plain' } } },
        { what: 'no content type', status: 415, options: { raw: '{"agent":"w"}' } },
        { what: 'a JSON array', status: 400, options: { body: [{ agent: 'w' }] } },
        { what: 'unknown dependency', status: 400, field: 'dependsOn.0', options: { body: { agent: 'w', dependsOn: ['01NOPE'] } } },
        { what: 'a graph with a cycle', status: 400, options: { body: { jobs: [{ ref: 'a', agent: 'w', dependsOn: ['b'] }, { ref: 'b', agent: 'w', dependsOn: ['a'] }] } } },
        { what: 'a payload over the limit', status: 413, options: { body: { agent: 'w', payload: 'x'.repeat(1_100_000) } } },
      ];
      for (const c of cases) {
        const r = await call('POST', '/api/v1/jobs', c.options);
        assert.equal(r.status, c.status, `${c.what}: ${JSON.stringify(r.body).slice(0, 300)}`);
        assert.equal(typeof r.body.error?.message, 'string', c.what);
        if (c.field) assert.equal(r.body.error.details?.field, c.field, c.what);
      }
      // Filters with injection strings are data, never SQL.
      for (const q of [`status=pending'--`, `agent=${encodeURIComponent("w' OR '1'='1")}`, `tag=${encodeURIComponent('%')}`, 'limit=0', 'limit=abc', 'cursor=%27%3B%20DROP%20TABLE%20jobs%3B--', 'bogus=1']) {
        const r = await call('GET', `/api/v1/jobs?${q}`);
        assert.ok(r.status === 200 || r.status === 400, `${q}: ${r.status}`);
        if (r.status === 200) assert.equal(r.body.jobs.length, 0, q);
      }
      for (const q of ['pattern=%27;--', 'after=-1', 'pattern=a%20b']) assert.equal((await call('GET', `/api/v1/events?${q}`)).status, 400, q);
      assert.equal((await call('GET', '/api/v1/jobs/%00')).status, 404);
      assert.equal((await call('POST', '/api/v1/nope')).status, 404);
      assert.equal(await jobCount(queue), 0, 'nothing stored');
      // An oversized body is refused before it is read whole.
      const big = await new Promise<number>((resolve, reject) => {
        const req = request(`${server.url}/api/v1/jobs`, {
          method: 'POST',
          headers: { authorization: `Bearer ${'x'}`, 'content-type': 'application/json', 'content-length': String(50 * 1024 * 1024) },
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', reject);
        req.write('{"agent":"w","payload":"');
      });
      assert.equal(big, 413);
      assert.deepEqual((await call('GET', '/healthz')).body.ok, true, 'still up');
      assert.equal((await call('POST', '/api/v1/jobs', { body: { agent: 'w' } })).status, 202);
    });

    it('streams events as SSE, filtered to what the caller may see, resuming after Last-Event-ID without a gap', async () => {
      const { queue, server, alice, bob } = await setup(engine);
      const read = async (token: string, lastEventId: string | undefined, want: number) => {
        const abort = new AbortController();
        const r = await fetch(`${server.url}/api/v1/events?pattern=job.created`, {
          headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) } as Record<string, string>,
          signal: abort.signal,
        });
        assert.equal(r.status, 200);
        assert.match(r.headers.get('content-type')!, /text\/event-stream/);
        const got: Array<{ id: string; jobId: string }> = [];
        const reader = r.body!.getReader();
        const decoder = new TextDecoder();
        let buffer = '';
        while (got.length < want) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let end: number;
          while (got.length < want && (end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const id = /^id: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (id && data) got.push({ id, jobId: JSON.parse(data).jobId });
          }
        }
        abort.abort();
        return got;
      };
      const first = [];
      for (let i = 0; i < 3; i++) first.push(await queue.submit({ agent: 'w', owner: 'alice' }));
      await queue.submit({ agent: 'w', owner: 'bob' });
      const seen = await read(alice, '0', 2);
      assert.deepEqual(seen.map((e) => e.jobId), first.slice(0, 2).map((j) => j.id));
      // Resume after the last id seen: the third one next, then one submitted later; nothing of Bob's.
      const later = await queue.submit({ agent: 'w', owner: 'alice' });
      const rest = await read(alice, seen[1].id, 2);
      assert.deepEqual(rest.map((e) => e.jobId), [first[2].id, later.id]);
      const bobs = await read(bob, '0', 1);
      assert.equal(bobs.length, 1);
      assert.notEqual(bobs[0].jobId, first[0].id);
    });

    it('throughput per minute, a job’s events, search by id prefix: each of the caller’s own jobs only', async () => {
      const { queue, call, alice, bob } = await setup(engine);
      const jobs: Array<{ id: string }> = [];
      for (let i = 0; i < 4; i++) jobs.push((await call('POST', '/api/v1/jobs', { token: alice, body: { agent: 'w', maxAttempts: 1 } })).body);
      const bobs = (await call('POST', '/api/v1/jobs', { token: bob, body: { agent: 'w' } })).body;
      const worker = new Worker(queue, {
        handlers: {
          w: async (job) => {
            if (job.id === jobs[1].id) throw new Error('no');
            return 1;
          },
        },
        pollIntervalMs: 20,
      });
      await call('POST', `/api/v1/jobs/${jobs[3].id}/cancel`, { token: alice });
      await worker.start();
      await waitFor(async () => (await queue.stats()).byStatus.pending === 0 && (await queue.stats()).byStatus.running === 0, { what: 'every job run' });
      await worker.stop();
      const sum = (body: { minutes: Array<Record<string, number>> }, key: string) => body.minutes.reduce((n, m) => n + m[key], 0);
      const tp = await call('GET', '/api/v1/stats/throughput?minutes=5', { token: alice });
      assert.equal(tp.status, 200, JSON.stringify(tp.body));
      assert.equal(tp.body.minutes.length, 5);
      assert.ok(tp.body.minutes.every((m: { at: number }, i: number) => m.at === tp.body.since + i * 60_000), 'one entry per minute, oldest first');
      assert.equal(sum(tp.body, 'completed'), 2, 'Alice’s completed jobs, not Bob’s');
      assert.equal(sum(tp.body, 'failed'), 1);
      assert.equal(sum(tp.body, 'cancelled'), 1);
      const all = await call('GET', '/api/v1/stats/throughput');
      assert.equal(all.body.minutes.length, 60, 'an hour by default');
      assert.equal(sum(all.body, 'completed') + sum(all.body, 'failed') + sum(all.body, 'cancelled'), 5, 'the admin counts every job');
      assert.equal((await call('GET', '/api/v1/stats/throughput?minutes=0')).status, 400);

      const events = await call('GET', `/api/v1/jobs/${jobs[0].id}/events`, { token: alice });
      assert.equal(events.status, 200);
      assert.deepEqual(events.body.events.map((e: { type: string }) => e.type), ['job.created', 'job.started', 'job.completed']);
      assert.ok(events.body.events.every((e: { jobId: string }) => e.jobId === jobs[0].id));
      assert.equal((await call('GET', `/api/v1/jobs/${jobs[0].id}/events`, { token: bob })).status, 404);

      const prefix = await call('GET', `/api/v1/jobs?idPrefix=${jobs[2].id.toLowerCase()}`, { token: alice });
      assert.deepEqual(prefix.body.jobs.map((j: { id: string }) => j.id), [jobs[2].id]);
      let shared = jobs[0].id;
      while (!jobs.every((j) => j.id.startsWith(shared))) shared = shared.slice(0, -1);
      const mine = await call('GET', `/api/v1/jobs?idPrefix=${shared}&limit=2`, { token: alice });
      assert.ok(mine.body.jobs.length === 2 && mine.body.nextCursor, 'keyset pages within a prefix');
      const next = await call('GET', `/api/v1/jobs?idPrefix=${shared}&limit=2&cursor=${mine.body.nextCursor}`, { token: alice });
      assert.deepEqual([...mine.body.jobs, ...next.body.jobs].map((j: { id: string }) => j.id).sort(), jobs.map((j) => j.id).filter((id) => id.startsWith(shared)).sort());
      assert.equal((await call('GET', `/api/v1/jobs?idPrefix=${bobs.id}`, { token: alice })).body.jobs.length, 0, 'not Bob’s');
      const doc = (await call('GET', '/api/v1/openapi.json')).body;
      assert.ok(doc.paths['/api/v1/stats/throughput'].get && doc.paths['/api/v1/jobs/{id}/events'].get, 'both in the document');
    });

    it('with a cookie name: a token from the cookie works, but its state changes must come from the same origin', async () => {
      const { queue, alice } = await setup(engine);
      const server = await startHttpServer(queue, { port: 0, cookieName: 'agentq_session' });
      after(() => server.close());
      const host = new URL(server.url).host;
      const cookie = `agentq_session=${encodeURIComponent(alice)}`;
      const post = (headers: Record<string, string>) =>
        fetch(`${server.url}/api/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', cookie, ...headers }, body: '{"agent":"w"}' });
      assert.equal((await fetch(`${server.url}/api/v1/jobs`, { headers: { cookie } })).status, 200, 'a read by cookie');
      assert.equal((await post({ origin: server.url })).status, 202, 'same origin');
      assert.equal((await post({ 'sec-fetch-site': 'same-origin' })).status, 202, 'Sec-Fetch-Site: same-origin');
      assert.equal(
        (await post({ 'sec-fetch-site': 'same-origin', origin: 'https://queue.example.com' })).status,
        202,
        'behind a proxy that rewrites Host: the browser says same-origin, and is taken at its word',
      );
      const refused: Array<Record<string, string>> = [{}, { origin: 'https://evil.example' }, { origin: 'null' }, { 'sec-fetch-site': 'cross-site' }, { origin: server.url, 'sec-fetch-site': 'same-site' }, { origin: server.url, 'sec-fetch-site': 'cross-site' }, { origin: `http://${host}.evil.example` }];
      for (const headers of refused) {
        const r = await post(headers);
        assert.equal(r.status, 403, JSON.stringify(headers));
        assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'forbidden');
      }
      const bearer = await fetch(`${server.url}/api/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}`, origin: 'https://evil.example' }, body: '{"agent":"w"}' });
      assert.equal(bearer.status, 202, 'a Bearer token is not a cookie: no cross-site rule');
      assert.equal((await queue.stats()).total, 4, 'the accepted posts, and nothing of the refused');
      assert.equal((await fetch(`${server.url}/api/v1/jobs`, { headers: { cookie: 'agentq_session=aq_nope' } })).status, 401);
    });

    it('the typed client: library method names, wait over SSE, typed errors', async () => {
      const { queue, server, alice, bob } = await setup(engine);
      const client = new AgentqClient({ url: server.url, token: alice });
      const worker = new Worker(queue, { handlers: { echo: async (job) => ({ got: job.payload }) }, pollIntervalMs: 50 });
      await worker.start();
      const job = await client.submit({ agent: 'echo', payload: { q: 1 } });
      const done = await client.wait(job.id, { timeoutMs: 10_000 });
      assert.equal(done.status, 'completed');
      assert.deepEqual(done.result, { got: { q: 1 } });
      assert.equal((await client.get(job.id.slice(0, 18))).id, job.id);
      assert.equal((await client.list({ status: 'completed' })).jobs.length, 1);
      assert.equal((await client.stats()).total, 1);
      assert.equal((await client.tree(job.id)).job.id, job.id);
      assert.deepEqual(await client.logs(job.id), []);
      const [a, b] = await client.submitGraph([
        { ref: 'a', agent: 'slow' },
        { ref: 'b', agent: 'slow', dependsOn: ['a'] },
      ]);
      assert.equal(b.dependsOn[0], a.id);
      assert.equal((await client.cancel(a.id)).status, 'cancelled');
      assert.equal((await client.get(b.id)).status, 'cancelled');
      await assert.rejects(client.wait(job.id.replace(/.$/, '0') + 'X'), NotFoundError);
      await assert.rejects(client.submit({ agent: '' }), (e: unknown) => e instanceof ValidationError && e.field === 'agent');
      await assert.rejects(client.retry(job.id), ConflictError);
      await assert.rejects(new AgentqClient({ url: server.url, token: bob }).get(job.id), NotFoundError);
      await assert.rejects(new AgentqClient({ url: server.url, token: 'aq_wrong-token-here' }).stats(), UnauthorizedError);
      await assert.rejects(client.schedules.create({ name: 'x', interval: '1 hour', agent: 'w' }), ForbiddenError);
      const pending = await client.submit({ agent: 'nobody' });
      await assert.rejects(client.wait(pending.id, { timeoutMs: 200 }), (e: unknown) => (e as { code?: string }).code === 'wait_timeout');
      const got: string[] = [];
      const sub = client.events.subscribe('app.*', (e) => void got.push(e.type), { after: 0 });
      await client.events.publish({ type: 'app.one' });
      await waitFor(() => got.length === 1, { what: 'the event through the stream' });
      sub.close();
      await worker.stop();
    });
  });
});
