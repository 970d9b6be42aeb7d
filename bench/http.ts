/**
 * HTTP figures on SQLite: submits/s and GET /jobs/{id}/s with 50 concurrent
 * keep-alive clients, and their latency. The server runs in this process,
 * as `agentq serve` runs it; the clients are fetch calls over loopback.
 */
import { Agent, request } from 'node:http';
import { Queue, startHttpServer } from '../src/index.ts';

export interface HttpBenchOptions {
  url: string;
  n: (count: number) => number;
  record: (name: string, value: number, unit: string, digits?: number) => void;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export async function benchHttp({ url, n, record }: HttpBenchOptions): Promise<void> {
  const queue = await Queue.open(url);
  await queue.users.add('bench', { admin: true });
  const { token } = await queue.users.issueToken('bench');
  const server = await startHttpServer(queue, { port: 0 });
  const agent = new Agent({ keepAlive: true, maxSockets: 50 });
  const send = (method: string, path: string, body?: string) =>
    new Promise<string>((resolve, reject) => {
      const req = request(
        `${server.url}${path}`,
        {
          method,
          agent,
          headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => (res.statusCode! < 300 ? resolve(text) : reject(new Error(`${res.statusCode} ${text}`))));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const run = async (label: string, count: number, one: (i: number) => Promise<unknown>) => {
    const latencies: number[] = [];
    let next = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < count) {
          const i = next++;
          const t = performance.now();
          await one(i);
          latencies.push(performance.now() - t);
        }
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    latencies.sort((a, b) => a - b);
    record(`sqlite http: ${label}/s, 50 keep-alive clients`, count / seconds, '/s');
    record(`sqlite http: ${label} latency p50`, percentile(latencies, 50), 'ms', 2);
    record(`sqlite http: ${label} latency p99`, percentile(latencies, 99), 'ms', 2);
  };
  try {
    const ids: string[] = [];
    const body = JSON.stringify({ agent: 'bench', instructions: 'a job over HTTP', payload: { n: 1 } });
    await run('POST /jobs', n(20_000), async () => ids.push((JSON.parse(await send('POST', '/api/v1/jobs', body)) as { id: string }).id));
    await run('GET /jobs/{id}', n(20_000), (i) => send('GET', `/api/v1/jobs/${ids[i % ids.length]}`));
  } finally {
    agent.destroy();
    await server.close();
    await queue.close();
  }
}
