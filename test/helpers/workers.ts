/** A worker for the behavioural tests (fast polls, errors fail the test) and waiting for a job to finish. */
import { isFinished, Worker, type Handlers, type Job, type Queue, type WorkerOptions } from '../../src/index.ts';
import { waitFor } from './wait.ts';

export async function startWorker(queue: Queue, handlers: Handlers, options: Partial<WorkerOptions> = {}): Promise<Worker> {
  const worker = new Worker(queue, { handlers, pollIntervalMs: 50, waitCheckMs: 50, ...options });
  worker.on('error', (e) => {
    throw e;
  });
  await worker.start();
  return worker;
}

export async function finished(queue: Queue, id: string, timeoutMs?: number): Promise<Job> {
  return waitFor(
    async () => {
      const job = await queue.get(id);
      return isFinished(job.status) ? job : null;
    },
    { timeoutMs, what: `job ${id} to finish` },
  );
}
