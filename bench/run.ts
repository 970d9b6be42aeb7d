/**
 * `npm run bench`: the figures the issues ask for, measured on this machine.
 * Timing is never asserted in tests; it is printed here.
 *
 *   npm run bench               all figures
 *   npm run bench -- --quick    smaller counts (a smoke run)
 *   npm run bench -- --json     one JSON object on stdout
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { Queue, Worker } from '../src/index.ts';
import { youngGeneration } from '../bin/young-generation.js';
import { benchEvents } from './events.ts';
import { benchHttp } from './http.ts';

const quick = process.argv.includes('--quick');
const asJson = process.argv.includes('--json');
const scale = quick ? 0.1 : 1;
const n = (count: number) => Math.max(100, Math.round(count * scale));

const root = mkdtempSync(join(tmpdir(), 'agentq-bench-'));
let dbCount = 0;
const freshDb = () => join(root, `bench-${++dbCount}.db`);
const results: Record<string, number | string> = {};
const say = (line: string) => {
  if (!asJson) console.log(line);
};

function record(name: string, value: number, unit: string, digits = 0): void {
  results[name] = Number(value.toFixed(digits));
  say(`  ${name.padEnd(72)} ${value.toLocaleString('en-US', { maximumFractionDigits: digits }).padStart(12)} ${unit}`);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const value = await fn();
  return [value, performance.now() - start];
}

async function until(check: () => Promise<boolean>, intervalMs = 2): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, intervalMs));
}

const workerScript = fileURLToPath(new URL('./worker-process.js', import.meta.url));

/** Worker processes run the built package, as users' do: build it first. */
function build(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], {
    stdio: 'inherit',
  });
}

function startWorkerProcess(config: Record<string, unknown>, execArgv: string[] = []): Promise<ChildProcess> {
  const child = fork(workerScript, [], {
    execArgv,
    env: { ...process.env, AGENTQ_BENCH_WORKER: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (m) => (m === 'ready' ? resolve(child) : reject(new Error(String(m)))));
    child.once('exit', (code) => reject(new Error(`bench worker exited with ${code}`)));
  });
}

function stopWorkerProcess(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.send('stop');
  });
}

function rssOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve((m as { rss: number }).rss));
    child.send('rss');
  });
}

// ---- the engine's own ceiling, for scale -----------------------------------------------------

function engineCeiling(): void {
  const db = new DatabaseSync(freshDb());
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
  const count = n(50_000);
  const start = performance.now();
  for (let i = 0; i < count; i++) insert.run('x');
  record('sqlite: single-row commits/s (engine ceiling)', count / ((performance.now() - start) / 1000), '/s');
  db.close();
}

// ---- submits ---------------------------------------------------------------------------------

async function submits(): Promise<void> {
  const queue = await Queue.open(freshDb());
  const single = n(30_000);
  const [, ms] = await timed(async () => {
    for (let i = 0; i < single; i++) await queue.submit({ agent: 'bench', payload: { i } });
  });
  record('sqlite: submits/s, one at a time', single / (ms / 1000), '/s');

  const batches = quick ? 10 : 100;
  const size = 1000;
  const [, batchMs] = await timed(async () => {
    for (let b = 0; b < batches; b++) {
      await queue.submitMany(Array.from({ length: size }, (_, i) => ({ agent: 'bench', payload: { i } })));
    }
  });
  record('sqlite: submits/s, batches of 1,000', (batches * size) / (batchMs / 1000), '/s');
  await queue.close();
}

// ---- throughput --------------------------------------------------------------------------------

async function fill(queue: Queue, agent: string, count: number): Promise<void> {
  for (let done = 0; done < count; done += 5000) {
    await queue.submitMany(Array.from({ length: Math.min(5000, count - done) }, () => ({ agent })));
  }
}

/** A short run first, so the figure is a running worker's, not the JIT's warm-up. */
let warmedUp = false;
async function warmUp(): Promise<void> {
  if (warmedUp) return;
  warmedUp = true;
  const queue = await Queue.open(freshDb());
  await fill(queue, 'noop', 5000);
  const worker = new Worker(queue, { handlers: { noop: () => null }, concurrency: 32 });
  let completed = 0;
  const done = new Promise<void>((r) => worker.on('job:complete', () => ++completed === 5000 && r()));
  await worker.start();
  await done;
  await worker.stop();
  await queue.close();
}

async function throughputInProcess(options: { rateLimited?: boolean } = {}): Promise<void> {
  await warmUp();
  const queue = await Queue.open(freshDb());
  const count = n(100_000);
  // A limit that never binds: every start still takes its slot in the window.
  if (options.rateLimited) await queue.limits.setRateLimit('agent:noop', { max: 1_000_000, per: '1s' });
  await fill(queue, 'noop', count);
  let completed = 0;
  const worker = new Worker(queue, { handlers: { noop: () => null }, concurrency: 32 });
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  worker.on('job:complete', () => {
    if (++completed === count) finish();
  });
  const start = performance.now();
  await worker.start();
  await done;
  const ms = performance.now() - start;
  record(
    options.rateLimited ? 'sqlite: no-op jobs/s, concurrency 32, with a rate limit that never binds' : 'sqlite: no-op jobs/s, 1 worker, concurrency 32',
    count / (ms / 1000),
    '/s',
  );
  await worker.stop();
  await queue.close();
}

/** The V8 flags the agentq command runs its worker, serve and scheduler processes with on SQLite. */
const AGENTQ_WORKER_FLAGS = [youngGeneration('agentq.db')];

async function throughputProcesses(processes: number, execArgv: string[] = AGENTQ_WORKER_FLAGS): Promise<number> {
  const db = freshDb();
  const queue = await Queue.open(db);
  const count = n(100_000);
  await fill(queue, 'noop', count);
  const children = await Promise.all(
    Array.from({ length: processes }, () => startWorkerProcess({ db, agent: 'noop', concurrency: 32, mode: 'noop' }, execArgv)),
  );
  // The backlog is there and every process is up: the clock runs from their start.
  const start = performance.now();
  for (const child of children) child.send('go');
  await until(async () => (await queue.stats()).byStatus.completed === count, 20);
  const ms = performance.now() - start;
  const flags = execArgv === AGENTQ_WORKER_FLAGS ? '' : ` (${execArgv.join(' ') || 'no V8 flags'})`;
  record(`sqlite: no-op jobs/s, ${processes} worker process${processes > 1 ? 'es' : ''}, concurrency 32 each${flags}`, count / (ms / 1000), '/s');
  const rss = Math.max(...(await Promise.all(children.map(rssOf))));
  await Promise.all(children.map(stopWorkerProcess));
  await queue.close();
  return rss;
}

// ---- latency -----------------------------------------------------------------------------------

async function latencyInProcess(): Promise<void> {
  const queue = await Queue.open(freshDb());
  const samples: number[] = [];
  let started: (() => void) | undefined;
  let submittedAt = 0;
  const worker = new Worker(queue, {
    handlers: {
      lat: () => {
        samples.push(performance.now() - submittedAt);
        started?.();
        return null;
      },
    },
    concurrency: 32,
  });
  await worker.start();
  const count = n(2000);
  for (let i = 0; i < count; i++) {
    const running = new Promise<void>((r) => (started = r));
    submittedAt = performance.now();
    await queue.submit({ agent: 'lat' });
    await running;
  }
  samples.sort((a, b) => a - b);
  record('sqlite: submit→start latency, same process, p50', percentile(samples, 50), 'ms', 2);
  record('sqlite: submit→start latency, same process, p99', percentile(samples, 99), 'ms', 2);
  await worker.stop();
  await queue.close();
}

async function latencyCrossProcess(): Promise<void> {
  const db = freshDb();
  const queue = await Queue.open(db);
  const child = await startWorkerProcess({ db, agent: 'lat', concurrency: 32, mode: 'latency' });
  child.send('go');
  const samples: number[] = [];
  let buffer = '';
  child.stdout!.on('data', (d) => {
    buffer += d;
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.startsWith('lat ')) samples.push(...line.slice(4).split(' ').filter(Boolean).map(Number));
    }
  });
  const count = n(2000);
  const wallNow = () => performance.timeOrigin + performance.now();
  // One job at a time, each after the previous one started, with a small random gap so
  // that the submit does not line up with the worker's own activity.
  for (let i = 0; i < count; i++) {
    await queue.submit({ agent: 'lat', payload: { t: wallNow() } });
    const target = i + 1;
    await until(async () => (await queue.stats()).byStatus.completed >= target, 1);
    await new Promise((r) => setTimeout(r, Math.random() * 3));
  }
  child.send('flush');
  await until(async () => samples.length >= count, 5);
  samples.sort((a, b) => a - b);
  record('sqlite: submit→start latency, other process, p50', percentile(samples, 50), 'ms', 2);
  record('sqlite: submit→start latency, other process, p99', percentile(samples, 99), 'ms', 2);
  await stopWorkerProcess(child);
  await queue.close();
}

// ---- claim time with a large history ------------------------------------------------------------

async function claimTime(history: number): Promise<number> {
  const db = freshDb();
  const queue = await Queue.open(db);
  if (history > 0) {
    // A million finished jobs, written straight into the table the way history accumulates.
    const raw = new DatabaseSync(db);
    raw.exec(`
      WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ${history})
      INSERT INTO jobs (id, agent, type, instructions, payload, metadata, tags, priority, status, attempts,
        max_attempts, backoff, run_at, depends_on, created_at, updated_at, started_at, finished_at, result, progress)
      SELECT printf('00HIST%020d', i), CASE i % 3 WHEN 0 THEN 'claim' ELSE 'other' END, 'default', '', 'null', '{}', '[]',
        0, CASE i % 10 WHEN 0 THEN 'failed' ELSE 'completed' END, 1, 3, '{}', 0, '[]', 0, 0, 0, 1, 'null', 100
      FROM seq;
      ANALYZE;`);
    raw.close();
  }
  const rounds = n(3000);
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    await queue.submit({ agent: 'claim' });
    const start = performance.now();
    const jobs = await queue.store.claimJobs({ workerId: 'bench', agents: ['claim'], limit: 1, leaseMs: 30_000 });
    times.push(performance.now() - start);
    if (jobs.length !== 1) throw new Error('claim found nothing');
  }
  times.sort((a, b) => a - b);
  await queue.close();
  return percentile(times, 50);
}

// ---- run ---------------------------------------------------------------------------------------

say(`agentq bench — node ${process.version}, ${quick ? 'quick run' : 'full run'}`);
build();
try {
  engineCeiling();
  await submits();
  await throughputInProcess();
  await throughputInProcess({ rateLimited: true });
  await throughputProcesses(1);
  const rss = await throughputProcesses(2);
  record('sqlite: worker process RSS after the run (as agentq worker runs it)', rss / 1024 / 1024, 'MB', 1);
  // Without the flag agentq's command sets, V8 sizes the young generation by the
  // machine's memory (a library user's own process runs like this).
  const plainRss = await throughputProcesses(1, []);
  record('sqlite: worker process RSS, no V8 flags', plainRss / 1024 / 1024, 'MB', 1);
  await latencyInProcess();
  await latencyCrossProcess();
  await benchEvents({ label: 'sqlite', url: freshDb(), n, record });
  await benchHttp({ url: freshDb(), n, record });
  const empty = await claimTime(0);
  record('sqlite: claim time, empty table, p50', empty * 1000, 'µs');
  const history = quick ? 100_000 : 1_000_000;
  const full = await claimTime(history);
  record(`sqlite: claim time, ${history.toLocaleString('en-US')} finished jobs, p50`, full * 1000, 'µs');
  record('sqlite: claim time ratio, full / empty', full / empty, '×', 2);
} finally {
  rmSync(root, { recursive: true, force: true });
}
// The PostgreSQL figures (bench/postgres.ts, also runnable alone); `--sqlite` leaves them out.
if (!process.argv.includes('--sqlite')) {
  const { benchPostgres } = await import('./postgres.ts');
  await benchPostgres({ quick, record, say });
}
if (asJson) console.log(JSON.stringify(results, null, 2));
