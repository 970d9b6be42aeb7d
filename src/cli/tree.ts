/** `agentq tree ID`: the jobs a job delegated (children, recursively) and what each waits for. */
import type { Command } from 'commander';
import type { Job } from '../job.ts';
import type { JobTree } from '../queue.ts';
import { action, setup, withApi, type Context, type DbOptions } from './context.ts';
import { formatDuration, progressBar, shortId, statusText } from './format.ts';
import { line, printJson } from './io.ts';

interface TreeOptions extends DbOptions {
  json?: boolean;
}

function collectJobs(node: JobTree, into = new Map<string, Job>()): Map<string, Job> {
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
      return withApi(ctx, opts, async (queue) => {
        const root = await queue.tree(id);
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
        // The tree's usage first: with none, no node needs asking for its own.
        const rootUsage = await queue.limits.usage(root.job.id);
        const describe = async (job: Job): Promise<string> => {
          const parts = [p('bold', shortId(job.id)), job.agent + (job.type !== 'default' ? p('dim', `/${job.type}`) : ''), statusText(p, job.status)];
          if (job.status === 'running') parts.push(progressBar(p, job.progress));
          else if (job.durationMs != null) parts.push(p('dim', formatDuration(job.durationMs)));
          if (job.progressMessage && job.status === 'running') parts.push(p('dim', job.progressMessage));
          if (job.dependsOn.length) {
            const deps = await Promise.all(job.dependsOn.map(async (d) => `${shortId(d)} ${await statusOf(d)}`));
            parts.push(p('dim', '⇠ needs ') + deps.join(', '));
          }
          const used = rootUsage.tree.calls === 0 ? null : job.id === root.job.id ? rootUsage.job : (await queue.limits.usage(job.id)).job;
          if (used && used.calls > 0) parts.push(p('dim', `${used.tokens.toLocaleString('en-US')} tok${used.costUsd ? ` $${used.costUsd.toFixed(4)}` : ''}`));
          if (job.status === 'failed' && job.error) parts.push(p('red', job.error.message));
          return parts.join('  ');
        };
        const out = ctx.io.stdout;
        if (root.job.parentId) line(out, p('dim', `(child of ${shortId(root.job.parentId)} — see: agentq tree ${shortId(root.job.parentId)})`));
        line(out, await describe(root.job));
        const draw = async (node: JobTree, prefix: string): Promise<void> => {
          for (let i = 0; i < node.children.length; i++) {
            const last = i === node.children.length - 1;
            const child = node.children[i];
            line(out, `${p('dim', prefix + (last ? '└── ' : '├── '))}${await describe(child.job)}`);
            await draw(child, prefix + (last ? '    ' : '│   '));
          }
        };
        await draw(root, '');
        const total = rootUsage.tree;
        if (total.calls > 0) {
          line(out, p('dim', `tree usage: ${total.tokens.toLocaleString('en-US')} tokens (${total.inputTokens.toLocaleString('en-US')} in, ${total.outputTokens.toLocaleString('en-US')} out)${total.costUsd ? `, $${total.costUsd.toFixed(4)}` : ''}, ${total.calls} calls`));
        }
        return 0;
      });
    }),
  );
}
