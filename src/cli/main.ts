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
    process.on('SIGINT', listener);
    process.on('SIGTERM', listener);
    return () => {
      process.off('SIGINT', listener);
      process.off('SIGTERM', listener);
    };
  },
  exit: (code) => process.exit(code),
});
