/** Schedules: cron and interval timing, definitions and files, the API and the scheduler loop. */
export { Schedules, type Schedule, type ApplyOptions, type ApplyResult, type Firing } from './schedules.ts';
export { Scheduler, type SchedulerOptions, type SchedulerEvents } from './scheduler.ts';
export {
  ScheduleValidationError,
  parseSchedulesFile,
  validateSchedule,
  type ScheduleInput,
  type ScheduleDefinition,
  type JobTemplate,
  type Overlap,
} from './definition.ts';
export { parseInterval, formatInterval, canonicalTimeZone } from './timing.ts';
