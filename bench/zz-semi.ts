import { fork } from 'node:child_process';
import { mkdtempSync } from 'node:fs'; import { join } from 'node:path'; import { tmpdir } from 'node:os';
import { Queue } from '../src/index.ts';
const dir = mkdtempSync(join(tmpdir(), 'semi-'));
for (const flags of [[], []]) {
  const db = join(dir, `${Math.random()}.db`);
  const queue = await Queue.open(db);
  const count = 100_000;
  for (let d = 0; d < count; d += 5000) await queue.submitMany(Array.from({ length: 5000 }, () => ({ agent: 'noop' })));
  const child = fork(new URL('./worker-process.js', import.meta.url).pathname, [], { execArgv: flags, env: { ...process.env, AGENTQ_BENCH_WORKER: JSON.stringify({ db, agent: 'noop', concurrency: 32, mode: 'noop' }) }, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  await new Promise((r) => child.once('message', r));
  const t = performance.now();
  while ((await queue.stats()).byStatus.completed < count) await new Promise((r) => setTimeout(r, 20));
  const rate = count / ((performance.now() - t) / 1000);
  const rss = await new Promise<number>((r) => { child.once('message', (m: any) => r(m.rss)); child.send('rss'); });
  console.log('runtime flag', Math.round(rate), (rss / 1048576).toFixed(1), 'MB');
  child.send('stop'); await new Promise((r) => child.once('exit', r)); await queue.close();
}
