// Approvals: the inbox of jobs waiting for a person's yes or no, and the decisions made.
import { api } from '../api.js';
import { fill, h, jobLink, json, table, throttle, when } from '../dom.js';
import { listen } from '../live.js';

export function approvals(root, { params }) {
  const showAll = params.get('all') === '1';
  const body = h('div');
  const message = h('p', { class: 'notice', role: 'status' });
  const error = h('p', { class: 'error', role: 'alert' });
  const toggle = h('a', { href: showAll ? '#/approvals' : '#/approvals?all=1' }, showAll ? 'Show pending only' : 'Show decided too');
  fill(root, h('h1', null, 'Approvals'), h('p', { class: 'dim' }, toggle), error, message, body);
  let closed = false;

  const decide = async (a, verb, comment) => {
    message.textContent = '';
    try {
      const r = await api('POST', `/api/v1/approvals/${encodeURIComponent(a.id)}/${verb}`, comment ? { comment } : {});
      message.textContent = `${a.title}: ${r.status}.`;
      await load();
    } catch (e) {
      message.textContent = `${a.title}: ${e.message}`;
    }
  };

  const render = (list) => {
    const rows = list.map((a) => {
      const comment = h('input', { type: 'text', name: 'comment', placeholder: 'comment (why)', 'aria-label': 'comment', maxlength: '10000' });
      const pending = a.status === 'pending';
      return h(
        'tr',
        { 'data-approval': a.id, class: pending ? '' : 'disabled' },
        h('td', null, h('strong', null, a.title), a.details !== null ? h('pre', { class: 'json small' }, json(a.details)) : null),
        h('td', null, jobLink(a.jobId), h('div', { class: 'dim' }, a.agent), a.owner ? h('div', { class: 'dim' }, `owner ${a.owner}`) : null),
        h('td', null, a.assignee ?? h('span', { class: 'dim' }, 'anyone')),
        h('td', null, when(a.createdAt), a.expiresAt ? h('div', { class: 'dim' }, 'expires ', when(a.expiresAt)) : null),
        h(
          'td',
          { class: 'state' },
          a.status,
          a.decidedBy ? h('div', { class: 'dim' }, `by ${a.decidedBy}`) : null,
          a.comment ? h('div', { class: 'dim' }, a.comment) : null,
        ),
        h(
          'td',
          null,
          pending
            ? h(
                'div',
                { class: 'row-actions' },
                comment,
                h('button', { type: 'button', class: 'small', 'data-action': 'approve', onclick: () => decide(a, 'approve', comment.value) }, 'Approve'),
                h('button', { type: 'button', class: 'small danger', 'data-action': 'reject', onclick: () => decide(a, 'reject', comment.value) }, 'Reject'),
              )
            : null,
        ),
      );
    });
    fill(body, table(['Request', 'Job', 'Assignee', 'Asked', 'Status', ''], rows, showAll ? 'No approvals yet.' : 'Nothing is waiting for a decision.'));
  };

  const load = async () => {
    try {
      const r = await api('GET', `/api/v1/approvals${showAll ? '' : '?status=pending'}`);
      if (closed) return;
      error.textContent = '';
      render(r.approvals);
    } catch (e) {
      if (!closed) error.textContent = String(e.message);
    }
  };
  const refresh = throttle(load, 500);
  void load();
  const off = listen((event) => {
    if (['job.waiting', 'job.resumed', 'job.failed', 'job.cancelled'].includes(event.type)) refresh();
  });
  return () => {
    closed = true;
    off();
    refresh.cancel();
  };
}
