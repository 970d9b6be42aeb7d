/** The CLI on a temporary database: submitting jobs, then reading them back every way. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { agentq, agentqJson, freshDb, submit } from './run.ts';
import { freshSchema, postgresBaseUrl } from '../helpers/engines.ts';

describe('agentq submit, jobs, info, status, tree, migrate', { concurrency: true }, () => {
  it('submits a job with every option and prints it as JSON', async () => {
    const db = freshDb();
    // An owned job may only depend on, or be delegated by, the same owner's jobs.
    const dep = await submit(db, ['-a', 'helper', '--owner', 'alice']);
    const parent = await submit(db, ['-a', 'planner', '--owner', 'alice']);
    const job = await agentqJson(db, [
      'submit',
      '--agent', 'researcher',
      '-t', 'search',
      '-q', 'find papers',
      '--payload', '{"topic":"rag","n":3}',
      '--priority', '-5',
      '--delay', '1h',
      '--depends-on', dep.slice(0, 20),
      '--parent', parent,
      '--tag', 'nightly',
      '--tag', 'a,b',
      '--max-attempts', '5',
      '--timeout', '10m',
      '--key', 'k-1',
      '--owner', 'alice',
    ]);
    assert.match(job.id, /^[0-9A-Z]{26}$/);
    assert.equal(job.agent, 'researcher');
    assert.equal(job.type, 'search');
    assert.equal(job.instructions, 'find papers');
    assert.deepEqual(job.payload, { topic: 'rag', n: 3 });
    assert.equal(job.priority, -5);
    assert.deepEqual(job.dependsOn, [dep]);
    assert.equal(job.parentId, parent);
    assert.deepEqual(job.tags, ['nightly', 'a,b']);
    assert.equal(job.maxAttempts, 5);
    assert.equal(job.timeoutMs, 600_000);
    assert.equal(job.key, 'k-1');
    assert.equal(job.owner, 'alice');
    assert.equal(job.status, 'blocked');
    const delay = Date.parse(job.runAt) - Date.parse(job.createdAt);
    assert.ok(Math.abs(delay - 3_600_000) < 1000, `runAt is an hour after createdAt (${delay} ms)`);

    // The same key again returns the first job.
    const again = await agentqJson(db, ['create', '-a', 'researcher', '--key', 'k-1']);
    assert.equal(again.id, job.id);

    // Human mode prints only the id.
    const plain = await agentq(db, ['submit', '-a', 'echo', '--run-at', '2030-01-01T00:00:00Z']);
    assert.equal(plain.code, 0);
    assert.match(plain.stdout, /^[0-9A-Z]{26}\n$/);
    const scheduled = await agentqJson(db, ['info', plain.stdout.trim()]);
    assert.equal(scheduled.runAt, '2030-01-01T00:00:00.000Z');
  });

  it('reads the payload from a file or from standard input', async () => {
    const db = freshDb();
    const fromStdin = await agentqJson(db, ['submit', '-a', 'x', '--payload-file', '-'], { stdin: '{"from":"stdin"}' });
    assert.deepEqual(fromStdin.payload, { from: 'stdin' });
    const { writeFileSync } = await import('node:fs');
    const { dirname, join } = await import('node:path');
    const file = join(dirname(db), 'payload.json');
    writeFileSync(file, '[1,2,3]');
    const fromFile = await agentqJson(db, ['submit', '-a', 'x', '--payload-file', file]);
    assert.deepEqual(fromFile.payload, [1, 2, 3]);
  });

  it('lists jobs with filters (status aliases too), pages with a cursor, and draws a table', async () => {
    const db = freshDb();
    const a1 = await submit(db, ['-a', 'alpha', '-t', 'one', '--owner', 'ann', '--tag', 'red']);
    const a2 = await submit(db, ['-a', 'alpha', '-t', 'two', '--owner', 'bob']);
    const b1 = await submit(db, ['-a', 'beta', '--parent', a1]);
    await agentq(db, ['cancel', a2]);

    const all = await agentqJson(db, ['jobs']);
    assert.deepEqual(all.jobs.map((j: any) => j.id), [b1, a2, a1], 'newest first');
    assert.equal(all.nextCursor, null);

    const ids = async (...args: string[]) => (await agentqJson(db, ['jobs', ...args])).jobs.map((j: any) => j.id);
    const expectations: Array<[string[], string[], string]> = [
      [['-s', 'queued'], [b1, a1], 'queued is pending'],
      [['-s', 'canceled'], [a2], 'canceled is cancelled'],
      [['-s', 'pending,cancelled', '-a', 'alpha'], [a2, a1], 'a comma list of statuses'],
      [['-s', 'pending', '-s', 'cancelled', '-a', 'alpha'], [a2, a1], 'repeated statuses'],
      [['-a', 'beta'], [b1], 'agent'],
      [['-t', 'two'], [a2], 'type'],
      [['-u', 'ann'], [a1], 'owner'],
      [['--tag', 'red'], [a1], 'tag'],
      [['--parent', a1.slice(0, 22)], [b1], 'parent, by prefix'],
    ];
    const got = await Promise.all(expectations.map(([args]) => ids(...args)));
    expectations.forEach(([, want, what], i) => assert.deepEqual(got[i], want, what));

    const page1 = await agentqJson(db, ['jobs', '--limit', '2']);
    assert.deepEqual(page1.jobs.map((j: any) => j.id), [b1, a2]);
    assert.ok(page1.nextCursor);
    const page2 = await agentqJson(db, ['jobs', '--limit', '2', '--cursor', page1.nextCursor]);
    assert.deepEqual(page2.jobs.map((j: any) => j.id), [a1]);
    assert.equal(page2.nextCursor, null);

    const human = await agentq(db, ['jobs', '--limit', '2']);
    assert.equal(human.code, 0);
    const lines = human.stdout.split('\n');
    assert.match(lines[0], /^ID\s+AGENT\s+TYPE\s+STATUS\s+PROGRESS\s+AGE\s+DURATION$/);
    assert.match(lines[1], new RegExp(`^${b1.slice(0, 12)}\\s+beta\\s+default\\s+pending\\s+(just now|\\d+s ago)`));
    assert.match(lines[2], new RegExp(`^${a2.slice(0, 12)}\\s+alpha\\s+two\\s+cancelled\\b`));
    assert.ok(!human.stdout.includes(b1), 'ids are shortened to 12 characters');
    assert.match(human.stdout, new RegExp(`--cursor ${a2}`), 'the next page is hinted at the bottom');
    // Columns line up: STATUS starts at the same place on every row.
    const at = lines[0].indexOf('STATUS');
    assert.ok(['pending', 'cancelled'].includes(lines[1].slice(at).split(/\s+/)[0]));
    assert.ok(['pending', 'cancelled'].includes(lines[2].slice(at).split(/\s+/)[0]));

    const empty = await agentq(db, ['jobs', '-a', 'nobody']);
    assert.equal(empty.code, 0);
    assert.match(empty.stdout, /No jobs match/);
  });

  it('shows a job with info, as text and as JSON, by id or prefix', async () => {
    const db = freshDb();
    const id = await submit(db, ['-a', 'writer', '-q', 'write a poem', '--payload', '{"lines":4}', '--tag', 'art']);
    const json = await agentqJson(db, ['info', id.slice(0, 24)]);
    assert.equal(json.id, id);
    assert.equal(json.status, 'pending');
    assert.deepEqual(json.payload, { lines: 4 });

    const human = await agentq(db, ['info', id]);
    assert.equal(human.code, 0);
    assert.match(human.stdout, new RegExp(`^ID\\s+${id}$`, 'm'));
    assert.match(human.stdout, /^Agent\s+writer$/m);
    assert.match(human.stdout, /^Status\s+pending$/m);
    assert.match(human.stdout, /^Attempts\s+0 of 3$/m);
    assert.match(human.stdout, /^Tags\s+art$/m);
    assert.match(human.stdout, /^Instructions\n\s+write a poem$/m);
    assert.match(human.stdout, /^Payload\n\s+\{\n\s+"lines": 4\n\s+\}$/m);
    assert.equal(human.stderr, '');
  });

  it('counts jobs per status and agent with status', async () => {
    const db = freshDb();
    await submit(db, ['-a', 'alpha']);
    await submit(db, ['-a', 'alpha']);
    const c = await submit(db, ['-a', 'beta']);
    await agentq(db, ['cancel', c]);
    const { stats, workers } = await agentqJson(db, ['status']);
    assert.equal(stats.total, 3);
    assert.equal(stats.byStatus.pending, 2);
    assert.equal(stats.byStatus.cancelled, 1);
    assert.equal(stats.byStatus.running, 0);
    assert.equal(stats.byAgent.alpha.total, 2);
    assert.equal(stats.byAgent.alpha.pending, 2);
    assert.equal(stats.byAgent.beta.cancelled, 1);
    assert.deepEqual(workers, []);

    const human = await agentq(db, ['status']);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /Jobs\s+3 total · 2 pending · 1 cancelled/);
    assert.match(human.stdout, /^AGENT\s+TOTAL\s+PENDING\s+CANCELLED$/m);
    assert.match(human.stdout, /^alpha\s+2\s+2\s+0$/m);
    assert.match(human.stdout, /^beta\s+1\s+0\s+1$/m);
    assert.match(human.stdout, /Workers\s+none alive/);
    assert.ok(human.stdout.includes(db), 'names the database');
  });

  it('draws the delegation tree with children, grandchildren and dependencies', async () => {
    const db = freshDb();
    const root = await submit(db, ['-a', 'planner']);
    const c1 = await submit(db, ['-a', 'researcher', '--parent', root]);
    const g1 = await submit(db, ['-a', 'fetcher', '--parent', c1]);
    const c2 = await submit(db, ['-a', 'writer', '--parent', root, '--depends-on', c1, g1.slice(0, 22)]);

    const tree = await agentqJson(db, ['tree', root.slice(0, 20)]);
    assert.equal(tree.job.id, root);
    assert.deepEqual(tree.children.map((n: any) => n.job.id), [c1, c2]);
    assert.deepEqual(tree.children[0].children.map((n: any) => n.job.id), [g1]);
    assert.deepEqual(tree.children[0].children[0].children, []);
    assert.deepEqual(tree.children[1].job.dependsOn, [c1, g1]);
    assert.deepEqual(tree.children[1].children, []);

    const human = await agentq(db, ['tree', root]);
    assert.equal(human.code, 0);
    const short = (id: string) => id.slice(0, 12);
    assert.deepEqual(
      human.stdout.trimEnd().split('\n').map((l) => l.replace(/\s+/g, ' ')),
      [
        `${short(root)} planner pending`,
        `├── ${short(c1)} researcher pending`,
        `│ └── ${short(g1)} fetcher pending`,
        `└── ${short(c2)} writer blocked ⇠ needs ${short(c1)} pending, ${short(g1)} pending`,
      ],
    );

    // A subtree says whose child it is.
    const sub = await agentq(db, ['tree', c1]);
    assert.match(sub.stdout, new RegExp(`child of ${short(root)}`));
  });

  it('applies migrations and prints the schema version', async () => {
    const db = freshDb();
    const { version, database } = await agentqJson(db, ['migrate']);
    assert.ok(Number.isInteger(version) && version >= 1);
    assert.equal(database, db);
    const human = await agentq(db, ['migrate']);
    assert.equal(human.code, 0);
    assert.match(human.stdout, new RegExp(`schema version ${version}`));
  });

  it('finds the database in AGENTQ_DATABASE_URL when --db is not given', async () => {
    const db = freshDb();
    const id = await submit(db, ['-a', 'x']);
    const r = await agentq(db, ['jobs', '--json'], { noDb: true, env: { AGENTQ_DATABASE_URL: `sqlite:${db}` } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).jobs[0].id, id);
  });
  it('works on a postgres:// URL, and leaves its password out of what it prints', async () => {
    const url = new URL(await postgresBaseUrl());
    url.searchParams.set('schema', freshSchema());
    assert.ok(url.password !== '', 'the test server has a password');
    const db = url.toString();
    const empty = await agentq(db, ['jobs']);
    assert.equal(empty.code, 0, empty.stderr);
    assert.match(empty.stdout, /No jobs yet — submit one with: agentq submit --agent demo --db 'postgres:\/\/postgres:\*\*\*@/);
    assert.ok(!empty.stdout.includes(`:${url.password}@`), empty.stdout);
    const id = await submit(db, ['-a', 'pg']);
    const info = await agentqJson(db, ['info', id]);
    assert.equal(info.agent, 'pg');
    const migrate = await agentq(db, ['migrate']);
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.ok(!migrate.stdout.includes(`:${url.password}@`), migrate.stdout);
  });
});
