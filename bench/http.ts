/**
 * HTTP figures on SQLite: submits/s and GET /jobs/{id}/s with 50 concurrent
 * keep-alive clients, and their latency. The server runs in this process,
 * as `agentq serve` runs it; the clients run in another process
 * (http-clients.ts), over loopback.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Queue, startHttpServer } from '../src/index.ts';

export interface HttpBenchOptions {
  url: string;
  n: (count: number) => number;
  record: (name: string, value: number, unit: string, digits?: number) => void;
}

interface Phase {
  label: string;
  count: number;
  seconds: number;
  latencies: number[];
}

const clientsScript = fileURLToPath(new URL('./http-clients.ts', import.meta.url));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export async function benchHttp({ url, n, record }: HttpBenchOptions): Promise<void> {
  const queue = await Queue.open(url);
  await queue.users.add('bench', { admin: true });
  const { token } = await queue.users.issueToken('bench');
  const server = await startHttpServer(queue, { port: 0 });
  try {
    const child = fork(clientsScript, [], {
      env: { ...process.env, AGENTQ_BENCH_HTTP: JSON.stringify({ url: server.url, token, posts: n(20_000), gets: n(20_000) }) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const phases: Phase[] = [];
    // 'close' comes after the last message is in, whatever the order of exit and IPC.
    const code = await new Promise<number | null>((resolve) => {
      child.on('message', (m) => phases.push(m as Phase));
      child.once('close', resolve);
    });
    if (code !== 0 || phases.length !== 2) throw new Error(`the HTTP bench clients exited with ${code} after ${phases.length} phases`);
    for (const { label, count, seconds, latencies } of phases) {
      latencies.sort((a, b) => a - b);
      record(`sqlite http: ${label}/s, 50 keep-alive clients`, count / seconds, '/s');
      record(`sqlite http: ${label} latency p50`, percentile(latencies, 50), 'ms', 2);
      record(`sqlite http: ${label} latency p99`, percentile(latencies, 99), 'ms', 2);
    }
  } finally {
    await server.close();
    await queue.close();
  }
}
