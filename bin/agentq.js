#!/usr/bin/env node
// The agentq command. In a checkout it runs the TypeScript sources directly
// (Node >= 22.18 strips types); an installed package runs the compiled dist/.
//
// The long-running commands (worker, serve, scheduler) run in a child Node
// with a capped young generation: V8 otherwise grows it with the machine's
// memory, and a busy worker's RSS with it. On SQLite the cap is 4 MB
// (--max-semi-space-size=4), which costs it no speed; on PostgreSQL it is
// 16 MB: a busy worker there spends about a sixth less CPU per job (less of
// it collecting garbage), and its RSS after 100,000 jobs measured no higher
// (the benches run their worker processes with the same flags). This
// process forwards signals to the child, exits as it does, and the child
// stops when this process goes away. AGENTQ_NODE_OPTIONS replaces the flag
// (empty: run in this process as it is).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { youngGeneration } from './young-generation.js';

const LONG_RUNNING = new Set(['worker', 'serve', 'scheduler']);
const WITH_VALUE = new Set(['--db', '--server', '--token']);

/** The --db value (or AGENTQ_DATABASE_URL), as the command will read it. */
function databaseOf(args) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--db') return args[i + 1] ?? '';
    if (args[i].startsWith('--db=')) return args[i].slice('--db='.length);
  }
  return process.env.AGENTQ_DATABASE_URL ?? '';
}

function commandOf(args) {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (WITH_VALUE.has(a)) i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

const args = process.argv.slice(2);
const flags = (process.env.AGENTQ_NODE_OPTIONS ?? youngGeneration(databaseOf(args))).split(/\s+/).filter(Boolean);
const respawn =
  LONG_RUNNING.has(commandOf(args)) &&
  flags.length > 0 &&
  process.env.AGENTQ_CHILD !== '1' &&
  !process.execArgv.some((a) => a.startsWith('--max-semi-space-size')) &&
  !(process.env.NODE_OPTIONS ?? '').includes('--max-semi-space-size');

if (respawn) {
  const child = spawn(process.execPath, [...flags, ...process.execArgv, fileURLToPath(import.meta.url), ...args], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, AGENTQ_CHILD: '1', AGENTQ_PARENT_PID: String(process.pid) },
  });
  // Passed on as a message: when the signal went to the whole group (a terminal's
  // Ctrl+C) the child has it too, and takes the two as one (src/cli/main.ts).
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      if (child.connected) child.send({ signal });
      else if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    });
  }
  process.on('SIGHUP', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGHUP');
  });
  child.on('error', (error) => {
    process.stderr.write(`agentq: could not start: ${error.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      // Leave as the child did: by that signal, with the default action.
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    }
    process.exit(code ?? 1);
  });
} else {
  if (process.env.AGENTQ_CHILD === '1' && process.send) {
    // Started by the agentq command above: stop when it goes away (even by SIGKILL).
    process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
    process.channel?.unref();
  }
  const source = new URL('../src/cli/main.ts', import.meta.url);
  const built = new URL('../dist/cli/main.js', import.meta.url);
  await import(existsSync(source) ? source.href : built.href);
}
