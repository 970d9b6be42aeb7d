/** Mapping between stored schedule rows (snake_case, ms timestamps) and ScheduleRecords, for both engines. */
import type { JobStatus } from '../job.ts';
import type { ScheduleRecord } from './store.ts';

export interface ScheduleRow {
  id: string;
  name: string;
  description: string | null;
  cron: string | null;
  interval_ms: number | string | null;
  timezone: string;
  job: string;
  enabled: number | boolean;
  overlap: 'allow' | 'skip';
  next_run_at: number | string | null;
  last_run_at: number | string | null;
  last_job_id: string | null;
  last_job_status: JobStatus | null;
  revision: number | string;
  created_at: number | string;
  updated_at: number | string;
}

const num = (v: number | string | null): number | null => (v == null ? null : Number(v));

export function rowToSchedule(r: ScheduleRow): ScheduleRecord {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    cron: r.cron,
    intervalMs: num(r.interval_ms),
    timezone: r.timezone,
    job: r.job,
    enabled: r.enabled === true || Number(r.enabled) === 1,
    overlap: r.overlap,
    nextRunAt: num(r.next_run_at),
    lastRunAt: num(r.last_run_at),
    lastJobId: r.last_job_id,
    lastJobStatus: r.last_job_status ?? null,
    revision: Number(r.revision),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

export function scheduleConflict(what: string): string {
  return `schedule ${what} changed while this change was made; read it again and retry`;
}
