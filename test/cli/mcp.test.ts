/**
 * `agentq mcp`, run as the real binary and driven by the MCP SDK's own client
 * over stdio, with real worker processes running the jobs it submits.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it, type TestContext } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { Progress } from '@modelcontextprotocol/sdk/types.js';
import { forEachEngine, type Engine } from '../helpers/engines.ts';
import { waitFor } from '../helpers/wait.ts';
import { agentq, BIN, freshDb, start } from './run.ts';

const TOOL_NAMES = ['cancel_job', 'cleanup_jobs', 'decide_approval', 'get_approvals', 'get_job_logs', 'get_job_status', 'get_jobs', 'submit_job', 'wait_for_job'];

interface Connection {
  client: Client;
  transport: StdioClientTransport;
  stderr(): string;
}

/** Starts `agentq --db <db> mcp` through the SDK's stdio transport; closed when the test ends. */
async function connect(t: TestContext, db: string): Promise<Connection> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== 'AGENTQ_DATABASE_URL') env[k] = v;
  const transport = new StdioClientTransport({ command: process.execPath, args: [BIN, '--db', db, 'mcp'], env, stderr: 'pipe' });
  let stderr = '';
  transport.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const client = new Client({ name: 'agentq-test', version: '1.0.0' });
  await client.connect(transport);
  t.after(() => client.close());
  return { client, transport, stderr: () => stderr };
}

interface Answer {
  isError: boolean;
  text: string;
  json: any;
}

async function call(client: Client, name: string, args: Record<string, unknown>, options?: { onprogress?: (p: Progress) => void }): Promise<Answer> {
  const result = (await client.callTool({ name, arguments: args }, undefined, options)) as { isError?: boolean; content: Array<{ type: string; text: string }> };
  assert.equal(result.content.length, 1);
  assert.equal(result.content[0].type, 'text');
  const text = result.content[0].text;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { isError: result.isError === true, text, json };
}

/** A call that must succeed; its JSON answer. */
async function ok(client: Client, name: string, args: Record<string, unknown>, options?: { onprogress?: (p: Progress) => void }): Promise<any> {
  const answer = await call(client, name, args, options);
  assert.equal(answer.isError, false, `${name} failed: ${answer.text}`);
  assert.notEqual(answer.json, undefined, `${name} answered JSON: ${answer.text}`);
  return answer.json;
}

/** A call that must be a tool error; its message. */
async function refused(client: Client, name: string, args: Record<string, unknown>): Promise<string> {
  const answer = await call(client, name, args);
  assert.equal(answer.isError, true, `${name} should have failed, answered: ${answer.text}`);
  return answer.text;
}

/** Starts a worker with the demo agents and waits for its banner. */
async function worker(db: string) {
  const w = start(db, ['worker', '--agent', 'echo', 'demo', '--poll-interval', '100ms']);
  await w.output(/serving echo, demo/, 'the worker banner');
  return w;
}

async function flow(t: TestContext, engine: Engine): Promise<void> {
  const db = engine.name === 'sqlite' ? freshDb() : await engine.freshUrl();
  const w = await worker(db);
  const { client, stderr } = await connect(t, db);
  assert.match(stderr(), /agentq mcp: serving 9 tools on stdio/);

  // What a model reads before it calls anything.
  assert.match(client.getInstructions() ?? '', /submit_job.*wait_for_job/s);
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((tool) => tool.name).sort(), TOOL_NAMES);
  for (const tool of tools) {
    assert.ok((tool.description ?? '').length > 80, `${tool.name} says what it does`);
    for (const [name, property] of Object.entries(tool.inputSchema.properties ?? {})) {
      assert.ok(((property as { description?: string }).description ?? '').length > 10, `${tool.name}.${name} is described`);
    }
  }
  const submitTool = tools.find((tool) => tool.name === 'submit_job')!;
  assert.deepEqual(submitTool.inputSchema.required, ['instructions', 'agent_name']);
  assert.deepEqual(Object.keys(submitTool.inputSchema.properties ?? {}).sort(), [
    'agent_name',
    'delay',
    'depends_on',
    'instructions',
    'job_type',
    'metadata',
    'payload',
    'priority',
  ]);
  assert.equal(tools.find((tool) => tool.name === 'get_jobs')!.annotations?.readOnlyHint, true);
  assert.equal(tools.find((tool) => tool.name === 'cleanup_jobs')!.annotations?.destructiveHint, true);

  // Submit, wait, read.
  const submitted = await ok(client, 'submit_job', {
    instructions: 'Say hello back',
    agent_name: 'echo',
    job_type: 'greeting',
    metadata: { from: 'test' },
    payload: { hello: 'world' },
    priority: 5,
  });
  assert.match(submitted.job_id, /^[0-9A-Z]{26}$/);
  assert.equal(submitted.agent_name, 'echo');
  assert.equal(submitted.job_type, 'greeting');
  const id: string = submitted.job_id;

  const done = await ok(client, 'wait_for_job', { job_id: id.slice(0, 12), timeout_seconds: 30 });
  assert.equal(done.id, id);
  assert.equal(done.status, 'completed');
  assert.equal(done.finished, true);
  assert.deepEqual(done.result, { hello: 'world' });
  assert.equal(done.note, undefined);

  const status = await ok(client, 'get_job_status', { job_id: id.slice(0, 12) });
  assert.equal(status.status, 'completed');
  assert.equal(status.instructions, 'Say hello back');
  assert.equal(status.job_type, 'greeting');
  assert.deepEqual(status.metadata, { from: 'test' });
  assert.deepEqual(status.payload, { hello: 'world' });
  assert.equal(status.priority, 5);
  assert.equal(status.attempts, 1);
  assert.equal(typeof status.duration_ms, 'number');
  assert.ok(status.finished_at);

  const logs = await ok(client, 'get_job_logs', { job_id: id.slice(0, 12) });
  assert.equal(logs.job_id, id);
  assert.equal(logs.status, 'completed');
  assert.equal(logs.count, 1);
  assert.deepEqual([logs.logs[0].level, logs.logs[0].message, logs.logs[0].data], ['info', 'echo', { hello: 'world' }]);
  assert.equal(logs.more, false);
  const since = await ok(client, 'get_job_logs', { job_id: id, after: logs.next_after });
  assert.deepEqual([since.count, since.more, since.next_after], [0, false, logs.next_after]);

  // A job that reports progress: the client that asked for progress hears it.
  const demo = await ok(client, 'submit_job', { instructions: 'Count to three', agent_name: 'demo', payload: { steps: 3, stepMs: 150 } });
  const heard: Progress[] = [];
  const demoDone = await ok(client, 'wait_for_job', { job_id: demo.job_id, timeout_seconds: 30 }, { onprogress: (p) => heard.push(p) });
  assert.equal(demoDone.status, 'completed', JSON.stringify(demoDone));
  assert.equal(demoDone.result.steps, 3);
  assert.ok(heard.length >= 1, 'progress was reported');
  for (const [i, p] of heard.entries()) {
    assert.equal(p.total, 100);
    if (i > 0) assert.ok(p.progress > heard[i - 1].progress, 'progress only rises');
  }
  const firstTwo = await ok(client, 'get_job_logs', { job_id: demo.job_id, limit: 2 });
  assert.deepEqual(firstTwo.logs.map((l: any) => l.message), ['step 1 of 3', 'step 2 of 3']);
  assert.equal(firstTwo.more, true);
  const rest = await ok(client, 'get_job_logs', { job_id: demo.job_id, after: firstTwo.next_after });
  assert.deepEqual(rest.logs.map((l: any) => l.message), ['step 3 of 3']);
  assert.equal(rest.more, false);

  // Lists, filters and the seeds' status words.
  const greetings = await ok(client, 'get_jobs', { status: 'success', job_type: 'greeting' });
  assert.deepEqual(greetings.jobs.map((j: any) => j.id), [id]);
  assert.equal(greetings.next_cursor, null);
  const all = await ok(client, 'get_jobs', { status: ['completed'], limit: 1 });
  assert.deepEqual([all.count, all.jobs[0].id], [1, demo.job_id], 'newest first');
  const page2 = await ok(client, 'get_jobs', { status: 'completed', limit: 1, cursor: all.next_cursor });
  assert.deepEqual(page2.jobs.map((j: any) => j.id), [id]);
  assert.equal((await ok(client, 'get_jobs', { status: 'queued' })).count, 0);
  assert.equal((await ok(client, 'get_jobs', { agent_name: 'demo' })).count, 1);

  // A finished job cannot be cancelled; old finished jobs can be cleaned up.
  assert.match(await refused(client, 'cancel_job', { job_id: id }), /already completed and cannot be cancelled/);
  const dry = await ok(client, 'cleanup_jobs', { status: 'completed', older_than_days: 0, dry_run: true });
  assert.equal(dry.would_remove_count, 2);
  assert.deepEqual([...dry.job_ids].sort(), [id, demo.job_id].sort());
  assert.equal((await ok(client, 'get_job_status', { job_id: id })).status, 'completed', 'a dry run deletes nothing');
  assert.deepEqual(await ok(client, 'cleanup_jobs', { older_than_days: 0 }), { removed_count: 2 });
  assert.match(await refused(client, 'get_job_status', { job_id: id }), /job_id: job \S+ not found/);

  w.child.kill('SIGTERM');
  assert.equal((await w.exited).code, 0);
}

forEachEngine((engine) => {
  describe(`agentq mcp [${engine.name}]`, () => {
    it('lists described tools, and submits a job a worker runs, waits for it, reads its status, logs and list, cleans up', (t) => flow(t, engine));
  });
});

describe('agentq mcp', { concurrency: true }, () => {
  it('cancels jobs, holds jobs back with depends_on and delay, and returns unfinished jobs when a wait times out', async (t) => {
    const db = freshDb();
    const { client } = await connect(t, db);
    const first = await ok(client, 'submit_job', { instructions: 'Research', agent_name: 'nobody' });
    assert.equal(first.status, 'pending');
    const second = await ok(client, 'submit_job', { instructions: 'Write it up', agent_name: 'nobody', depends_on: [first.job_id.slice(0, 14)] });
    assert.equal(second.status, 'blocked');
    assert.deepEqual(second.depends_on, [first.job_id]);

    const late = await ok(client, 'wait_for_job', { job_id: first.job_id, timeout_seconds: 0.2 });
    assert.equal(late.finished, false);
    assert.equal(late.status, 'pending');
    assert.match(late.note, /still pending after 0\.2 s; call wait_for_job again/);

    const cancelled = await ok(client, 'cancel_job', { job_id: first.job_id.slice(0, 14), reason: 'not needed any more' });
    assert.deepEqual(cancelled, { success: true, job_id: first.job_id, status: 'cancelled' });
    const gone = await ok(client, 'get_job_status', { job_id: first.job_id });
    assert.equal(gone.status, 'cancelled');
    assert.equal(gone.finished, true);
    assert.equal(gone.error.message, 'not needed any more');
    assert.equal((await ok(client, 'get_job_status', { job_id: second.job_id })).status, 'cancelled', 'its dependent is cancelled too');
    assert.equal((await ok(client, 'cancel_job', { job_id: first.job_id })).status, 'cancelled', 'cancelling again changes nothing');
    const waited = await ok(client, 'wait_for_job', { job_id: first.job_id });
    assert.equal(waited.status, 'cancelled', 'a finished job is returned at once');

    const before = Date.now();
    const delayed = await ok(client, 'submit_job', { instructions: 'Later', agent_name: 'nobody', delay: '5m' });
    const runAt = Date.parse(delayed.run_at);
    assert.ok(runAt >= before + 299_000 && runAt <= Date.now() + 301_000, `run_at ${delayed.run_at} is five minutes away`);
    const seconds = await ok(client, 'submit_job', { instructions: 'Soon', agent_name: 'nobody', delay: 90 });
    assert.ok(Date.parse(seconds.run_at) >= before + 89_000);
    const delayedStatus = await ok(client, 'get_job_status', { job_id: delayed.job_id });
    assert.equal(delayedStatus.run_at, delayed.run_at);
    assert.equal((await ok(client, 'get_jobs', { status: 'pending' })).count, 2);
  });

  it('answers bad arguments, unknown jobs and library refusals with tool errors that name the parameter, and keeps serving', async (t) => {
    const db = freshDb();
    const { client, transport } = await connect(t, db);
    const pid = transport.pid;

    const nothing = await refused(client, 'submit_job', {});
    assert.match(nothing, /^Invalid arguments: instructions is required; agent_name is required\. Nothing was done\.$/);
    assert.match(await refused(client, 'submit_job', { instructions: 'x' }), /agent_name is required/);
    assert.match(await refused(client, 'submit_job', { agent_name: 'echo' }), /instructions is required/);
    assert.match(await refused(client, 'submit_job', { instructions: '', agent_name: 'echo' }), /instructions must not be empty/);
    assert.match(await refused(client, 'submit_job', { instructions: 'x', agent_name: 42 }), /agent_name must be a string/);
    assert.match(
      await refused(client, 'submit_job', { instructions: 'x', agent: 'echo' }),
      /"agent" is not a parameter of this tool \(its parameters: instructions, agent_name, /,
    );
    assert.match(await refused(client, 'submit_job', { instructions: 'x', agent_name: 'echo', priority: 1.5 }), /priority must be a whole number/);
    assert.match(await refused(client, 'submit_job', { instructions: 'x', agent_name: 'echo', delay: 'soon' }), /delay must be a number of seconds or a duration such as "30s"/);
    assert.match(await refused(client, 'submit_job', { instructions: 'x', agent_name: 'echo', delay: -5 }), /delay must be at least 0/);
    assert.match(await refused(client, 'submit_job', { instructions: 'x', agent_name: 'echo', metadata: [1] }), /metadata must be a JSON object/);
    assert.match(await refused(client, 'submit_job', { instructions: 'x', agent_name: 'echo', depends_on: 'abc' }), /depends_on must be a list of job ids/);
    assert.match(await refused(client, 'submit_job', { instructions: 'x', agent_name: 'echo', depends_on: ['NOSUCHJOB'] }), /^depends_on\[0\]: job NOSUCHJOB not found/);
    // Refused by the library, named as the tool's parameter.
    assert.match(await refused(client, 'submit_job', { instructions: 'x', agent_name: 'bad\u0007name' }), /^agent_name: must not contain control characters$/);

    assert.match(await refused(client, 'get_job_status', {}), /job_id is required/);
    assert.match(await refused(client, 'get_job_status', { job_id: 'NOSUCHJOB' }), /^job_id: job NOSUCHJOB not found; get_jobs lists the jobs there are$/);
    assert.match(await refused(client, 'wait_for_job', { job_id: 'NOSUCHJOB' }), /^job_id: job NOSUCHJOB not found/);
    assert.match(await refused(client, 'wait_for_job', { job_id: 'x', timeout_seconds: 0 }), /timeout_seconds must be more than 0/);
    assert.match(await refused(client, 'get_job_logs', { job_id: 'NOSUCHJOB' }), /^job_id: job NOSUCHJOB not found/);
    assert.match(await refused(client, 'get_job_logs', { job_id: 'x', limit: 501 }), /limit must be at most 500/);
    assert.match(await refused(client, 'cancel_job', { job_id: 'NOSUCHJOB' }), /^job_id: job NOSUCHJOB not found/);
    assert.match(await refused(client, 'get_jobs', { status: 'bogus' }), /^status: unknown status bogus; use one of blocked, pending/);
    assert.match(await refused(client, 'get_jobs', { limit: 0 }), /limit must be at least 1/);
    assert.match(await refused(client, 'cleanup_jobs', { status: 'running' }), /status must be completed, failed or cancelled/);
    assert.match(await refused(client, 'cleanup_jobs', { older_than_days: -1 }), /older_than_days must be at least 0/);
    assert.match(await refused(client, 'no_such_tool', {}), /There is no tool no_such_tool; the tools are submit_job, /);

    // Two jobs submitted together share the first characters of their ids: a prefix of those is ambiguous.
    const a = await ok(client, 'submit_job', { instructions: 'one', agent_name: 'echo' });
    const b = await ok(client, 'submit_job', { instructions: 'two', agent_name: 'echo' });
    let shared = 0;
    while (a.job_id[shared] === b.job_id[shared]) shared++;
    assert.ok(shared > 0, 'ids made a moment apart share their first characters (the time)');
    assert.match(await refused(client, 'get_job_status', { job_id: a.job_id.slice(0, shared) }), /^job_id: id prefix \S+ matches 2 jobs .*give more characters/);

    // Still serving, and nothing was stored from the refused calls.
    assert.equal(transport.pid, pid);
    const listed = await ok(client, 'get_jobs', {});
    assert.deepEqual(listed.jobs.map((j: any) => j.id).sort(), [a.job_id, b.job_id].sort());
  });

  it('stops when its standard input closes or on SIGTERM, also in the middle of a wait, and says how to configure it', async (t) => {
    const db = freshDb();
    const closed = start(db, ['mcp']); // standard input is /dev/null: it ends at once
    const exit = await closed.exited;
    assert.equal(exit.code, 0, exit.stderr);
    assert.match(exit.stderr, /standard input closed — stopping/);
    assert.equal(exit.stdout, '', 'nothing but the protocol goes to standard output');

    const { client, transport } = await connect(t, db);
    const job = await ok(client, 'submit_job', { instructions: 'x', agent_name: 'nobody' });
    const heard: Progress[] = [];
    const waiting = client
      .callTool({ name: 'wait_for_job', arguments: { job_id: job.job_id, timeout_seconds: 600 } }, undefined, { onprogress: (p) => heard.push(p), timeout: 600_000 })
      .then(
        () => 'answered',
        (error: Error) => error.message,
      );
    await waitFor(() => heard.length > 0, { what: 'the wait to have started' });
    const pid = transport.pid!;
    process.kill(pid, 'SIGTERM');
    assert.match(await waiting, /Connection closed/);
    await waitFor(
      () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      },
      { what: 'the MCP server to exit' },
    );

    // Exit code and message on SIGTERM, with standard input still open.
    const child = spawn(process.execPath, [BIN, '--db', db, 'mcp'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    await waitFor(() => /serving 9 tools/.test(stderr), { what: 'the MCP server to start' });
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /SIGTERM received — stopping/);

    const help = await agentq(db, ['mcp', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /"mcpServers": \{ "agentq": \{ "command": "agentq", "args": \["mcp", "--db"/);
    for (const name of TOOL_NAMES) assert.match(help.stdout, new RegExp(`^  ${name} `, 'm'));
  });
});
