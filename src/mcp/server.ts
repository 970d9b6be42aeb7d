/**
 * agentq as an MCP server: the tools of tools.ts over any MCP transport
 * (`agentq mcp` uses stdio), working through an McpBackend.
 *
 * It is built on the SDK's protocol-level `Server` rather than `McpServer`
 * so that the tools check their own arguments: a model then reads what is
 * wrong in agentq's words, naming its parameter ("agent_name is required"),
 * and every failure — bad arguments, an unknown job, a library refusal — is a
 * tool error (`isError: true`), never a protocol error or a crash.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { CallToolRequestSchema, ListToolsRequestSchema, type CallToolResult, type Tool as ToolDefinition } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { McpBackend } from './backend.ts';
import { argumentsMessage, errorMessage } from './errors.ts';
import { TOOLS, type Tool } from './tools.ts';

export interface McpServerOptions {
  /** The version reported to clients (the CLI passes agentq's). (Default: "0.0.0") */
  version?: string;
}

/** How to use the tools together: sent to the client when it connects. */
export const SERVER_INSTRUCTIONS = `agentq is a durable job queue: agents hand work to other agents as jobs, which workers run in the background.
Delegate with submit_job (instructions and agent_name), then wait_for_job until it has finished (or check with get_job_status); its result is the agent's output. get_job_logs shows what the agent wrote while it ran, get_jobs lists jobs, cancel_job stops one, cleanup_jobs deletes old finished jobs. Job ids may be shortened to a prefix no other job shares.`;

export interface AgentqMcpServer {
  /** The SDK server, for connecting it to a transport. */
  readonly server: Server;
  connect(transport: Transport): Promise<void>;
  /** Closes the connection (aborting calls in progress, such as a wait) and resolves once every call has returned. */
  close(): Promise<void>;
}

function definition(tool: Tool): ToolDefinition {
  const schema = z.toJSONSchema(tool.schema, { target: 'draft-7', io: 'input' }) as ToolDefinition['inputSchema'] & { $schema?: string };
  delete schema.$schema;
  return { name: tool.name, title: tool.title, description: tool.description, inputSchema: schema, annotations: { title: tool.title, ...tool.annotations } };
}

function failure(message: string): CallToolResult {
  return { content: [{ type: 'text', text: message }], isError: true };
}

/** An MCP server whose tools work on `backend` (a Queue, or anything with its methods). */
export function createMcpServer(backend: McpBackend, options: McpServerOptions = {}): AgentqMcpServer {
  const server = new Server(
    { name: 'agentq', title: 'agentq job queue', version: options.version ?? '0.0.0' },
    { capabilities: { tools: {} }, instructions: SERVER_INSTRUCTIONS },
  );
  const tools = new Map(TOOLS.map((tool) => [tool.name, tool]));
  const definitions = TOOLS.map(definition);
  const calls = new Set<Promise<unknown>>();

  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: definitions }));

  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const tool = tools.get(request.params.name);
    if (!tool) return failure(`There is no tool ${request.params.name}; the tools are ${[...tools.keys()].join(', ')}.`);
    const parsed = tool.schema.safeParse(request.params.arguments ?? {});
    if (!parsed.success) return failure(argumentsMessage(parsed.error, Object.keys(tool.schema.shape)));
    const token = request.params._meta?.progressToken;
    const progress =
      token === undefined
        ? undefined
        : (value: number, message: string) =>
            extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: value, total: 100, message } });
    const call = tool.run(backend, parsed.data, { signal: extra.signal, progress });
    calls.add(call);
    try {
      const value = await call;
      return { content: [{ type: 'text', text: JSON.stringify(value) }] };
    } catch (error) {
      return failure(errorMessage(error));
    } finally {
      calls.delete(call);
    }
  });

  return {
    server,
    connect: (transport) => server.connect(transport),
    async close() {
      await server.close();
      await Promise.allSettled([...calls]);
    },
  };
}
