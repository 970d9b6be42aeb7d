/** `agentq schedules ...`, `agentq scheduler` and `agentq serve --schedules`, run as subprocesses. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { waitFor } from '../helpers/wait.ts';
import { agentq, agentqJson, freshDb, start } from './run.ts';

const TASKS = `
tasks:
  - name: process_pending_emails
    description: Process pending emails every 5 minutes
    interval: 5 minutes
    agent: email
    payload: {batch_size: 10}
  - name: daily_report
    cron: "0 9 * * *"
    timezone: America/New_York
    overlap: skip
    agent: reporter
    instructions: Write the daily report.
`;

function file(db: string, name: string, text: string): string {
  const path = join(dirname(db), name);
  writeFileSync(path, text);
  return path;
}

describe('agentq schedules', { concurrency: true }, () => {
  it('apply is idempotent; list, show, enable, disable, run and remove speak JSON', async () => {
    const db = freshDb();
    const tasks = file(db, 'tasks.yaml', TASKS);
    const first = await agentqJson(db, ['schedules', 'apply', tasks]);
    assert.deepEqual(first.created, ['process_pending_emails', 'daily_report']);
    const again = await agentqJson(db, ['schedules', 'apply', tasks]);
    assert.deepEqual([again.created, again.updated, again.removed], [[], [], []]);
    assert.deepEqual(again.unchanged, ['process_pending_emails', 'daily_report']);
    const human = await agentq(db, ['schedules', 'apply', tasks]);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /0 created, 0 updated, 0 removed, 2 unchanged — nothing to change/);

    const list = await agentqJson(db, ['schedules', 'list']);
    assert.deepEqual(list.map((s: any) => s.name), ['daily_report', 'process_pending_emails']);
    const report = list[0];
    assert.equal(report.cron, '0 9 * * *');
    assert.equal(report.timezone, 'America/New_York');
    assert.equal(report.overlap, 'skip');
    assert.equal(report.enabled, true);
    assert.match(report.nextRunAt, /T1[34]:00:00\.000Z$/);
    const table = await agentq(db, ['schedules']);
    assert.match(table.stdout, /^NAME\s+TIMING\s+AGENT\s+STATE\s+NEXT\s+LAST$/m);
    assert.match(table.stdout, /^process_pending_emails\s+every 5 minutes\s+email\s+enabled\s+in 4m\s+-$/m);

    const job = await agentqJson(db, ['schedules', 'run', 'daily_report']);
    assert.equal(job.scheduleId, report.id);
    assert.equal(job.agent, 'reporter');
    assert.equal(job.instructions, 'Write the daily report.');
    const shown = await agentqJson(db, ['schedules', 'show', 'daily_report']);
    assert.equal(shown.schedule.lastJobId, job.id);
    assert.equal(shown.schedule.lastJobStatus, 'pending');
    assert.deepEqual(shown.executions.map((j: any) => j.id), [job.id]);
    const text = await agentq(db, ['schedules', 'show', 'daily_report']);
    assert.match(text.stdout, /timing\s+0 9 \* \* \* \(America\/New_York\)/);
    assert.match(text.stdout, /Executions/);

    const off = await agentqJson(db, ['schedules', 'disable', 'daily_report']);
    assert.equal(off.enabled, false);
    assert.equal(off.nextRunAt, null);
    const on = await agentqJson(db, ['schedules', 'enable', report.id]);
    assert.equal(on.enabled, true);
    assert.equal(on.nextRunAt, report.nextRunAt);

    const removed = await agentqJson(db, ['schedules', 'remove', 'process_pending_emails']);
    assert.equal(removed.name, 'process_pending_emails');
    assert.deepEqual((await agentqJson(db, ['schedules', 'list'])).map((s: any) => s.name), ['daily_report']);
    // The file puts it back; --prune then removes what the file no longer has.
    assert.deepEqual((await agentqJson(db, ['schedules', 'apply', tasks])).created, ['process_pending_emails']);
    const only = file(db, 'only.yaml', TASKS.split('  - name: daily_report')[0]);
    const dry = await agentqJson(db, ['schedules', 'apply', only, '--prune', '--dry-run']);
    assert.deepEqual([dry.dryRun, dry.removed], [true, ['daily_report']]);
    assert.equal((await agentqJson(db, ['schedules', 'list'])).length, 2, 'a dry run changes nothing');
    const pruned = await agentq(db, ['schedules', 'apply', only, '--prune']);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.match(pruned.stdout, /^- daily_report removed$/m);
    assert.deepEqual((await agentqJson(db, ['schedules', 'list'])).map((s: any) => s.name), ['process_pending_emails']);
  });

  it('refuses a bad file whole (exit 2), naming the file, schedule and field; unknown names exit 1', async () => {
    const db = freshDb();
    const cases: Array<[string, RegExp]> = [
      [TASKS.replace('0 9 * * *', '0 9 * *'), /schedule daily_report: cron: "0 9 \* \*" has 4 fields/],
      [TASKS.replace('America/New_York', 'America/Gotham'), /schedule daily_report: timezone: unknown time zone/],
      [TASKS.replace('interval: 5 minutes', 'interval: 0 minutes'), /schedule process_pending_emails: interval: .*more than zero/],
      [TASKS.replace('    agent: email\n', ''), /schedule process_pending_emails: agent: is required/],
      [TASKS.replace('    agent: email\n', '    agent: email\n    kwargs: {a: 1}\n'), /schedule process_pending_emails: kwargs: is not a known field/],
    ];
    const results = await Promise.all(cases.map(([text], i) => agentq(db, ['schedules', 'apply', file(db, `bad${i}.yaml`, text)])));
    results.forEach((r, i) => {
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`^agentq: \\S*bad${i}\\.yaml: `));
      assert.match(r.stderr, cases[i][1]);
      assert.match(r.stderr, /nothing was changed/);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    });
    const json = await agentq(db, ['schedules', 'apply', file(db, 'bad.yaml', 'tasks: [{name: x}]'), '--json']);
    assert.equal(json.code, 2);
    assert.equal(json.stdout, '');
    assert.equal((await agentq(db, ['schedules', 'apply', join(dirname(db), 'missing.yaml')])).code, 2);
    assert.equal((await agentq(db, ['schedules', 'apply'])).code, 2);
    await agentqJson(db, ['schedules', 'apply', file(db, 'ok.yaml', TASKS)]);
    assert.equal((await agentqJson(db, ['schedules', 'list'])).length, 2);
    const missing = await agentq(db, ['schedules', 'show', 'nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /schedule nope not found — list them with: agentq schedules list/);
    assert.equal((await agentq(db, ['schedules', 'disable', 'nope'])).code, 1);
    assert.equal((await agentq(db, ['schedules', 'run', 'nope', '--json'])).code, 1);
  });

  it('has help with examples for every schedules command', async () => {
    const db = freshDb();
    const commands = [['schedules'], ...['list', 'show', 'apply', 'enable', 'disable', 'run', 'remove'].map((c) => ['schedules', c]), ['scheduler']];
    const results = await Promise.all(commands.map((c) => agentq(db, [...c, '--help'])));
    results.forEach((r, i) => {
      assert.equal(r.code, 0, commands[i].join(' '));
      assert.match(r.stdout, /Examples:\n\s+\$ agentq /, `${commands[i].join(' ')} --help has an example`);
    });
    assert.match(results[3].stdout, /File format:/);
  });

  it('three agentq scheduler processes on one database submit one job per firing', async () => {
    const db = freshDb();
    const tasks = file(db, 'race.yaml', `schedules:\n  - name: race\n    interval: 1 second\n    agent: nobody\n`);
    await agentqJson(db, ['schedules', 'apply', tasks]);
    const schedulers = [0, 1, 2].map(() => start(db, ['scheduler', '--poll-interval', '200ms']));
    await Promise.all(schedulers.map((s) => s.output(/scheduler running/, 'the scheduler banner')));
    await waitFor(async () => (await agentqJson(db, ['schedules', 'show', 'race'])).executions.length >= 4, {
      timeoutMs: 15_000,
      intervalMs: 200,
      what: 'four firings',
    });
    for (const s of schedulers) s.child.kill('SIGTERM');
    const exits = await Promise.all(schedulers.map((s) => s.exited));
    exits.forEach((e) => assert.equal(e.code, 0, e.stderr));
    const { executions } = await agentqJson(db, ['schedules', 'show', 'race', '--limit', '1000']);
    const due = executions.map((j: any) => j.key.replace(/^schedule:[^:]+:/, ''));
    assert.equal(new Set(due).size, due.length, 'no firing submitted twice');
    const fired = exits.reduce((n, e) => n + (e.stdout.match(/race fired/g)?.length ?? 0), 0);
    assert.equal(fired, executions.length, 'each firing reported by exactly one scheduler');
  });

  it('agentq scheduler fires due schedules and stops on SIGTERM; serve --schedules runs them too', async () => {
    const db = freshDb();
    const tasks = file(db, 'fast.yaml', `schedules:\n  - name: tick\n    interval: 1 second\n    agent: echo\n    payload: {n: 1}\n`);
    const scheduler = start(db, ['scheduler', '--schedules', tasks]);
    await scheduler.output(/scheduler running on .* \(1 enabled schedule\)/, 'the scheduler banner');
    await scheduler.output(/tick fired \(due .*\) → \w+ echo/, 'a firing');
    scheduler.child.kill('SIGTERM');
    const exit = await scheduler.exited;
    assert.equal(exit.code, 0, exit.stderr);
    const shown = await agentqJson(db, ['schedules', 'show', 'tick']);
    assert.ok(shown.executions.length >= 1);
    assert.ok(shown.executions.every((j: any) => j.status === 'pending'), 'no worker ran them');

    const serve = start(db, ['serve', '--port', '0', '--schedules', tasks]);
    await serve.output(/agentq is running/, 'the serve banner');
    const ran = await waitFor(
      async () => (await agentqJson(db, ['schedules', 'show', 'tick'])).executions.find((j: any) => j.status === 'completed'),
      { timeoutMs: 15_000, intervalMs: 100, what: 'a scheduled job run by serve' },
    );
    assert.deepEqual(ran.result, { n: 1 });
    serve.child.kill('SIGINT');
    assert.equal((await serve.exited).code, 0);

    const bad = await agentq(db, ['serve', '--schedules', file(db, 'bad.yaml', 'schedules: [{name: x, interval: 1s}]')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /schedule x: agent: is required/);
  });
});
