/**
 * The MCP server in this process, over the SDK's in-memory transport, on a
 * backend that is not a Queue: a plain object with the seven methods whose
 * errors carry only `code`, `message` and `details`, as a client of the REST
 * API rebuilds them. What the tools need is the McpBackend interface, nothing more.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { AgentqError, Queue, Worker } from '../src/index.ts';
import type { McpBackend } from '../src/mcp/backend.ts';
import { createMcpServer } from '../src/mcp/server.ts';
import { RESULT_CHARS } from '../src/mcp/present.ts';
import { freshQueue, engines } from './helpers/engines.ts';
import { waitFor } from './helpers/wait.ts';

/** An error as it arrives over HTTP: no class of agentq's, only its JSON fields. */
function remote(error: unknown): Error {
  if (!(error instanceof AgentqError)) return error as Error;
  const json = error.toJSON();
  return Object.assign(new Error(json.message), { code: json.code, details: json.details });
}

interface Tally {
  /** Every call, by method name. */
  calls: string[];
  /** Calls that have not returned yet. */
  active: number;
}

/** A backend with only the interface's methods, each counted, whose errors look remote. */
function remoteBackend(queue: Queue, tally: Tally): McpBackend {
  const through =
    <A extends unknown[], R>(name: string, fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      tally.calls.push(name);
      tally.active++;
      try {
        return await fn(...args);
      } catch (error) {
        throw remote(error);
      } finally {
        tally.active--;
      }
    };
  return {
    submit: through('submit', (input) => queue.submit(input)),
    get: through('get', (id) => queue.get(id)),
    list: through('list', (options) => queue.list(options)),
    cancel: through('cancel', (id, options) => queue.cancel(id, options)),
    cleanup: through('cleanup', (options) => queue.cleanup(options)),
    wait: through('wait', (id, options) => queue.wait(id, { ...options, pollMs: 50 })),
    logs: through('logs', (id, options) => queue.logs(id, options)),
    approvals: {
      list: through('approvals.list', (options) => queue.approvals.list(options)),
      approve: through('approvals.approve', (id, options) => queue.approvals.approve(id, options)),
      reject: through('approvals.reject', (id, options) => queue.approvals.reject(id, options)),
    },
  } satisfies McpBackend;
}

async function setUp(t: TestContext) {
  const sqlite = engines.find((e) => e.name === 'sqlite')!;
  const { queue } = await freshQueue(sqlite);
  const tally: Tally = { calls: [], active: 0 };
  const mcp = createMcpServer(remoteBackend(queue, tally), { version: '9.9.9' });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await mcp.connect(serverSide);
  const client = new Client({ name: 'agentq-test', version: '1.0.0' });
  await client.connect(clientSide);
  t.after(async () => {
    await client.close();
    await mcp.close();
  });
  const call = async (name: string, args: Record<string, unknown>) => {
    const result = (await client.callTool({ name, arguments: args })) as { isError?: boolean; content: Array<{ text: string }> };
    const text = result.content[0].text;
    return { isError: result.isError === true, text, json: result.isError ? undefined : JSON.parse(text) };
  };
  return { queue, tally, mcp, client, call };
}

describe('MCP server on a backend', { concurrency: true }, () => {
  it('lists and decides approval requests', async (t) => {
    const { queue, call } = await setUp(t);
    const worker = new Worker(queue, {
      pollIntervalMs: 50,
      handlers: { gate: async (job, ctx) => (await ctx.approval({ title: `Send ${job.instructions}?`, details: { to: 'all' } })).comment },
    });
    await worker.start();
    t.after(() => worker.stop());
    const a = await call('submit_job', { instructions: 'the newsletter', agent_name: 'gate' });
    const b = await call('submit_job', { instructions: 'the invoice', agent_name: 'gate' });
    const pending = await waitFor(async () => {
      const r = await call('get_approvals', {});
      return r.json.count === 2 ? r.json : null;
    });
    const of = (id: string) => pending.approvals.find((x: { job_id: string }) => x.job_id === id);
    assert.deepEqual([of(a.json.job_id).title, of(a.json.job_id).details], ['Send the newsletter?', { to: 'all' }]);
    const yes = await call('decide_approval', { approval_id: of(a.json.job_id).approval_id, decision: 'approve', comment: 'fine' });
    assert.equal(yes.json.status, 'approved', yes.text);
    assert.equal((await call('decide_approval', { approval_id: of(b.json.job_id).approval_id, decision: 'reject', comment: 'wrong amount' })).json.status, 'rejected');
    const done = await call('wait_for_job', { job_id: a.json.job_id, timeout_seconds: 20 });
    assert.equal(done.json.result, 'fine');
    const failed = await call('wait_for_job', { job_id: b.json.job_id, timeout_seconds: 20 });
    assert.equal(failed.json.status, 'failed');
    const twice = await call('decide_approval', { approval_id: of(a.json.job_id).approval_id, decision: 'reject' });
    assert.equal(twice.isError, true);
    assert.match(twice.text, /already approved/);
    const bad = await call('decide_approval', { approval_id: 'x', decision: 'maybe' });
    assert.equal(bad.isError, true);
    assert.match(bad.text, /decision/);
  });

  it('works through the backend interface alone, reads remote errors by their code, and cuts huge results', async (t) => {
    const { queue, tally, client, call } = await setUp(t);
    assert.equal(client.getServerVersion()?.name, 'agentq');
    assert.equal(client.getServerVersion()?.version, '9.9.9');

    const worker = new Worker(queue, { agents: ['big'], pollIntervalMs: 50, handlers: { big: async () => 'x'.repeat(50_000) } });
    await worker.start();
    t.after(() => worker.stop());
    const submitted = await call('submit_job', { instructions: 'make a lot', agent_name: 'big' });
    const done = await call('wait_for_job', { job_id: submitted.json.job_id, timeout_seconds: 20 });
    assert.equal(done.json.status, 'completed', done.text);
    assert.equal(typeof done.json.result, 'string');
    assert.ok(done.json.result.length <= RESULT_CHARS + 1, 'the result is cut to a preview');
    assert.match(done.json.result_truncated, /the JSON is 50002 characters; this shows the first 20000/);
    assert.ok(done.text.length < RESULT_CHARS + 2000, 'the answer stays small');

    const missing = await call('get_job_status', { job_id: 'NOSUCHJOB' });
    assert.deepEqual([missing.isError, missing.text], [true, 'job_id: job NOSUCHJOB not found; get_jobs lists the jobs there are']);
    const badAgent = await call('submit_job', { instructions: 'x', agent_name: 'a'.repeat(199) + '\u0001' });
    assert.deepEqual([badAgent.isError, badAgent.text], [true, 'agent_name: must not contain control characters']);
    const badStatus = await call('cleanup_jobs', { status: 'completed', older_than_days: 1 });
    assert.deepEqual(badStatus.json, { removed_count: 0 });

    // A wait that runs out is a normal answer, from the backend's wait_timeout.
    const idle = await call('submit_job', { instructions: 'x', agent_name: 'nobody' });
    const late = await call('wait_for_job', { job_id: idle.json.job_id, timeout_seconds: 0.1 });
    assert.deepEqual([late.isError, late.json.finished, late.json.status], [false, false, 'pending']);

    assert.deepEqual(new Set(tally.calls), new Set(['submit', 'get', 'wait', 'cleanup']));
  });

  it('closes with a wait in progress: the wait is aborted and close resolves once it returned', async (t) => {
    const { tally, mcp, client, call } = await setUp(t);
    const idle = await call('submit_job', { instructions: 'x', agent_name: 'nobody' });
    let started = false;
    const waiting = client
      .callTool({ name: 'wait_for_job', arguments: { job_id: idle.json.job_id, timeout_seconds: 600 } }, undefined, {
        onprogress: () => (started = true),
        timeout: 600_000,
      })
      .then(
        () => 'answered',
        (error: Error) => error.message,
      );
    await waitFor(() => started, { what: 'the wait to have started' });
    await waitFor(() => tally.active === 1, { what: 'the backend to be waiting' });
    await mcp.close();
    assert.equal(tally.active, 0, 'the backend\'s wait returned before close resolved');
    assert.match(await waiting, /Connection closed/);
  });
});
