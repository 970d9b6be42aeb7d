/**
 * Command agents in this process: an agents file loaded into handlers, run by
 * a real Worker on a real database, with real child processes (sh and node
 * scripts). Process trees are checked by pid: nothing may outlive its job.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  AgentsFileError,
  commandHandlers,
  loadAgentsFile,
  parseAgentsFile,
  Queue,
  Worker,
} from '../src/index.ts';
import { engines, freshQueue, tempDir } from './helpers/engines.ts';
import { waitFor } from './helpers/wait.ts';
import { finished } from './helpers/workers.ts';

const FIXTURES = fileURLToPath(new URL('./fixtures/agents/', import.meta.url));
const NODE = JSON.stringify(process.execPath);
const sqlite = engines.find((e) => e.name === 'sqlite')!;

/** Whether a process is still alive (a zombie waiting to be reaped is not). */
export function alive(pid: number): boolean {
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

/** Waits for a tree script's pid file: [its own pid, its grandchild's pid]. */
async function treePids(file: string): Promise<number[]> {
  const text = await waitFor(() => (existsSync(file) ? readFileSync(file, 'utf8').trim() : ''), { what: `pid file ${file}` });
  return text.split(/\s+/).map(Number);
}

async function assertAllGone(pids: number[], withinMs = 5000): Promise<void> {
  await waitFor(() => pids.every((pid) => !alive(pid)), { timeoutMs: withinMs, what: `processes ${pids.join(', ')} to be gone` });
}

async function setup(yaml: string, options: { concurrency?: number } = {}): Promise<{ queue: Queue; worker: Worker; dir: string }> {
  const dir = tempDir('agentq-agents-');
  const file = join(dir, 'agents.yaml');
  writeFileSync(file, yaml);
  const { queue } = await freshQueue(sqlite);
  const worker = new Worker(queue, {
    handlers: commandHandlers(loadAgentsFile(file)),
    pollIntervalMs: 50,
    concurrency: options.concurrency ?? 4,
  });
  worker.on('error', (e) => {
    throw e;
  });
  await worker.start();
  // Stop the worker after the test, before its queue closes.
  const { after } = await import('node:test');
  after(() => worker.stop({ graceMs: 0 }));
  return { queue, worker, dir };
}

const HOSTILE = `it's "quoted"; rm -rf / $(touch PWNED) \`touch PWNED2\` | cat & echo {payload.x} \\n\nsecond line\ttab $HOME`;

describe('command agents', { concurrency: true }, () => {
  it('passes instructions and payload fields as single, untouched arguments', async () => {
    const { queue, dir } = await setup(`
agents:
  argv:
    command: [${NODE}, -e, 'process.stdout.write(JSON.stringify(process.argv.slice(1)))', '{instructions}', '--topic={payload.topic}', '{payload.nested.n}', '{payload.list}', '{payload.missing?}', '{job.id}', '{job.attempt}', 'literal {{instructions}']
`);
    const job = await queue.submit({
      agent: 'argv',
      instructions: HOSTILE,
      payload: { topic: 'a b; $(touch PWNED3)', nested: { n: 7 }, list: [1, 'two'] },
    });
    const done = await finished(queue, job.id);
    assert.equal(done.status, 'completed', JSON.stringify(done.error));
    assert.deepEqual(done.result, [
      HOSTILE,
      '--topic=a b; $(touch PWNED3)',
      '7',
      '[1,"two"]',
      '',
      job.id,
      '1',
      'literal {instructions}',
    ]);
    for (const f of ['PWNED', 'PWNED2', 'PWNED3']) assert.equal(existsSync(join(dir, f)), false, `${f} must not exist`);
  });

  it('shell agents get job data as "$1" and variables, never spliced into the script', async () => {
    const { queue, dir } = await setup(`
agents:
  sh:
    shell: true
    command: ['printf "%s|%s|%s" "$1" "$AGENTQ_JOB_ID" "$TOPIC"', '{instructions}']
    env: { TOPIC: '{payload.topic}' }
`);
    const job = await queue.submit({ agent: 'sh', instructions: HOSTILE, payload: { topic: '$(touch PWNED4)' } });
    const done = await finished(queue, job.id);
    assert.equal(done.status, 'completed', JSON.stringify(done.error));
    assert.equal(done.result, `${HOSTILE}|${job.id}|$(touch PWNED4)`);
    for (const f of ['PWNED', 'PWNED2', 'PWNED4']) assert.equal(existsSync(join(dir, f)), false, `${f} must not exist`);
  });

  it('sends the job as JSON on stdin and takes a JSON stdout as the result', async () => {
    const { queue } = await setup(`
agents:
  stdin:
    stdin: json
    command: [${NODE}, -e, 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(JSON.stringify({id:j.id,payload:j.payload,instructions:j.instructions}))})']
  text:
    stdin: instructions
    command: [${NODE}, -e, 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log("got: "+s))']
`);
    const a = await queue.submit({ agent: 'stdin', instructions: 'line 1\nline "2"', payload: { n: [1, 2, { x: null }] } });
    const b = await queue.submit({ agent: 'text', instructions: 'hello\nworld' });
    const [doneA, doneB] = [await finished(queue, a.id), await finished(queue, b.id)];
    assert.deepEqual(doneA.result, { id: a.id, payload: { n: [1, 2, { x: null }] }, instructions: 'line 1\nline "2"' });
    assert.equal(doneB.result, 'got: hello\nworld');
  });

  it('streams output lines into the log and reports progress while the process runs', async () => {
    const { queue, dir } = await setup(`
agents:
  stream:
    command: [sh, ${JSON.stringify(join(FIXTURES, 'stream.sh'))}, '{payload.go}']
`);
    const go = join(dir, 'go');
    const job = await queue.submit({ agent: 'stream', payload: { go } });
    // Before the process may end: the lines are in the log and the progress is set.
    const mid = await waitFor(async () => {
      const j = await queue.get(job.id);
      const logs = await queue.logs(job.id);
      return j.progress === 40 && logs.length >= 3 ? { j, logs } : null;
    });
    assert.equal(mid.j.status, 'running');
    assert.equal(mid.j.progressMessage, 'fetching sources');
    assert.deepEqual(
      // stdout and stderr are two pipes: their lines keep their own order, not each other's.
      mid.logs.map((l) => [l.level, l.message]).sort(),
      [
        ['error', 'an error line'],
        ['info', 'first line'],
        ['warn', 'a warning'],
      ],
    );
    writeFileSync(go, '');
    const done = await finished(queue, job.id);
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.result, { done: true, lines: 2 });
    const logs = (await queue.logs(job.id)).map((l) => l.message);
    assert.ok(logs.includes('ignored text'));
    assert.ok(!logs.some((m) => m.startsWith('::')), 'protocol lines are not logged as output');
  });

  it('results: JSON when stdout is JSON, text otherwise; result: text keeps text', async () => {
    const { queue } = await setup(`
agents:
  json:
    command: [sh, -c, 'echo "{\\"a\\": [1, 2]}"']
  words:
    command: [sh, -c, 'echo "not json"; echo "two lines"']
  number-as-text:
    result: text
    command: [sh, -c, 'echo 42']
  nothing:
    command: ['true']
`);
    const ids = await Promise.all(['json', 'words', 'number-as-text', 'nothing'].map((agent) => queue.submit({ agent })));
    const results = [];
    for (const j of ids) results.push((await finished(queue, j.id)).result);
    assert.deepEqual(results, [{ a: [1, 2] }, 'not json\ntwo lines', '42', null]);
  });

  it('a non-zero exit fails the attempt with the tail of stderr, the exit code and the signal', async () => {
    const { queue } = await setup(`
agents:
  fails:
    command: [sh, -c, 'echo working; i=0; while [ $i -lt 30 ]; do echo "noise $i" >&2; i=$((i+1)); done; echo "the real reason" >&2; exit 3']
  capped:
    maxAttempts: 1
    command: [sh, -c, 'echo nope >&2; exit 1']
  missing:
    command: [/no/such/program-here, x]
`);
    const a = await queue.submit({ agent: 'fails', maxAttempts: 1 });
    const b = await queue.submit({ agent: 'capped', maxAttempts: 5 });
    const c = await queue.submit({ agent: 'missing', maxAttempts: 5 });
    const fa = await finished(queue, a.id);
    assert.equal(fa.status, 'failed');
    assert.match(fa.error!.message, /exited with code 3: [\s\S]*the real reason$/);
    assert.doesNotMatch(fa.error!.message, /noise 5\b/, 'only the tail of stderr');
    assert.equal(fa.error!.code, 'command_failed');
    assert.deepEqual((fa.error!.details as { exitCode: number }).exitCode, 3);
    assert.equal((fa.error!.details as { signal: null }).signal, null);
    // The agent's maxAttempts caps the job's.
    const fb = await finished(queue, b.id);
    assert.deepEqual([fb.status, fb.attempts], ['failed', 1]);
    const fc = await finished(queue, c.id);
    assert.deepEqual([fc.status, fc.attempts], ['failed', 1]);
    assert.match(fc.error!.message, /cannot start \/no\/such\/program-here: no such command/);
  });

  it('a timeout ends the whole process tree, even processes that ignore SIGTERM', async () => {
    const { queue, dir } = await setup(`
agents:
  slow:
    command: [sh, ${JSON.stringify(join(FIXTURES, 'tree.sh'))}, '{payload.pids}', stubborn]
    timeout: 1s
    killGrace: 200ms
    maxAttempts: 1
`);
    const pidfile = join(dir, 'pids');
    const job = await queue.submit({ agent: 'slow', payload: { pids: pidfile } });
    const pids = await treePids(pidfile);
    assert.ok(pids.every(alive));
    const done = await finished(queue, job.id);
    assert.equal(done.status, 'failed');
    assert.equal(done.error!.code, 'timeout');
    await assertAllGone(pids);
  });

  it("the job's own timeoutMs ends the tree too", async () => {
    const { queue, dir } = await setup(`
agents:
  slow:
    command: [sh, ${JSON.stringify(join(FIXTURES, 'tree.sh'))}, '{payload.pids}']
    killGrace: 200ms
`);
    const pidfile = join(dir, 'pids');
    const job = await queue.submit({ agent: 'slow', payload: { pids: pidfile }, timeoutMs: 1000, maxAttempts: 1 });
    const pids = await treePids(pidfile);
    const done = await finished(queue, job.id);
    assert.deepEqual([done.status, done.error!.code], ['failed', 'timeout']);
    await assertAllGone(pids);
  });

  it('cancel ends the tree: SIGTERM, then SIGKILL after the grace period', async () => {
    const { queue, dir } = await setup(`
agents:
  tree:
    command: [sh, ${JSON.stringify(join(FIXTURES, 'tree.sh'))}, '{payload.pids}', stubborn]
    killGrace: 300ms
`);
    const pidfile = join(dir, 'pids');
    const job = await queue.submit({ agent: 'tree', payload: { pids: pidfile } });
    const pids = await treePids(pidfile);
    const started = Date.now();
    await queue.cancel(job.id);
    // Both ignore SIGTERM: they live through the grace period, then SIGKILL ends them.
    await assertAllGone(pids);
    assert.ok(Date.now() - started >= 250, `ended after ${Date.now() - started} ms, before the grace period`);
    assert.equal((await queue.get(job.id)).status, 'cancelled');
  });

  it('a forced cancel sends SIGKILL at once, without the grace period', async () => {
    const { queue, dir } = await setup(`
agents:
  tree:
    command: [sh, ${JSON.stringify(join(FIXTURES, 'tree.sh'))}, '{payload.pids}', stubborn]
    killGrace: 60s
`);
    const pidfile = join(dir, 'pids');
    const job = await queue.submit({ agent: 'tree', payload: { pids: pidfile } });
    const pids = await treePids(pidfile);
    const cancelled = await queue.cancel(job.id, { force: true });
    assert.equal(cancelled.error?.force, true);
    await assertAllGone(pids, 3000);
  });

  it('processes left behind by a command that exited are ended too', async () => {
    const { queue, dir } = await setup(`
agents:
  leaves:
    command: [sh, ${JSON.stringify(join(FIXTURES, 'leftover.sh'))}, '{payload.pid}']
    killGrace: 5s
`);
    const pidfile = join(dir, 'pid');
    const job = await queue.submit({ agent: 'leaves', payload: { pid: pidfile } });
    const done = await finished(queue, job.id);
    assert.deepEqual([done.status, done.result], ['completed', 'done']);
    await assertAllGone(await treePids(pidfile));
  });

  it('a missing payload field fails the job at once, naming it', async () => {
    const { queue } = await setup(`
agents:
  needs:
    command: [echo, '{payload.topic}']
`);
    const job = await queue.submit({ agent: 'needs', payload: {}, maxAttempts: 3 });
    const done = await finished(queue, job.id);
    assert.deepEqual([done.status, done.attempts], ['failed', 1]);
    assert.match(done.error!.message, /needs payload\.topic/);
  });
});

describe('agents files', () => {
  const bad = (yaml: string, agent: string | null, field: RegExp, message: RegExp) => {
    assert.throws(
      () => parseAgentsFile(yaml, tempDir('agentq-agents-')),
      (error: unknown) => {
        assert.ok(error instanceof AgentsFileError, String(error));
        assert.equal(error.agent, agent);
        assert.match(error.field, field);
        assert.match(error.message, message);
        return true;
      },
    );
  };

  it('refuses bad files, naming the agent and the field', () => {
    bad('agents:\n  a:\n    command: [x]\n    timeout: soon\n', 'a', /^agents\.a\.timeout$/, /^agent a: timeout: expected a duration/);
    bad('agents:\n  b:\n    command: [x]\n    concurrency: 0\n', 'b', /^agents\.b\.concurrency$/, /agent b: concurrency: must be at least 1/);
    bad('agents:\n  c:\n    comand: [x]\n', 'c', /^agents\.c\.comand$/, /agent c: comand: is not a known field \(did you mean command\?\)/);
    bad('agents:\n  d:\n    stdin: yes\n    command: [x]\n', 'd', /^agents\.d\.stdin$/, /expected none, json or instructions/);
    bad('agents:\n  e:\n    command: [x, "{nope}"]\n', 'e', /^agents\.e\.command\.1$/, /unknown placeholder \{nope\}/);
    bad('agents:\n  f:\n    command: [x, "{job.secret}"]\n', 'f', /^agents\.f\.command\.1$/, /unknown placeholder \{job\.secret\}/);
    bad('agents:\n  g:\n    command: llm --prompt hi\n', 'g', /^agents\.g\.command$/, /give a list of arguments/);
    bad('agents:\n  h:\n    shell: true\n    command: echo {instructions}\n', 'h', /^agents\.h\.command\.0$/, /would not be replaced/);
    bad('agents:\n  i:\n    command: [x]\n    cwd: ./no-such-dir\n', 'i', /^agents\.i\.cwd$/, /is not a directory/);
    bad('agents:\n  j:\n    timeout: 5s\n', 'j', /^agents\.j\.command$/, /command: is required/);
    bad('agents:\n  k:\n    command: [x]\n    env: { 1BAD: x }\n', 'k', /^agents\.k\.env\.1BAD$/, /not a valid environment variable name/);
    bad('agents: [a, b]\n', null, /^agents$/, /expected a mapping of agent names/);
    bad('agent:\n  x: {}\n', null, /^agent$/, /not a known top-level key/);
    bad('agents:\n  a: [\n', null, /^file$/, /not valid YAML/);
    bad('agents:\n  a:\n    command: [x]\n  a:\n    command: [y]\n', null, /^file$/, /not valid YAML/);
  });

  it('reads durations, sizes and defaults; a shell script may use ${VAR}', () => {
    const dir = tempDir('agentq-agents-');
    const [a, b] = parseAgentsFile(
      'agents:\n  a:\n    command: [x]\n  b:\n    shell: true\n    command: \'echo "${HOME}" "$1"\'\n    timeout: 1m30s\n    killGrace: 0\n    maxOutput: 64KB\n    cwd: .\n    concurrency: 2\n    maxConcurrency: 3\n',
      dir,
    );
    assert.deepEqual(
      [a.stdin, a.shell, a.cwd, a.timeoutMs, a.killGraceMs, a.concurrency, a.maxConcurrency, a.maxAttempts, a.result],
      ['none', false, dir, null, 5000, null, null, null, 'auto'],
    );
    assert.deepEqual([b.timeoutMs, b.killGraceMs, b.maxOutputBytes, b.concurrency, b.maxConcurrency], [90_000, 0, 65_536, 2, 3]);
  });

  it('the example agents file loads', () => {
    const agents = loadAgentsFile(fileURLToPath(new URL('../examples/agents.yaml', import.meta.url)));
    assert.ok(agents.length >= 3);
  });
});
