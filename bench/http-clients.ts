/**
 * The clients of the HTTP bench, in a process of their own as a deployment's
 * clients are: 50 concurrent keep-alive connections. Config in
 * AGENTQ_BENCH_HTTP (JSON): `{url, token, posts, gets}`. It sends its parent
 * one message per phase: `{label, count, seconds, latencies}`.
 */
import { Agent, request } from 'node:http';

const config = JSON.parse(process.env.AGENTQ_BENCH_HTTP ?? '{}') as { url: string; token: string; posts: number; gets: number };
const agent = new Agent({ keepAlive: true, maxSockets: 50 });
const send = (method: string, path: string, body?: string) =>
  new Promise<string>((resolve, reject) => {
    const req = request(
      `${config.url}${path}`,
      {
        method,
        agent,
        headers: {
          authorization: `Bearer ${config.token}`,
          ...(body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
        },
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

async function run(label: string, count: number, one: (i: number) => Promise<unknown>): Promise<void> {
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
  const phase = { label, count, seconds: (performance.now() - start) / 1000, latencies };
  // Sent before the channel closes: the callback runs once the message is handed over.
  await new Promise((resolve) => process.send!(phase, undefined, {}, resolve));
}

const ids: string[] = [];
const body = JSON.stringify({ agent: 'bench', instructions: 'a job over HTTP', payload: { n: 1 } });
await run('POST /jobs', config.posts, async () => ids.push((JSON.parse(await send('POST', '/api/v1/jobs', body)) as { id: string }).id));
await run('GET /jobs/{id}', config.gets, (i) => send('GET', `/api/v1/jobs/${ids[i % ids.length]}`));
agent.destroy();
process.disconnect();
