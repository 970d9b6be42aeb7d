/**
 * A worker process for the PostgreSQL benchmarks. Config in
 * AGENTQ_BENCH_WORKER (JSON): `{url, agent, concurrency, mode}`. It tells its
 * parent over IPC how many jobs it finished (`{done}`, every 250 and when
 * idle), and in `latency` mode, per job, the time from its submit (payload.t,
 * ms on the shared wall clock) to the handler's start (`{lat}`). It says
 * `ready` once connected and starts its worker on `go`.
 */
import { openQueue, Worker } from '../src/index.ts';

const config = JSON.parse(process.env.AGENTQ_BENCH_WORKER ?? '{}') as {
  url: string;
  agent: string;
  concurrency: number;
  mode: 'noop' | 'latency';
};
const wallNow = () => performance.timeOrigin + performance.now();
const queue = await openQueue(config.url);
let done = 0;
let reported = 0;
const report = () => {
  if (done !== reported) {
    reported = done;
    process.send!({ done });
  }
};
const worker = new Worker(queue, {
  handlers: {
    [config.agent]:
      config.mode === 'latency'
        ? (job) => {
            process.send!({ lat: wallNow() - (job.payload as { t: number }).t });
            return null;
          }
        : () => null,
  },
  concurrency: config.concurrency,
  pollIntervalMs: 1000,
});
worker.on('job:complete', () => {
  if (++done - reported >= 250) report();
});
worker.on('error', (error) => console.error('bench worker error', error));
setInterval(report, 20).unref();
process.on('message', async (msg) => {
  // Loaded and connected: the parent starts every worker at once, and its clock with them.
  if (msg === 'go') await worker.start();
  if (msg === 'stop') {
    await worker.stop();
    await queue.close();
    process.exit(0);
  }
});
process.send!('ready');
