/** Bad usage exits 2, a missing or conflicting job exits 1; always one line on stderr, nothing on stdout. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { agentq, freshDb, submit, type Result } from './run.ts';

function oneLineError(r: Result, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  assert.equal(r.stdout, '', 'nothing on stdout');
  assert.match(r.stderr, /^agentq: [^\n]+ — [^\n]+\n$/, 'one line: what is wrong — what to do');
  assert.match(r.stderr, pattern);
}

describe('agentq errors', { concurrency: true }, () => {
  it('exits 2 naming the flag on bad usage', async () => {
    const db = freshDb();
    await agentq(db, ['migrate']);
    const cases: Array<[string[], RegExp]> = [
      [['submit', '-a', 'x', '--bogus'], /unknown option '--bogus'/],
      [['submit'], /--agent/],
      [['submit', '-a', 'x', '--payload', '{not json'], /--payload.*not valid JSON/],
      [['submit', '-a', 'x', '--delay', 'soon'], /--delay.*duration/],
      [['submit', '-a', 'x', '--timeout', '0s'], /--timeout: must be positive/],
      [['submit', '-a', 'x', '--max-attempts', '0'], /--max-attempts/],
      [['submit', '-a', 'x', '--priority', 'high'], /--priority/],
      [['submit', '-a', 'x', '--run-at', 'tomorrowish'], /--run-at/],
      [['submit', '-a', 'x', '--payload', '1', '--payload-file', 'f.json'], /--payload.*cannot be used with.*--payload-file/],
      [['submit', '-a', 'x', '--delay', '1m', '--run-at', '2030-01-01T00:00:00Z'], /--delay.*cannot be used with.*--run-at/],
      [['submit', '-a', 'x', '--payload-file', '/nonexistent/p.json'], /--payload-file: cannot read/],
      [['submit', '-a', ''], /--agent: must not be empty/],
      [['jobs', '-s', 'sleeping'], /--status: unknown status sleeping/],
      [['jobs', '--limit', '0'], /--limit/],
      [['info'], /missing required argument 'id'/],
      [['hung', '--kill', '--requeue'], /cannot be used with/],
      [['cleanup', '-s', 'pending'], /--status: pending is not a finished status/],
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['worker', '--agent', 'ghost'], /--agent: no handler for agent ghost/],
      [['worker', '--handlers', './no-such-module.js'], /--handlers: cannot load/],
    ];
    const results = await Promise.all(cases.map(([args]) => agentq(db, args)));
    cases.forEach(([args, pattern], i) => {
      assert.doesNotThrow(() => oneLineError(results[i], 2, pattern), `agentq ${args.join(' ')}:\n${results[i].stderr}`);
    });
    // The error names the command's help.
    assert.match(results[0].stderr, /see: agentq submit --help/);
  });

  it('exits 1 with "not found" for an unknown id, and explains an ambiguous prefix', async () => {
    const db = freshDb();
    const [a, b] = await Promise.all([submit(db, ['-a', 'x']), submit(db, ['-a', 'x'])]);
    const [info, logs, cancel, ambiguous, dep] = await Promise.all([
      agentq(db, ['info', 'ZZZZZZ']),
      agentq(db, ['logs', 'ZZZZZZ']),
      agentq(db, ['cancel', 'ZZZZZZ']),
      agentq(db, ['info', '01']),
      agentq(db, ['submit', '-a', 'x', '--depends-on', 'ZZZZZZ']),
    ]);
    oneLineError(info, 1, /^agentq: job ZZZZZZ not found — list jobs with: agentq jobs\n$/);
    oneLineError(logs, 1, /not found/);
    oneLineError(cancel, 1, /not found/);
    oneLineError(dep, 1, /--depends-on: job ZZZZZZ not found/);
    oneLineError(ambiguous, 2, /id prefix 01 is ambiguous/);
    assert.ok(ambiguous.stderr.includes(a) && ambiguous.stderr.includes(b), 'lists the matching ids');
    assert.match(ambiguous.stderr, /give more characters/);
  });

  it('prints nothing but JSON on stdout with --json, even on error', async () => {
    const db = freshDb();
    await agentq(db, ['migrate']);
    const r = await agentq(db, ['info', 'NOPE', '--json']);
    oneLineError(r, 1, /not found/);
  });

  it('refuses a database path with no database for commands that only read, and creates nothing', async () => {
    const db = freshDb();
    const results = await Promise.all([['jobs'], ['status', '--json'], ['info', 'X'], ['hung'], ['worker', '--status']].map((args) => agentq(db, args)));
    for (const r of results) oneLineError(r, 1, /no agentq database at .*agentq\.db — check the --db path/);
    assert.equal(existsSync(db), false, 'no file was made');
    const migrated = await agentq(db, ['migrate']);
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.equal((await agentq(db, ['jobs'])).code, 0);
  });

  it('has help with examples for every command, and a version', async () => {
    const db = freshDb();
    const commands = ['submit', 'status', 'jobs', 'info', 'logs', 'tree', 'wait', 'cancel', 'kill', 'retry', 'hung', 'cleanup', 'migrate', 'worker', 'serve', 'events', 'monitor', 'users', 'approvals', 'limits', 'mcp'];
    const results = await Promise.all(commands.map((c) => agentq(db, [c, '--help'])));
    results.forEach((r, i) => {
      assert.equal(r.code, 0, commands[i]);
      assert.match(r.stdout, new RegExp(`Usage: agentq ${commands[i]}`), commands[i]);
      assert.match(r.stdout, /Examples:\n\s+\$ agentq /, `${commands[i]} --help has an example`);
      assert.match(r.stdout, /--db <url>/, `${commands[i]} --help shows --db`);
    });
    const top = await agentq(db, ['--help']);
    assert.equal(top.code, 0);
    for (const c of commands) assert.match(top.stdout, new RegExp(`^  ${c}\\b`, 'm'));
    const version = await agentq(db, ['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
    const bare = await agentq(db, [], { noDb: true });
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /Usage: agentq/);
  });
});
