/**
 * /metrics in the Prometheus text format. Counts of jobs by status and agent
 * come from the database at each scrape (so every server shows the same);
 * submits, completions, failures and retries are counted from the event bus
 * since this server started (counters, as Prometheus expects them); durations
 * and queue latency are summaries over the most recently finished jobs.
 */
import type { Queue } from '../queue.ts';

const RECENT = 1000;
const COUNTED = ['job.created', 'job.completed', 'job.failed', 'job.retrying', 'job.cancelled'];

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function quantiles(values: number[]): Array<[string, number]> {
  if (values.length === 0) return [];
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return [
    ['0.5', at(0.5)],
    ['0.9', at(0.9)],
    ['0.99', at(0.99)],
  ];
}

export class Metrics {
  readonly #queue: Queue;
  readonly #counts = new Map<string, number>();
  #httpSubmits = 0;
  /** The id of the last event counted. */
  #from: Promise<number> | undefined;

  constructor(queue: Queue) {
    this.#queue = queue;
  }

  /** Starts counting job events (from now on): they are counted at each scrape, not as they come. */
  start(): void {
    this.#from ??= this.#queue.store.lastEventId().catch(() => 0);
  }

  /** Adds the job events since the last scrape to the counters. */
  async #tally(): Promise<void> {
    const from = await (this.#from ??= this.#queue.store.lastEventId());
    const upTo = await this.#queue.store.lastEventId();
    if (upTo <= from) return;
    for (const r of await this.#queue.store.countEvents(from, upTo, COUNTED)) {
      const key = `${r.type}\u0000${r.target ?? ''}`;
      this.#counts.set(key, (this.#counts.get(key) ?? 0) + r.n);
    }
    this.#from = Promise.resolve(upTo);
  }

  submitted(n: number): void {
    this.#httpSubmits += n;
  }

  async render(): Promise<string> {
    const q = this.#queue;
    await this.#tally();
    const [stats, workers, recent, usage] = await Promise.all([
      q.stats(),
      q.workers(),
      q.list({ status: ['completed', 'failed'], limit: RECENT }),
      q.limits.usageBy('agent'),
    ]);
    const out: string[] = [];
    const metric = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);

    metric('agentq_jobs', 'gauge', 'Jobs in the database by status and agent.');
    for (const [agent, counts] of Object.entries(stats.byAgent)) {
      for (const [status, n] of Object.entries(counts)) {
        if (status !== 'total') out.push(`agentq_jobs{agent="${label(agent)}",status="${status}"} ${n}`);
      }
    }
    const counter = (type: string, name: string, help: string) => {
      metric(name, 'counter', help);
      for (const [key, n] of this.#counts) {
        const [t, agent] = key.split('\u0000');
        if (t === type) out.push(`${name}{agent="${label(agent)}"} ${n}`);
      }
    };
    counter('job.created', 'agentq_jobs_submitted_total', 'Jobs submitted since this server started (any client).');
    counter('job.completed', 'agentq_jobs_completed_total', 'Jobs completed since this server started.');
    counter('job.failed', 'agentq_jobs_failed_total', 'Jobs failed since this server started.');
    counter('job.retrying', 'agentq_jobs_retried_total', 'Attempts that failed and were retried, since this server started.');
    counter('job.cancelled', 'agentq_jobs_cancelled_total', 'Jobs cancelled since this server started.');
    metric('agentq_http_submits_total', 'counter', 'Jobs submitted through this server\'s API.');
    out.push(`agentq_http_submits_total ${this.#httpSubmits}`);

    metric('agentq_usage_tokens_total', 'counter', 'Tokens used (input and output) by jobs in the database, per agent.');
    for (const u of usage) {
      out.push(`agentq_usage_tokens_total{agent="${label(u.name ?? '')}",direction="input"} ${u.inputTokens}`);
      out.push(`agentq_usage_tokens_total{agent="${label(u.name ?? '')}",direction="output"} ${u.outputTokens}`);
    }
    metric('agentq_usage_cost_usd_total', 'counter', 'Cost in US dollars recorded by jobs in the database, per agent.');
    for (const u of usage) out.push(`agentq_usage_cost_usd_total{agent="${label(u.name ?? '')}"} ${u.costUsd}`);

    metric('agentq_workers', 'gauge', 'Live workers.');
    out.push(`agentq_workers ${workers.length}`);
    metric('agentq_worker_slots', 'gauge', 'Job slots of the live workers.');
    out.push(`agentq_worker_slots ${workers.reduce((n, w) => n + w.concurrency, 0)}`);

    const durations: number[] = [];
    const latencies: number[] = [];
    for (const job of recent.jobs) {
      if (job.durationMs != null) durations.push(job.durationMs / 1000);
      if (job.startedAt) latencies.push(Math.max(0, Date.parse(job.startedAt) - Math.max(Date.parse(job.createdAt), Date.parse(job.runAt))) / 1000);
    }
    const summary = (name: string, help: string, values: number[]) => {
      metric(name, 'summary', help);
      for (const [quantile, v] of quantiles(values)) out.push(`${name}{quantile="${quantile}"} ${v}`);
      out.push(`${name}_sum ${values.reduce((a, b) => a + b, 0)}`, `${name}_count ${values.length}`);
    };
    summary('agentq_job_duration_seconds', `Run time of the last ${RECENT} finished jobs (last attempt).`, durations);
    summary('agentq_job_queue_latency_seconds', `From due to started, of the last ${RECENT} finished jobs (last attempt).`, latencies);
    return out.join('\n') + '\n';
  }
}
