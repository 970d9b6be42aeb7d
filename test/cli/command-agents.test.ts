/**
 * Command agents through the real binary: `agentq worker --agents FILE` and
 * `agentq serve --agents FILE` run commands as child processes; `agentq kill`
 * ends their process trees (at once with --force); bad files are refused.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../helpers/wait.ts';
import { agentq, agentqJson, freshDb, openQueue, start, submit, waitForJob } from './run.ts';

const FAST = ['--poll-interval', '100ms'];
const TREE = JSON.stringify(fileURLToPath(new URL('../fixtures/agents/tree.sh', import.meta.url)));
const EXAMPLE = fileURLToPath(new URL('../../examples/agents.yaml', import.meta.url));

/** Whether a process is still alive (a zombie waiting to be reaped is not). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]);
  } catch {
    return process.platform !== 'linux';
  }
}

async function treePids(file: string): Promise<number[]> {
  const text = await waitFor(() => (existsSync(file) ? readFileSync(file, 'utf8').trim() : ''), { what: `pid file ${file}` });
  return text.split(/\s+/).map(Number);
}

function agentsFile(db: string, yaml: string): string {
  const file = join(dirname(db), 'agents.yaml');
  writeFileSync(file, yaml);
  return file;
}

const HOSTILE = `say "hi"; rm -rf / $(touch PWNED) \`touch PWNED2\`\nnext line`;

describe('agentq worker --agents, kill --force', { concurrency: true }, () => {
  it('runs command agents: arguments untouched, stdin JSON, logs, progress, result; per-agent concurrency and caps', async () => {
    const db = freshDb();
    const dir = dirname(db);
    const file = agentsFile(
      db,
      `
agents:
  args:
    command: [${JSON.stringify(process.execPath)}, -e, 'console.log("::progress 50 half way"); console.error("working"); console.log(JSON.stringify({argv: process.argv.slice(1), env: process.env.TOPIC}))', '{instructions}', '{payload.n}']
    env: { TOPIC: '{payload.topic}' }
  stdin:
    stdin: json
    concurrency: 1
    maxConcurrency: 3
    command: [sh, -c, 'cat > "$AGENTQ_JOB_ID.json"; while [ ! -e go ]; do sleep 0.02; done; echo "::result {\\"read\\": $(wc -c < "$AGENTQ_JOB_ID.json")}"']
`,
    );
    const worker = start(db, ['worker', '--agents', file, ...FAST]);
    await worker.output(/serving/, 'the worker banner');
    assert.match(worker.stderr(), /serving echo, demo, args, stdin \(concurrency 11 in all: echo, demo, args 10; stdin 1\)/);

    const id = await submit(db, ['-a', 'args', '--instructions', HOSTILE, '--payload', '{"n": 7, "topic": "$(id)"}']);
    const done = await waitForJob(db, id, (j) => j.status === 'completed', 'the args job to complete');
    assert.deepEqual(done.result, { argv: [HOSTILE, '7'], env: '$(id)' });
    assert.equal(done.progressMessage, 'half way');
    for (const f of ['PWNED', 'PWNED2']) assert.equal(existsSync(join(dir, f)), false);
    const logs = await agentqJson(db, ['logs', id]);
    assert.deepEqual(
      logs.map((l: { level: string; message: string }) => [l.level, l.message.slice(0, 8)]).sort(),
      [
        ['info', '{"argv":'],
        ['warn', 'working'],
      ],
    );

    // `stdin` has one slot of its own: of two jobs, one runs and one waits, though the worker has more.
    const a = await submit(db, ['-a', 'stdin', '--payload', '{"x": 1}']);
    const b = await submit(db, ['-a', 'stdin', '--payload', '{"x": 2}']);
    await waitFor(async () => (await agentqJson(db, ['jobs', '-a', 'stdin', '-s', 'running'])).jobs.length === 1, { what: 'one stdin job running' });
    await waitFor(() => existsSync(join(dir, `${a}.json`)) || existsSync(join(dir, `${b}.json`)), { what: 'the job on stdin' });
    assert.equal((await agentqJson(db, ['jobs', '-a', 'stdin', '-s', 'pending'])).jobs.length, 1);
    const first = existsSync(join(dir, `${a}.json`)) ? a : b;
    assert.equal(JSON.parse(readFileSync(join(dir, `${first}.json`), 'utf8')).id, first);
    const queue = await openQueue(db);
    assert.deepEqual(await queue.store.agentConcurrency(), { stdin: 3 });
    writeFileSync(join(dir, 'go'), '');
    for (const j of [a, b]) {
      const finished = await waitForJob(db, j, (x) => x.status === 'completed', `stdin job ${j}`);
      assert.equal(typeof finished.result.read, 'number');
      assert.ok(finished.result.read > 100);
    }

    worker.child.kill('SIGTERM');
    assert.equal((await worker.exited).code, 0);
  });

  it('kill --force ends a process tree with SIGKILL at once; kill without it waits the grace period', async () => {
    const db = freshDb();
    const dir = dirname(db);
    const file = agentsFile(
      db,
      `
agents:
  stubborn:
    command: [sh, ${TREE}, '{payload.pids}', stubborn]
    killGrace: 60s
  polite:
    command: [sh, ${TREE}, '{payload.pids}', stubborn]
    killGrace: 300ms
`,
    );
    const worker = start(db, ['worker', '--agents', file, ...FAST]);
    await worker.output(/serving/, 'the worker banner');

    const forced = await submit(db, ['-a', 'stubborn', '--payload', JSON.stringify({ pids: join(dir, 'forced') })]);
    const forcedPids = await treePids(join(dir, 'forced'));
    assert.ok(forcedPids.every(alive));
    const killed = await agentqJson(db, ['kill', forced, '--force']);
    assert.equal(killed.error.force, true);
    // Far sooner than the 60 s grace period: SIGKILL went out at once.
    await waitFor(() => forcedPids.every((pid) => !alive(pid)), { timeoutMs: 5000, what: 'the forced tree to be gone' });

    const polite = await submit(db, ['-a', 'polite', '--payload', JSON.stringify({ pids: join(dir, 'polite') })]);
    const politePids = await treePids(join(dir, 'polite'));
    const r = await agentq(db, ['kill', polite]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(() => politePids.every((pid) => !alive(pid)), { timeoutMs: 5000, what: 'the killed tree to be gone' });
    assert.equal((await agentqJson(db, ['info', polite])).status, 'cancelled');

    worker.child.kill('SIGTERM');
    assert.equal((await worker.exited).code, 0);
  });

  it('a stopping worker ends running commands and hands their jobs back; no process outlives it', async () => {
    const db = freshDb();
    const dir = dirname(db);
    const file = agentsFile(db, `agents:\n  tree:\n    command: [sh, ${TREE}, '{payload.pids}', stubborn]\n    killGrace: 200ms\n`);
    const worker = start(db, ['worker', '--agents', file, '--grace', '100ms', ...FAST]);
    await worker.output(/serving/, 'the worker banner');
    const id = await submit(db, ['-a', 'tree', '--payload', JSON.stringify({ pids: join(dir, 'pids') })]);
    const pids = await treePids(join(dir, 'pids'));
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;
    assert.equal(exit.code, 0, exit.stderr);
    // The worker waited for its commands to end before it exited.
    assert.deepEqual(pids.filter(alive), []);
    const job = await agentqJson(db, ['info', id]);
    assert.equal(job.status, 'pending', 'handed back, to run again');
  });

  it('the example agents file runs its shell and script agents', async () => {
    const db = freshDb();
    const worker = start(db, ['worker', '--agents', EXAMPLE, '--agent', 'wordcount', 'summarize', ...FAST]);
    await worker.output(/serving/, 'the worker banner');
    const wc = await submit(db, ['-a', 'wordcount', '--instructions', 'one "two" $(three) ; four']);
    const text = 'Queues hold jobs. Workers claim jobs from queues and run them. The weather was nice. Jobs that fail are retried by workers.';
    const sum = await submit(db, ['-a', 'summarize', '--payload', JSON.stringify({ text, sentences: 1 })]);
    const doneWc = await waitForJob(db, wc, (j) => j.status === 'completed' || j.status === 'failed', 'wordcount');
    assert.equal(doneWc.result, 5, JSON.stringify(doneWc.error));
    const doneSum = await waitForJob(db, sum, (j) => j.status === 'completed' || j.status === 'failed', 'summarize');
    assert.equal(doneSum.status, 'completed', JSON.stringify(doneSum.error));
    assert.equal(doneSum.result.sentences, 4);
    assert.equal(typeof doneSum.result.summary, 'string');
    assert.ok(doneSum.result.keywords.includes('jobs'));
    worker.child.kill('SIGTERM');
    assert.equal((await worker.exited).code, 0);
  });

  it('serve --agents runs command agents beside the demo agents', async () => {
    const db = freshDb();
    const file = agentsFile(db, `agents:\n  shout:\n    shell: true\n    command: ['printf "%s!" "$1" | tr a-z A-Z', '{instructions}']\n`);
    const server = start(db, ['serve', '--agents', file]);
    // The banner is written line by line: wait for the line that is checked.
    await server.output(/agents\s+echo, demo, shout/, 'the serve banner, to its agents line');
    assert.match(server.stdout(), /is running/);
    const r = await agentq(db, ['submit', '-a', 'shout', '--instructions', "it's $(late)", '--wait', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).result, "IT'S $(LATE)!");
    server.child.kill('SIGTERM');
    assert.equal((await server.exited).code, 0);
  });

  it('refuses a bad agents file with exit 2, naming the agent and the field, and runs nothing', async () => {
    const db = freshDb();
    const file = agentsFile(db, 'agents:\n  good:\n    command: [echo, hi]\n  research:\n    command: [llm, "{instructions}"]\n    timeout: later\n');
    for (const command of ['worker', 'serve']) {
      const r = await agentq(db, [command, '--agents', file]);
      assert.equal(r.code, 2, `${command}: ${r.stderr}`);
      assert.match(r.stderr, /agentq: --agents .*agents\.yaml: agent research: timeout: expected a duration/);
      assert.doesNotMatch(r.stdout + r.stderr, /serving|is running/);
    }
    const missing = await agentq(db, ['worker', '--agents', join(dirname(db), 'nope.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read .*nope\.yaml: no such file/);
    const unknownField = agentsFile(db, 'agents:\n  x:\n    command: [echo]\n    concurrecny: 2\n');
    const r = await agentq(db, ['worker', '--agents', unknownField]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /agent x: concurrecny: is not a known field \(did you mean concurrency\?\)/);
  });
});
