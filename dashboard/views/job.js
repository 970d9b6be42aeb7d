// One job: what it was asked, how far it got, its logs, result or error,
// its attempts over time, what it delegated and depends on; cancel and retry.
import { api, ApiError } from '../api.js';
import { badge, duration, fill, FINISHED, h, jobLink, json, shortId, throttle, when } from '../dom.js';
import { listen } from '../live.js';

export function job(root, { args }) {
  const id = args[0];
  const head = h('div', { class: 'job-head' });
  const actions = h('div', { class: 'actions' });
  const message = h('p', { class: 'notice', role: 'status' });
  const progress = h('div', { class: 'progress-block' });
  const fields = h('dl', { class: 'fields' });
  const instructions = h('pre', { class: 'text', 'data-field': 'instructions' });
  const payload = h('pre', { class: 'text', 'data-field': 'payload' });
  const metadata = h('pre', { class: 'text', 'data-field': 'metadata' });
  const outcome = h('section', { class: 'card outcome' });
  const logs = h('div', { class: 'logs', 'data-field': 'logs', role: 'log' });
  const timeline = h('ol', { class: 'timeline' });
  const tree = h('div', { class: 'tree' });
  const deps = h('div');
  const error = h('p', { class: 'error', role: 'alert' });

  fill(
    root,
    h('p', { class: 'crumbs' }, h('a', { href: '#/jobs' }, '← Jobs')),
    error,
    head,
    actions,
    message,
    progress,
    h(
      'div',
      { class: 'grid2' },
      h('section', { class: 'card' }, h('h2', null, 'Instructions'), instructions, h('h2', null, 'Payload'), payload, h('h2', null, 'Metadata'), metadata),
      h('section', { class: 'card' }, h('h2', null, 'Details'), fields),
    ),
    outcome,
    h('section', { class: 'card' }, h('h2', null, 'Log'), logs),
    h('div', { class: 'grid2' }, h('section', { class: 'card' }, h('h2', null, 'Timeline'), timeline), h('section', { class: 'card' }, h('h2', null, 'Delegation and dependencies'), tree, deps)),
  );

  let current = null;
  let closed = false;
  let logAfter = 0;
  let events = [];
  // What the job and its tree used, its budget and what is left (GET ./usage).
  let usage = null;

  // A first click arms the button, a second one (within 5 s) does it: no modal dialog.
  const confirmButton = (label, armed, fn) => {
    const b = h('button', { type: 'button', class: 'danger', 'data-action': 'cancel' }, label);
    let timer = null;
    b.addEventListener('click', () => {
      if (b.dataset.armed === 'true') {
        clearTimeout(timer);
        b.disabled = true;
        fn();
        return;
      }
      b.dataset.armed = 'true';
      b.textContent = armed;
      timer = setTimeout(() => {
        b.dataset.armed = 'false';
        b.textContent = label;
      }, 5000);
    });
    return b;
  };
  const button = (label, cls, fn) => h('button', { type: 'button', class: cls, onclick: fn }, label);
  const act = async (what, fn) => {
    message.textContent = '';
    try {
      current = await fn();
      message.textContent = what;
      render();
    } catch (e) {
      message.textContent = `${e.message}`;
    }
  };

  const render = () => {
    const j = current;
    fill(head, h('h1', null, h('span', { class: 'mono' }, j.id), ' ', badge(j.status)), h('p', { class: 'sub' }, `${j.agent}`, j.type !== 'default' ? ` · ${j.type}` : '', j.owner ? ` · owner ${j.owner}` : ''));
    const finished = FINISHED.has(j.status);
    fill(
      actions,
      finished ? null : confirmButton('Cancel job', 'Really cancel?', () => act('Cancelled.', () => api('POST', `/api/v1/jobs/${encodeURIComponent(j.id)}/cancel`, { reason: 'cancelled from the dashboard' }))),
      j.status === 'failed' || j.status === 'cancelled' ? button('Retry', 'retry', () => act('Queued again.', () => api('POST', `/api/v1/jobs/${encodeURIComponent(j.id)}/retry`))) : null,
    );
    fill(
      progress,
      h('progress', { max: 100, value: j.progress, 'aria-label': 'progress' }),
      h('span', { class: 'pct' }, `${Math.round(j.progress)}%`),
      h('span', { class: 'progress-message', 'data-field': 'progressMessage' }, j.progressMessage ?? ''),
    );
    instructions.textContent = j.instructions || '—';
    payload.textContent = j.payload === null ? '—' : json(j.payload);
    metadata.textContent = Object.keys(j.metadata ?? {}).length ? json(j.metadata) : '—';
    const row = (k, v) => [h('dt', null, k), h('dd', null, v)];
    const spent = (t) => `${t.tokens.toLocaleString()} tokens${t.costUsd ? `, $${t.costUsd.toFixed(4)}` : ''} (${t.calls} calls)`;
    const budget = j.budget ? [j.budget.tokens != null ? `${j.budget.tokens.toLocaleString()} tokens` : '', j.budget.costUsd != null ? `$${j.budget.costUsd}` : ''].filter(Boolean).join(', ') : null;
    const left = usage?.remaining && (usage.remaining.tokens != null || usage.remaining.costUsd != null)
      ? [usage.remaining.tokens != null ? `${usage.remaining.tokens.toLocaleString()} tokens` : '', usage.remaining.costUsd != null ? `$${usage.remaining.costUsd}` : ''].filter(Boolean).join(', ')
      : null;
    fill(
      fields,
      usage && usage.job.calls > 0 ? row('usage', spent(usage.job)) : null,
      usage && usage.tree.calls > usage.job.calls ? row('tree usage', spent(usage.tree)) : null,
      budget ? row('budget', `${budget} for its tree`) : null,
      left ? row('budget left', left) : null,
      j.rateKey ? row('rate key', j.rateKey) : null,
      row('attempts', `${j.attempts} of ${j.maxAttempts}`),
      row('priority', j.priority),
      row('tags', j.tags.length ? j.tags.join(', ') : '—'),
      row('created', when(j.createdAt)),
      row('run at', when(j.runAt)),
      row('started', when(j.startedAt)),
      row('finished', when(j.finishedAt)),
      row('took', duration(j.durationMs)),
      row('timeout', j.timeoutMs == null ? '—' : duration(j.timeoutMs)),
      row('worker', j.workerId ?? '—'),
      row('heartbeat', when(j.heartbeatAt)),
      row('key', j.key ?? '—'),
      row('parent', j.parentId ? jobLink(j.parentId) : '—'),
      row('schedule', j.scheduleId ? h('a', { href: '#/schedules' }, j.scheduleId) : '—'),
    );
    if (j.status === 'completed') fill(outcome, h('h2', null, 'Result'), h('pre', { class: 'text', 'data-field': 'result' }, j.result === null ? '—' : json(j.result)));
    else if (j.error) {
      const { message: msg, ...rest } = j.error;
      fill(outcome, h('h2', null, j.status === 'cancelled' ? 'Cancelled' : 'Error'), h('pre', { class: 'text error-text', 'data-field': 'error' }, msg), Object.keys(rest).length ? h('pre', { class: 'text' }, json(rest)) : null);
    } else fill(outcome, h('h2', null, 'Result'), h('p', { class: 'dim' }, 'Not finished yet.'));
    outcome.dataset.status = j.status;
    renderTimeline();
  };

  const renderTimeline = () => {
    const j = current;
    const items = events.length
      ? events.map((e) => ({ at: e.createdAt, type: e.type.replace(/^job\./, ''), attempt: e.payload?.attempt, detail: e.payload?.error?.message ?? (e.type === 'job.progress' ? `${e.payload.progress}% ${e.payload.progressMessage ?? ''}` : '') }))
      : // No events (retention removed them): what the job's own fields say.
        [
          { at: j.createdAt, type: 'created' },
          j.startedAt && { at: j.startedAt, type: 'started', attempt: j.attempts },
          j.finishedAt && { at: j.finishedAt, type: j.status, attempt: j.attempts, detail: j.error?.message },
        ].filter(Boolean);
    // Progress events are many: keep the last of each run of them.
    const shown = items.filter((it, i) => it.type !== 'progress' || items[i + 1]?.type !== 'progress');
    fill(
      timeline,
      shown.map((it) =>
        h('li', { class: `t-${it.type}` }, h('time', { datetime: it.at, title: new Date(it.at).toLocaleString() }, new Date(it.at).toLocaleTimeString()), ' ', h('strong', null, it.type), it.attempt ? h('span', { class: 'dim' }, ` attempt ${it.attempt}`) : '', it.detail ? h('span', { class: 'detail' }, ` — ${it.detail}`) : ''),
      ),
    );
  };

  const renderTree = (node, depth = 0) =>
    h(
      'li',
      null,
      node.job.id === id ? h('strong', { class: 'mono' }, shortId(node.job.id)) : jobLink(node.job.id),
      ' ',
      badge(node.job.status),
      ' ',
      h('span', { class: 'dim' }, node.job.agent),
      node.job.dependsOn.length ? h('span', { class: 'dim' }, ' after ', node.job.dependsOn.map((d, i) => [i ? ', ' : '', jobLink(d)])) : '',
      node.children.length ? h('ul', null, node.children.map((c) => renderTree(c, depth + 1))) : null,
    );

  const loadTree = async () => {
    try {
      const t = await api('GET', `/api/v1/jobs/${encodeURIComponent(id)}/tree`);
      if (closed) return;
      fill(tree, t.children.length ? h('ul', { class: 'tree-list' }, renderTree(t)) : h('p', { class: 'dim' }, 'Delegated nothing.'));
      const j = current ?? t.job;
      const found = await Promise.all(j.dependsOn.map((d) => api('GET', `/api/v1/jobs/${encodeURIComponent(d)}`).catch(() => ({ id: d, status: 'unknown', agent: '' }))));
      if (closed) return;
      fill(deps, j.dependsOn.length ? [h('h3', null, 'Depends on'), h('ul', null, found.map((d) => h('li', null, jobLink(d.id), ' ', badge(d.status), ' ', h('span', { class: 'dim' }, d.agent))))] : null);
    } catch {
      /* the job's own load reports errors */
    }
  };

  const loadLogs = async () => {
    for (;;) {
      const r = await api('GET', `/api/v1/jobs/${encodeURIComponent(id)}/logs?after=${logAfter}&limit=1000`);
      if (closed) return;
      if (logs.dataset.empty !== 'false' && r.logs.length) fill(logs), (logs.dataset.empty = 'false');
      const stick = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
      for (const l of r.logs) {
        logs.append(h('div', { class: `log l-${l.level}` }, h('time', { datetime: l.at }, new Date(l.at).toLocaleTimeString()), ' ', h('span', { class: 'level' }, l.level), ' ', h('span', { class: 'msg' }, l.message), l.data != null ? h('span', { class: 'dim' }, ` ${JSON.stringify(l.data)}`) : ''));
        logAfter = l.id;
      }
      if (stick) logs.scrollTop = logs.scrollHeight;
      if (r.logs.length < 1000) break;
    }
    if (logs.dataset.empty !== 'false') fill(logs, h('p', { class: 'dim' }, 'No log lines.'));
  };

  const load = async () => {
    try {
      const [j, ev, u] = await Promise.all([
        api('GET', `/api/v1/jobs/${encodeURIComponent(id)}`),
        api('GET', `/api/v1/jobs/${encodeURIComponent(id)}/events`),
        api('GET', `/api/v1/jobs/${encodeURIComponent(id)}/usage`).catch(() => null),
      ]);
      if (closed) return;
      current = j;
      usage = u;
      events = ev.events;
      error.textContent = '';
      render();
    } catch (e) {
      if (closed) return;
      error.textContent = e instanceof ApiError && e.status === 404 ? `No job ${id} (or it is not yours).` : String(e.message);
    }
  };
  const refresh = throttle(() => void load(), 300);
  const refreshLogs = throttle(() => void loadLogs().catch(() => {}), 500);
  const refreshTree = throttle(() => void loadTree(), 1000);

  void load().then(() => {
    void loadTree();
    void loadLogs().catch(() => {});
  });

  const off = listen((event) => {
    if (!event.type.startsWith('job.')) return;
    if (event.jobId === id) {
      // The event carries the job's new state: show it at once, then read the rest.
      if (current && !events.some((e) => e.id === event.id)) {
        events.push(event);
        current = { ...current, status: event.payload.status ?? current.status, progress: event.payload.progress ?? current.progress, progressMessage: event.payload.progressMessage ?? current.progressMessage };
        render();
      }
      refresh();
      refreshLogs();
      refreshTree();
    } else if (event.payload?.parentId === id || current?.dependsOn.includes(event.jobId)) refreshTree();
  });
  // Log lines are not events: while the job runs, look for new ones.
  const timer = setInterval(() => {
    if (current && !FINISHED.has(current.status)) refreshLogs();
  }, 1000);
  return () => {
    closed = true;
    off();
    clearInterval(timer);
    refresh.cancel();
    refreshLogs.cancel();
    refreshTree.cancel();
  };
}
