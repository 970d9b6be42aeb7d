/** `agentq mcp`: an MCP server on stdio, so that AI agents delegate work through agentq. */
import { Writable } from 'node:stream';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import { TOOLS } from '../mcp/tools.ts';
import { action, databaseLocation, serverOf, setup, withApi, type Context, type DbOptions } from './context.ts';
import { line, usageError, type Output } from './io.ts';

/** The transport needs a stream it can wait on ('drain'); a plain Output gets one around it. */
function writable(out: Output): Writable {
  const stream = out as Partial<Writable>;
  if (typeof stream.once === 'function' && typeof stream.write === 'function') return out as Writable;
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      out.write(chunk.toString());
      done();
    },
  });
}

export function registerMcp(program: Command, ctx: Context): void {
  const cmd = program
    .command('mcp')
    .description('serve agentq to AI agents as MCP tools on stdin/stdout (started by an MCP client, not by hand)');
  setup(cmd, ['agentq mcp --db ~/agentq.db', 'AGENTQ_DATABASE_URL=postgres://localhost/agentq agentq mcp', 'agentq mcp --server http://127.0.0.1:8080 --token $AGENTQ_TOKEN']);
  cmd.addHelpText(
    'after',
    `In an MCP client's configuration:
  { "mcpServers": { "agentq": { "command": "agentq", "args": ["mcp", "--db", "/path/to/agentq.db"] } } }

Tools:
${TOOLS.map((t) => `  ${t.name.padEnd(15)} ${t.title}`).join('\n')}

Jobs are run by workers (agentq worker, agentq serve) on the same database. With
--server URL --token T it works through an agentq server, as that token's user.
Standard output carries the protocol; messages go to standard error. It stops when
standard input closes or on SIGINT/SIGTERM.
`,
  );
  cmd.action(
    action(ctx, async (_opts: unknown, command: Command) => {
      const opts = command.optsWithGlobals<DbOptions>();
      const stdin = ctx.io.stdin;
      if (!stdin) throw usageError('there is no standard input to read MCP messages from', 'start agentq mcp from an MCP client');
      return withApi(
        ctx,
        opts,
        async (queue) => {
          // Loaded here, so that other commands do not pay for the SDK.
          const [{ createMcpServer }, { StdioServerTransport }] = await Promise.all([
            import('../mcp/server.ts'),
            import('@modelcontextprotocol/sdk/server/stdio.js'),
          ]);
          const mcp = createMcpServer(queue, { version: program.version() });
          let stop: (why: string) => void = () => {};
          const stopped = new Promise<string>((resolve) => (stop = resolve));
          const input = stdin as Readable;
          const onEnd = () => stop('standard input closed');
          input.once('end', onEnd);
          input.once('close', onEnd);
          const off = ctx.io.onSignal?.((signal) => stop(`${signal} received`)) ?? (() => {});
          const transport = new StdioServerTransport(input, writable(ctx.io.stdout));
          transport.onclose = () => stop('connection closed');
          try {
            await mcp.connect(transport);
            line(ctx.io.stderr, `agentq mcp: serving ${TOOLS.length} tools on stdio, ${serverOf(ctx, opts) ? `server ${serverOf(ctx, opts)}` : `database ${databaseLocation(ctx, opts)}`}`);
            const why = await stopped;
            line(ctx.io.stderr, `agentq mcp: ${why} — stopping`);
            return 0;
          } finally {
            off();
            input.off('end', onEnd);
            input.off('close', onEnd);
            await mcp.close();
          }
        },
        { create: true },
      );
    }),
  );
}
