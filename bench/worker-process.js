/**
 * A worker process for the benchmarks, running the built package (dist/) as
 * an installed agentq runs, so that its memory is what users see (loading
 * TypeScript sources directly costs some 30 MB more). Config in
 * AGENTQ_BENCH_WORKER (JSON): `{db, agent, concurrency, mode}`; mode `noop`
 * returns at once, `latency` also reports, per job, the time from its submit
 * (payload.t, in ms on the shared wall clock) to the handler's start, on
 * stdout as `lat <ms> ...`. It says `ready` once connected and starts its
 * worker on `go`.
 */
import { openQueue, Worker } from '../dist/index.js';

const config = JSON.parse(process.env.AGENTQ_BENCH_WORKER ?? '{}');
const wallNow = () => performance.timeOrigin + performance.now();
const queue = await openQueue(config.db);
const samples = [];
const worker = new Worker(queue, {
  handlers: {
    [config.agent]:
      config.mode === 'latency'
        ? (job) => {
            samples.push(wallNow() - job.payload.t);
            if (samples.length >= 20) process.stdout.write(`lat ${samples.splice(0).join(' ')}\n`);
            return null;
          }
        : () => null,
  },
  concurrency: config.concurrency,
  ...(config.prefetch != null ? { prefetch: config.prefetch } : {}),
  pollIntervalMs: 1000,
});
process.on('message', async (msg) => {
  // Loaded and connected: the parent starts every worker at once, and its clock with them.
  if (msg === 'go') await worker.start();
  if (msg === 'flush') {
    process.stdout.write(`lat ${samples.splice(0).join(' ')}\n`);
  } else if (msg === 'rss') {
    process.send(process.memoryUsage());
  } else if (msg === 'stop') {
    await worker.stop();
    await queue.close();
    process.exit(0);
  }
});
process.send('ready');
