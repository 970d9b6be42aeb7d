/** `agentq users add | list | token | revoke | remove`: who may use the REST API. */
import type { Command } from 'commander';
import { action, setup, withApi, jsonOption, type Context, type DbOptions } from './context.ts';
import { relativeTime, table } from './format.ts';
import { line, printJson } from './io.ts';

interface UsersOptions extends DbOptions {
  json?: boolean;
  admin?: boolean;
  withoutToken?: boolean;
}

function printToken(ctx: Context, user: string, token: string, id: string): void {
  line(ctx.io.stdout, token);
  line(ctx.io.stderr, ctx.err('dim', `token ${id} for ${user}: shown this once, only its hash is kept (send it as Authorization: Bearer <token>)`));
}

export function registerUsers(program: Command, ctx: Context): void {
  const users = program.command('users').description('users of the REST API and their tokens (stored hashed)');
  setup(users, ['agentq users add alice', 'agentq users add ops --admin', 'agentq users token alice', 'agentq users list --json']);

  const add = users
    .command('add')
    .argument('<name>', 'letters, digits, _ . @ -')
    .description('add a user, and print a first token for them (shown once)')
    .option('--admin', 'an admin sees and acts on every job; a user only on their own')
    .option('--without-token', 'make no token now (make one later with: agentq users token NAME)')
    .addOption(jsonOption());
  setup(add, ['agentq users add alice', 'agentq users add ops --admin --json']);
  add.action(
    action(ctx, async (name: string, _o: unknown, command: Command) => {
      const opts = command.optsWithGlobals<UsersOptions>();
      return withApi(
        ctx,
        opts,
        async (queue) => {
          const user = await queue.users.add(name, { admin: opts.admin });
          const issued = opts.withoutToken ? null : await queue.users.issueToken(name);
          if (opts.json) printJson(ctx.io.stdout, { user: { ...user, tokens: issued ? 1 : 0 }, ...(issued ? { token: issued.token, tokenId: issued.id } : {}) });
          else if (issued) {
            line(ctx.io.stderr, `added ${user.role} ${user.name}`);
            printToken(ctx, name, issued.token, issued.id);
          } else line(ctx.io.stdout, `added ${user.role} ${user.name}`);
          return 0;
        },
        { create: true },
      );
    }),
  );

  const list = users.command('list', { isDefault: true }).description('list users: role, tokens, when added').addOption(jsonOption());
  setup(list, ['agentq users list', 'agentq users list --json']);
  list.action(
    action(ctx, async (_o: unknown, command: Command) => {
      const opts = command.optsWithGlobals<UsersOptions>();
      return withApi(ctx, opts, async (queue) => {
        const all = await queue.users.list();
        if (opts.json) {
          printJson(ctx.io.stdout, all);
          return 0;
        }
        if (all.length === 0) {
          line(ctx.io.stdout, 'no users yet: add one with agentq users add NAME (agentq serve adds an admin on first start)');
          return 0;
        }
        for (const l of table(
          ctx.out,
          [{ header: 'NAME' }, { header: 'ROLE' }, { header: 'TOKENS' }, { header: 'ADDED' }],
          all.map((u) => [u.name, u.role === 'admin' ? ctx.out('yellow', 'admin') : 'user', String(u.tokens), relativeTime(u.createdAt)]),
        )) {
          line(ctx.io.stdout, l);
        }
        return 0;
      });
    }),
  );

  const token = users.command('token').argument('<name>').description('make a new API token for a user (their other tokens keep working)').addOption(jsonOption());
  setup(token, ['agentq users token alice', 'TOKEN=$(agentq users token alice)']);
  token.action(
    action(ctx, async (name: string, _o: unknown, command: Command) => {
      const opts = command.optsWithGlobals<UsersOptions>();
      return withApi(ctx, opts, async (queue) => {
        const issued = await queue.users.issueToken(name);
        if (opts.json) printJson(ctx.io.stdout, { user: name, token: issued.token, tokenId: issued.id });
        else printToken(ctx, name, issued.token, issued.id);
        return 0;
      });
    }),
  );

  const revoke = users
    .command('revoke')
    .argument('<name>')
    .argument('[token-id]', 'only this token (its id is printed when it is made); default: all of theirs')
    .description("revoke a user's tokens: requests with them get 401 from now on")
    .addOption(jsonOption());
  setup(revoke, ['agentq users revoke alice', 'agentq users revoke alice 01jf3k9z...']);
  revoke.action(
    action(ctx, async (name: string, tokenId: string | undefined, _o: unknown, command: Command) => {
      const opts = command.optsWithGlobals<UsersOptions>();
      return withApi(ctx, opts, async (queue) => {
        const n = await queue.users.revoke(name, tokenId);
        if (opts.json) printJson(ctx.io.stdout, { user: name, revoked: n });
        else line(ctx.io.stdout, `revoked ${n} token${n === 1 ? '' : 's'} of ${name}`);
        return n === 0 && tokenId ? 1 : 0;
      });
    }),
  );

  const remove = users.command('remove').argument('<name>').description('remove a user and revoke their tokens (their jobs stay)').addOption(jsonOption());
  setup(remove, ['agentq users remove alice']);
  remove.action(
    action(ctx, async (name: string, _o: unknown, command: Command) => {
      const opts = command.optsWithGlobals<UsersOptions>();
      return withApi(ctx, opts, async (queue) => {
        await queue.users.remove(name);
        if (opts.json) printJson(ctx.io.stdout, { removed: name });
        else line(ctx.io.stdout, `removed ${name}`);
        return 0;
      });
    }),
  );
}
