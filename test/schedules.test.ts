/** Schedules on every engine, with an injected clock: firing, races, downtime, overlap, DST, YAML files. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  ConflictError,
  ManualClock,
  NotFoundError,
  Queue,
  Scheduler,
  ScheduleValidationError,
  Worker,
  type Job,
} from '../src/index.ts';
import { forEachEngine, freshQueue, type Engine } from './helpers/engines.ts';
import { deferred, waitFor } from './helpers/wait.ts';

const HOUR = 3_600_000;
const MINUTE = 60_000;

/** Schedulers of the running test (tests in this file run one at a time). */
const schedulers: Scheduler[] = [];

async function setup(engine: Engine, start = '2026-01-01T00:00:00Z') {
  // Registered before the queues' own close (after-hooks run in order): no scheduler looks at a closed queue.
  after(() => Promise.all(schedulers.splice(0).map((s) => s.stop())));
  const clock = new ManualClock(new Date(start));
  const { queue, url } = await freshQueue(engine, { clock });
  return { clock, queue, url };
}

function startScheduler(queue: Queue): Scheduler {
  const scheduler = new Scheduler(queue);
  scheduler.on('error', (e) => {
    throw e;
  });
  scheduler.start();
  schedulers.push(scheduler);
  after(() => scheduler.stop());
  return scheduler;
}

async function executions(queue: Queue, scheduleId: string): Promise<Job[]> {
  return (await queue.list({ scheduleId, order: 'asc', limit: 1000 })).jobs;
}

/** Waits until the schedule has `n` jobs, lets every scheduler finish its look, and checks there are exactly `n`. */
async function expectExecutions(queue: Queue, scheduleId: string, n: number, schedulers: Scheduler[]): Promise<Job[]> {
  await waitFor(async () => (await executions(queue, scheduleId)).length >= n, { what: `${n} executions` });
  await Promise.all(schedulers.map((s) => s.tick()));
  const jobs = await executions(queue, scheduleId);
  assert.equal(jobs.length, n, `expected exactly ${n} executions, got ${jobs.map((j) => j.key).join(', ')}`);
  return jobs;
}

const firedFor = (job: Job) => job.key!.replace(/^schedule:[^:]+:/, '');

forEachEngine((engine) => {
  describe(`schedules [${engine.name}]`, () => {
    it('fires a cron schedule at its time, in its time zone, with the job template', async () => {
      const { clock, queue } = await setup(engine);
      const s = await queue.schedules.create({
        name: 'daily-report',
        cron: '0 9 * * *',
        timezone: 'Europe/Berlin',
        agent: 'reporter',
        type: 'report',
        instructions: 'write the daily report',
        payload: { sections: ['sales'] },
        metadata: { team: 'ops' },
        tags: ['daily'],
        priority: 5,
        maxAttempts: 2,
        timeoutMs: 60_000,
        owner: 'ana',
      });
      assert.equal(s.nextRunAt, '2026-01-01T08:00:00.000Z');
      assert.equal(s.enabled, true);
      assert.equal(s.overlap, 'allow');
      const scheduler = startScheduler(queue);
      clock.set(new Date('2026-01-01T07:59:59Z'));
      await scheduler.tick();
      assert.equal((await executions(queue, s.id)).length, 0);
      clock.set(new Date('2026-01-01T08:00:00Z'));
      const [job] = await expectExecutions(queue, s.id, 1, [scheduler]);
      assert.equal(job.agent, 'reporter');
      assert.equal(job.type, 'report');
      assert.equal(job.instructions, 'write the daily report');
      assert.deepEqual(job.payload, { sections: ['sales'] });
      assert.deepEqual(job.metadata, { team: 'ops' });
      assert.deepEqual(job.tags, ['daily']);
      assert.equal(job.priority, 5);
      assert.equal(job.maxAttempts, 2);
      assert.equal(job.timeoutMs, 60_000);
      assert.equal(job.owner, 'ana');
      assert.equal(job.scheduleId, s.id);
      assert.equal(job.key, `schedule:${s.id}:2026-01-01T08:00:00.000Z`);
      assert.equal(job.status, 'pending');
      const after1 = await queue.schedules.get('daily-report');
      assert.equal(after1.nextRunAt, '2026-01-02T08:00:00.000Z');
      assert.equal(after1.lastRunAt, '2026-01-01T08:00:00.000Z');
      assert.equal(after1.lastJobId, job.id);
      assert.equal(after1.lastJobStatus, 'pending');
      clock.set(new Date('2026-01-02T08:00:00Z'));
      await expectExecutions(queue, s.id, 2, [scheduler]);
      const page = await queue.schedules.executions('daily-report');
      assert.equal(page.jobs.length, 2);
    });

    it('fires an interval schedule every interval', async () => {
      const { clock, queue } = await setup(engine);
      const s = await queue.schedules.create({ name: 'poll', interval: '5m', agent: 'poller' });
      assert.equal(s.interval, '5 minutes');
      assert.equal(s.nextRunAt, '2026-01-01T00:05:00.000Z');
      const scheduler = startScheduler(queue);
      for (let i = 1; i <= 3; i++) {
        clock.advance(5 * MINUTE);
        await expectExecutions(queue, s.id, i, [scheduler]);
      }
      const jobs = await executions(queue, s.id);
      assert.deepEqual(jobs.map(firedFor), ['2026-01-01T00:05:00.000Z', '2026-01-01T00:10:00.000Z', '2026-01-01T00:15:00.000Z']);
      assert.equal((await queue.schedules.get('poll')).nextRunAt, '2026-01-01T00:20:00.000Z');
    });

    it('three schedulers at once submit exactly one job per firing', async () => {
      const { clock, queue, url } = await setup(engine);
      const others = await Promise.all([Queue.open(url, { clock }), Queue.open(url, { clock })]);
      after(() => Promise.all(others.map((q) => q.close())));
      const every = await queue.schedules.create({ name: 'every-minute', cron: '* * * * *', agent: 'a' });
      const interval = await queue.schedules.create({ name: 'every-30s', interval: '30 seconds', agent: 'b' });
      const schedulers = [queue, ...others].map(startScheduler);
      const fired: string[] = [];
      for (const s of schedulers) s.on('fire', (schedule, job) => fired.push(`${schedule.name} ${job.id}`));
      for (let i = 1; i <= 10; i++) {
        clock.advance(MINUTE);
        await expectExecutions(queue, every.id, i, schedulers);
        await expectExecutions(queue, interval.id, i, schedulers);
      }
      // The 30-second schedule also missed a tick each minute: it ran once per look, not twice.
      const keys = (await executions(queue, every.id)).map(firedFor);
      assert.equal(new Set(keys).size, 10);
      assert.equal(fired.length, 20, 'each firing reported by exactly one scheduler');
    });

    it('after five hours of downtime, a missed firing runs once', async () => {
      const { clock, queue } = await setup(engine);
      const hourly = await queue.schedules.create({ name: 'hourly', cron: '0 * * * *', agent: 'a' });
      const interval = await queue.schedules.create({ name: 'five-min', interval: '5 minutes', agent: 'a' });
      clock.advance(5 * HOUR + 10 * MINUTE);
      const scheduler = startScheduler(queue);
      const [h] = await expectExecutions(queue, hourly.id, 1, [scheduler]);
      const [f] = await expectExecutions(queue, interval.id, 1, [scheduler]);
      assert.equal(firedFor(h), '2026-01-01T01:00:00.000Z');
      assert.equal(firedFor(f), '2026-01-01T00:05:00.000Z');
      assert.equal((await queue.schedules.get('hourly')).nextRunAt, '2026-01-01T06:00:00.000Z');
      // The interval keeps its phase: the next run is on the 5-minute grid after now.
      assert.equal((await queue.schedules.get('five-min')).nextRunAt, '2026-01-01T05:15:00.000Z');
      await scheduler.tick();
      assert.equal((await executions(queue, hourly.id)).length, 1);
      clock.set(new Date('2026-01-01T06:00:00Z'));
      await expectExecutions(queue, hourly.id, 2, [scheduler]);
    });

    it('overlap skip: no new job while the previous one runs; allow: one anyway', async () => {
      const { clock, queue } = await setup(engine);
      const gate = deferred();
      const worker = new Worker(queue, {
        handlers: { slow: async () => gate.promise, quick: async () => 'ok' },
        agents: ['slow'],
        leaseMs: 24 * HOUR,
        pollIntervalMs: 20,
      });
      await worker.start();
      after(() => worker.stop());
      const skip = await queue.schedules.create({ name: 'skip', interval: '1 minute', overlap: 'skip', agent: 'slow' });
      const allow = await queue.schedules.create({ name: 'allow', interval: '1 minute', agent: 'slow', type: 'other' });
      const scheduler = startScheduler(queue);
      const skipped: string[] = [];
      scheduler.on('skip', (s, running) => skipped.push(`${s.name} ${running}`));
      clock.advance(MINUTE);
      const [first] = await expectExecutions(queue, skip.id, 1, [scheduler]);
      await waitFor(async () => (await queue.get(first.id)).status === 'running', { what: 'first job running' });
      clock.advance(MINUTE);
      await expectExecutions(queue, allow.id, 2, [scheduler]);
      await expectExecutions(queue, skip.id, 1, [scheduler]);
      assert.deepEqual(skipped, [`skip ${first.id}`]);
      assert.equal((await queue.schedules.get('skip')).nextRunAt, '2026-01-01T00:03:00.000Z');
      gate.resolve();
      await waitFor(async () => (await queue.get(first.id)).status === 'completed', { what: 'first job completed' });
      clock.advance(MINUTE);
      const jobs = await expectExecutions(queue, skip.id, 2, [scheduler]);
      assert.equal(firedFor(jobs[1]), '2026-01-01T00:03:00.000Z');
    });

    it('holds the daylight-saving policy in America/New_York on 2026-03-08 and 2026-11-01', async () => {
      const { clock, queue } = await setup(engine, '2026-03-07T00:00:00Z');
      const spring = await queue.schedules.create({ name: 'spring', cron: '30 2 * * *', timezone: 'America/New_York', agent: 'a' });
      const scheduler = startScheduler(queue);
      clock.set(new Date('2026-03-07T07:30:00Z'));
      await expectExecutions(queue, spring.id, 1, [scheduler]);
      assert.equal((await queue.schedules.get('spring')).nextRunAt, '2026-03-09T06:30:00.000Z');
      clock.set(new Date('2026-03-08T08:00:00Z')); // 03:00 EDT: the moved time, which must not fire
      await expectExecutions(queue, spring.id, 1, [scheduler]);
      clock.set(new Date('2026-03-09T06:30:00Z'));
      const spr = await expectExecutions(queue, spring.id, 2, [scheduler]);
      assert.deepEqual(spr.map(firedFor), ['2026-03-07T07:30:00.000Z', '2026-03-09T06:30:00.000Z']);

      clock.set(new Date('2026-10-31T12:00:00Z'));
      const fall = await queue.schedules.create({ name: 'fall', cron: '30 1 * * *', timezone: 'America/New_York', agent: 'a' });
      assert.equal(fall.nextRunAt, '2026-11-01T05:30:00.000Z');
      clock.set(new Date('2026-11-01T05:30:00Z'));
      await expectExecutions(queue, fall.id, 1, [scheduler]);
      clock.set(new Date('2026-11-01T06:30:00Z')); // 01:30 EST, the second time round
      await expectExecutions(queue, fall.id, 1, [scheduler]);
      assert.equal((await queue.schedules.get('fall')).nextRunAt, '2026-11-02T06:30:00.000Z');
    });

    it('creates, updates, enables, disables, runs now and removes', async () => {
      const { clock, queue } = await setup(engine);
      const s = await queue.schedules.create({ name: 'job', cron: '0 * * * *', agent: 'a' });
      await assert.rejects(queue.schedules.create({ name: 'job', interval: '1h', agent: 'a' }), ConflictError);
      await assert.rejects(queue.schedules.get('nope'), NotFoundError);
      assert.equal((await queue.schedules.get(s.id)).name, 'job');

      const off = await queue.schedules.disable('job');
      assert.equal(off.enabled, false);
      assert.equal(off.nextRunAt, null);
      const scheduler = startScheduler(queue);
      clock.advance(2 * HOUR);
      await scheduler.tick();
      assert.equal((await executions(queue, s.id)).length, 0, 'a disabled schedule does not fire');

      const manual = await queue.schedules.runNow('job');
      assert.equal(manual.scheduleId, s.id);
      assert.equal(manual.agent, 'a');
      assert.equal((await queue.schedules.get('job')).lastJobId, manual.id);

      const on = await queue.schedules.enable('job');
      assert.equal(on.nextRunAt, '2026-01-01T03:00:00.000Z');
      const changed = await queue.schedules.update('job', { interval: '10 minutes', priority: 3 });
      assert.equal(changed.cron, null);
      assert.equal(changed.interval, '10 minutes');
      assert.equal(changed.priority, 3);
      assert.equal(changed.nextRunAt, '2026-01-01T02:10:00.000Z');
      const described = await queue.schedules.update('job', { description: 'ten-minutely' });
      assert.equal(described.nextRunAt, changed.nextRunAt, 'a change that is not timing keeps the next run');

      const removed = await queue.schedules.remove('job');
      assert.equal(removed.id, s.id);
      assert.deepEqual(await queue.schedules.list(), []);
      assert.equal((await executions(queue, s.id)).length, 1, 'jobs outlive their schedule as history');
      await assert.rejects(queue.schedules.remove('job'), NotFoundError);
    });

    it('refuses bad schedules with the schedule and the field named, storing nothing', async () => {
      const { queue } = await setup(engine);
      const cases: Array<[Record<string, unknown>, string, RegExp]> = [
        [{ name: 'a', cron: '61 * * * *', agent: 'x' }, 'cron', /schedule a: cron: .*not a valid cron/],
        [{ name: 'b', cron: '0 9 * * *', timezone: 'Mars/Base', agent: 'x' }, 'timezone', /schedule b: timezone: unknown time zone/],
        [{ name: 'c', interval: '0 minutes', agent: 'x' }, 'interval', /schedule c: interval: .*more than zero/],
        [{ name: 'd', interval: '-5 minutes', agent: 'x' }, 'interval', /schedule d: interval/],
        [{ name: 'e', interval: '5m', agent: 'x', colour: 'red' }, 'colour', /schedule e: colour: is not a known field/],
        [{ name: 'f', interval: '5m' }, 'agent', /schedule f: agent: is required/],
        [{ name: 'g', agent: 'x' }, 'cron', /schedule g: cron: give cron/],
        [{ name: 'h', cron: '* * * * *', interval: '5m', agent: 'x' }, 'interval', /not both/],
        [{ name: 'i j', interval: '5m', agent: 'x' }, 'name', /name: must be/],
        [{ name: 'k', interval: '5m', agent: 'x', overlap: 'never' }, 'overlap', /overlap: expected allow or skip/],
        [{ name: 'l', interval: '5m', agent: 'x', maxAttempts: 0 }, 'maxAttempts', /schedule l: maxAttempts/],
        [{ name: 'm', cron: '0 0 31 2 *', agent: 'x' }, 'cron', /never fires/],
      ];
      for (const [input, field, message] of cases) {
        await assert.rejects(
          queue.schedules.create(input as never),
          (e: unknown) => e instanceof ScheduleValidationError && e.field === field && message.test(e.message),
          `${JSON.stringify(input)} → ${field}`,
        );
      }
      assert.deepEqual(await queue.schedules.list(), []);
    });

    describe('YAML files', () => {
      const FILE = `
tasks:
  - name: process_pending_emails
    description: Process pending emails every 5 minutes
    enabled: true
    interval: 5 minutes
    agent: email
    type: process
    payload:
      batch_size: 10

  - name: daily_report
    description: Generate daily report at 9 AM
    cron: "0 9 * * *"
    timezone: America/New_York
    overlap: skip
    agent: reporter
    instructions: Write the daily report.
    tags: [daily, report]
`;

      it('applies a file idempotently: twice changes nothing', async () => {
        const { queue } = await setup(engine);
        const first = await queue.schedules.applyFile(FILE);
        assert.deepEqual(first.created, ['process_pending_emails', 'daily_report']);
        const before = await queue.schedules.list();
        assert.equal(before.length, 2);
        const report = before.find((s) => s.name === 'daily_report')!;
        assert.equal(report.timezone, 'America/New_York');
        assert.equal(report.overlap, 'skip');
        assert.deepEqual(report.tags, ['daily', 'report']);
        assert.equal(report.nextRunAt, '2026-01-01T14:00:00.000Z');

        const second = await queue.schedules.applyFile(FILE);
        assert.deepEqual(second, {
          dryRun: false,
          created: [],
          updated: [],
          unchanged: ['process_pending_emails', 'daily_report'],
          removed: [],
          changes: {},
        });
        assert.deepEqual(await queue.schedules.list(), before);

        // Same meaning, other spelling: still no change.
        const respelled = FILE.replace('interval: 5 minutes', 'interval: 5m').replace('America/New_York', 'america/new_york');
        assert.equal((await queue.schedules.applyFile(respelled)).unchanged.length, 2);

        const edited = FILE.replace('batch_size: 10', 'batch_size: 20').replace('"0 9 * * *"', '"0 10 * * *"');
        const third = await queue.schedules.applyFile(edited, { dryRun: true });
        assert.deepEqual(third.updated, ['process_pending_emails', 'daily_report']);
        assert.deepEqual(third.changes, { process_pending_emails: ['payload'], daily_report: ['cron'] });
        assert.deepEqual(await queue.schedules.list(), before, 'a dry run changes nothing');
        await queue.schedules.applyFile(edited);
        assert.equal((await queue.schedules.get('daily_report')).nextRunAt, '2026-01-01T15:00:00.000Z');
        assert.deepEqual((await queue.schedules.get('process_pending_emails')).payload, { batch_size: 20 });
      });

      it('prunes what the file no longer has, only when asked', async () => {
        const { queue } = await setup(engine);
        await queue.schedules.applyFile(FILE);
        await queue.schedules.create({ name: 'by-hand', interval: '1h', agent: 'a' });
        const only = `schedules:\n  - name: daily_report\n    cron: "0 9 * * *"\n    timezone: America/New_York\n    overlap: skip\n    agent: reporter\n    instructions: Write the daily report.\n    tags: [daily, report]\n`;
        const kept = await queue.schedules.applyFile(only);
        assert.deepEqual(kept.removed, []);
        assert.equal((await queue.schedules.list()).length, 3);
        const dry = await queue.schedules.applyFile(only, { prune: true, dryRun: true });
        assert.deepEqual(dry.removed.sort(), ['by-hand', 'process_pending_emails']);
        assert.equal((await queue.schedules.list()).length, 3);
        const pruned = await queue.schedules.applyFile(only, { prune: true });
        assert.deepEqual(pruned.removed.sort(), ['by-hand', 'process_pending_emails']);
        assert.deepEqual(pruned.unchanged, ['daily_report']);
        assert.deepEqual((await queue.schedules.list()).map((s) => s.name), ['daily_report']);
      });

      it('refuses a file with any error whole, naming the schedule and the field', async () => {
        const { queue } = await setup(engine);
        const good = `  - name: fine\n    interval: 1 hour\n    agent: a\n`;
        const cases: Array<[string, RegExp]> = [
          [`  - name: bad-cron\n    cron: "0 25 * * *"\n    agent: a\n`, /schedule bad-cron: cron: .*not a valid cron/],
          [`  - name: bad-zone\n    cron: "0 9 * * *"\n    timezone: Europe/Atlantis\n    agent: a\n`, /schedule bad-zone: timezone: unknown time zone/],
          [`  - name: zero\n    interval: 0 seconds\n    agent: a\n`, /schedule zero: interval: .*more than zero/],
          [`  - name: negative\n    interval: -1 hour\n    agent: a\n`, /schedule negative: interval/],
          [`  - name: unknown\n    interval: 1 hour\n    agent: a\n    function: app.tasks:run\n`, /schedule unknown: function: is not a known field/],
          [`  - name: no-agent\n    interval: 1 hour\n`, /schedule no-agent: agent: is required/],
          [`  - name: fine\n    interval: 2 hours\n    agent: a\n`, /schedule fine: name: is used twice/],
        ];
        for (const [entry, message] of cases) {
          await assert.rejects(queue.schedules.applyFile(`schedules:\n${good}${entry}`), (e: Error) => message.test(e.message), message.source);
        }
        await assert.rejects(queue.schedules.applyFile('schedules:\n  - name: [unclosed\n'), /not valid YAML/);
        await assert.rejects(queue.schedules.applyFile('jobs:\n  - name: x\n'), /jobs: is not a known top-level key/);
        assert.deepEqual(await queue.schedules.list(), [], 'nothing applied, not even the good entry');
      });
    });
  });
});
