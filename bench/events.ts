/**
 * Events delivered to a subscriber in another process (bench/event-subscriber.js,
 * on the built package): throughput and latency, for either engine.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Queue } from '../src/index.ts';

export interface EventsBenchOptions {
  /** `sqlite` or `postgres`: the figures' prefix. */
  label: string;
  url: string;
  /** Scales a count (smaller on a quick run). */
  n: (count: number) => number;
  record: (name: string, value: number, unit: string, digits?: number) => void;
}

const subscriberScript = fileURLToPath(new URL('./event-subscriber.js', import.meta.url));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export async function benchEvents({ label, url, n, record }: EventsBenchOptions): Promise<void> {
  const queue = await Queue.open(url);
  const child = fork(subscriberScript, [url], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise((resolve) => child.once('message', resolve));
  const report = () =>
    new Promise<{ count: number; delays: number[] }>((resolve) => {
      child.once('message', (m) => resolve(m as { count: number; delays: number[] }));
      child.send('report');
    });
  const wallNow = () => performance.timeOrigin + performance.now();
  try {
    // Throughput: publish as fast as one client can, until the other process has them all.
    const count = n(20_000);
    const start = performance.now();
    for (let i = 0; i < count; i++) await queue.events.publish({ type: 'bench.flood', payload: { t: wallNow() } });
    for (;;) {
      if ((await report()).count >= count) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    record(`${label}: events delivered/s to another process`, count / ((performance.now() - start) / 1000), '/s');
    // Latency: one event at a time, each after the previous one arrived.
    await report();
    const samples: number[] = [];
    for (let i = 0; i < n(1000); i++) {
      await queue.events.publish({ type: 'bench.ping', payload: { t: wallNow() } });
      let got: { count: number; delays: number[] };
      do {
        await new Promise((r) => setTimeout(r, 1));
        got = await report();
      } while (got.delays.length === 0);
      samples.push(...got.delays);
    }
    samples.sort((a, b) => a - b);
    record(`${label}: event delivery latency, other process, p50`, percentile(samples, 50), 'ms', 2);
    record(`${label}: event delivery latency, other process, p99`, percentile(samples, 99), 'ms', 2);
  } finally {
    child.send('stop');
    await new Promise((resolve) => child.once('exit', resolve));
    await queue.close();
  }
}
