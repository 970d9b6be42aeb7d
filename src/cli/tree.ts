/** `agentq tree ID`: the jobs a job delegated (children, recursively) and what each waits for. */
import type { Command } from 'commander';
import type { Job } from '../job.ts';
import type { Queue } from '../queue.ts';
import { action, setup, withQueue, type Context, type DbOptions } from './context.ts';
import { formatDuration, progressBar, shortId, statusText } from './format.ts';
import { line, printJson } from './io.ts';

interface TreeOptions extends DbOptions {
  json?: boolean;
}

export interface TreeNode {
  job: Job;
  children: TreeNode[];
}

const MAX_DEPTH = 100;

async function childrenOf(queue: Queue, id: string): Promise<Job[]> {
  const out: Job[] = [];
  let cursor: string | undefined;
  do {
    const page = await queue.list({ parentId: id, order: 'asc', limit: 1000, cursor });
    out.push(...page.jobs);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return out;
}

export async function buildTree(queue: Queue, job: Job, depth = 0, seen = new Set<string>()): Promise<TreeNode> {
  seen.add(job.id);
  const node: TreeNode = { job, children: [] };
  if (depth >= MAX_DEPTH) return node;
  for (const child of await childrenOf(queue, job.id)) {
    if (seen.has(child.id)) continue;
    node.children.push(await buildTree(queue, child, depth + 1, seen));
  }
  return node;
}

function collectJobs(node: TreeNode, into = new Map<string, Job>()): Map<string, Job> {
  into.set(node.job.id, node.job);
  for (const c of node.children) collectJobs(c, into);
  return into;
}

export function registerTree(program: Command, ctx: Context): void {
  const cmd = program
    .command('tree')
    .description('draw the delegation tree of a job (its children, recursively) and their dependencies')
    .argument('<id>', 'job id, or an unambiguous prefix of one')
    .option('--json', 'print the tree as nested JSON: {job, children: [...]}');
  setup(cmd, ['agentq tree 01JF3K9Z', 'agentq tree 01JF3K9Z --json | jq ".children | length"']);
  cmd.action(
    action(ctx, async (id: string, _opts: TreeOptions, command: Command) => {
      const opts = command.optsWithGlobals<TreeOptions>();
      return withQueue(ctx, opts, async (queue) => {
        const root = await buildTree(queue, await queue.get(id));
        if (opts.json) {
          printJson(ctx.io.stdout, root);
          return 0;
        }
        const known = collectJobs(root);
        const statusOf = async (depId: string) => {
          const dep = known.get(depId) ?? (await queue.store.getJob(depId));
          if (dep) known.set(depId, dep);
          return dep ? statusText(ctx.out, dep.status) : ctx.out('dim', 'deleted');
        };
        const p = ctx.out;
        const describe = async (job: Job): Promise<string> => {
          const parts = [p('bold', shortId(job.id)), job.agent + (job.type !== 'default' ? p('dim', `/${job.type}`) : ''), statusText(p, job.status)];
          if (job.status === 'running') parts.push(progressBar(p, job.progress));
          else if (job.durationMs != null) parts.push(p('dim', formatDuration(job.durationMs)));
          if (job.progressMessage && job.status === 'running') parts.push(p('dim', job.progressMessage));
          if (job.dependsOn.length) {
            const deps = await Promise.all(job.dependsOn.map(async (d) => `${shortId(d)} ${await statusOf(d)}`));
            parts.push(p('dim', '⇠ needs ') + deps.join(', '));
          }
          if (job.status === 'failed' && job.error) parts.push(p('red', job.error.message));
          return parts.join('  ');
        };
        const out = ctx.io.stdout;
        if (root.job.parentId) line(out, p('dim', `(child of ${shortId(root.job.parentId)} — see: agentq tree ${shortId(root.job.parentId)})`));
        line(out, await describe(root.job));
        const draw = async (node: TreeNode, prefix: string): Promise<void> => {
          for (let i = 0; i < node.children.length; i++) {
            const last = i === node.children.length - 1;
            const child = node.children[i];
            line(out, `${p('dim', prefix + (last ? '└── ' : '├── '))}${await describe(child.job)}`);
            await draw(child, prefix + (last ? '    ' : '│   '));
          }
        };
        await draw(root, '');
        return 0;
      });
    }),
  );
}
