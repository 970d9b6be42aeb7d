/** A pool on the test server that records every statement sent with values: the store's own, on their way out. */
import pg from 'pg';
import { postgresBaseUrl } from './engines.ts';

export interface Sent {
  text: string;
  values: unknown[];
}

export async function recordingPool(): Promise<{ pool: pg.Pool; seen: Sent[] }> {
  const seen: Sent[] = [];
  const pool = new pg.Pool({ connectionString: await postgresBaseUrl(), max: 4 });
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const q = args[0] as { text?: string; values?: unknown[] };
      if (q && typeof q.text === 'string' && Array.isArray(q.values)) seen.push({ text: q.text, values: q.values });
      return query(...args);
    };
  });
  return { pool, seen };
}
