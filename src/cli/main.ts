/** The `agentq` executable (bin/agentq.js imports this): runs the command line on this process. */
import { run } from './program.ts';

// `agentq jobs | head`: a closed pipe is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

process.exitCode = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  // Read only when asked for (`--payload-file -`): touching process.stdin opens it.
  get stdin() {
    return process.stdin;
  },
  cwd: process.cwd(),
  onSignal(listener) {
    // Run by the agentq command (bin/agentq.js), a stop request can arrive twice: as a
    // signal of its own (a terminal's Ctrl+C or a supervisor reaches the whole group) and
    // passed on by that command, as a message. The two within a moment count once; two
    // signals, or two messages, are two requests.
    const seen = { signal: new Map<string, number>(), message: new Map<string, number>() };
    const hear = (signal: NodeJS.Signals, via: 'signal' | 'message') => {
      const other = seen[via === 'signal' ? 'message' : 'signal'].get(signal);
      const now = Date.now();
      seen[via].set(signal, now);
      if (other !== undefined && now - other < 1000) {
        seen[via === 'signal' ? 'message' : 'signal'].delete(signal);
        return;
      }
      listener(signal);
    };
    const onSignal = (signal: NodeJS.Signals) => hear(signal, 'signal');
    const onMessage = (m: unknown) => {
      const signal = (m as { signal?: unknown } | null)?.signal;
      if (signal === 'SIGINT' || signal === 'SIGTERM') hear(signal, 'message');
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('message', onMessage);
    return () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('message', onMessage);
    };
  },
  exit: (code) => process.exit(code),
});
