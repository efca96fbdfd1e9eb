// @ts-check
/**
 * One privacy request: its state and due date, a timeline, the tasks per connector and entity
 * (attempts, errors), the receipt rendered and downloadable as its JSON, and the actions that fit
 * its state and the caller's role. Follows the request live from the `privacyRequestEvents`
 * subscription (each event reloads it once); polls every 1.5 s until it finishes only when the
 * live connection fails.
 * @module detail
 */

import { gql } from './api.js';
import { h, replace, badge, daysLeft, when, errorBox, show } from './ui.js';
import { MANUAL_FIELDS, REQUEST_FIELDS, available } from './actions.js';
import { subscribe } from './live.js';

const FINISHED = ['COMPLETED', 'FAILED', 'CANCELLED', 'DENIED'];
const POLL_MS = 1500;
const EVENTS = 'subscription Request($id: ID!) { privacyRequestEvents(id: $id) { kind status at } }';

/**
 * @param {HTMLElement} el
 * @param {string[]} params
 */
export async function render(el, [id]) {
  if (!id) {
    replace(el, errorBox('No request named.'));
    return;
  }
  const view = h('div', { id: 'request', 'data-id': id });
  const notice = h('div', { 'aria-live': 'polite', id: 'request-notice' });
  replace(el, h('p', {}, h('a', { href: '#/queue' }, '← All requests')), notice, view);
  /** @type {ReturnType<typeof setTimeout>|null} */
  let timer = null;
  let stopped = false;
  /** Whether the subscription is up: then events, not a timer, reload the request. */
  let live = false;
  let loading = false;
  let again = false;
  /** What the page shows now, to skip re-rendering the same. */
  let last = '';

  /** Reloads once; a reload asked for while one runs runs after it. */
  async function reload() {
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    try {
      await load();
    } catch (error) {
      fail(error);
    } finally {
      loading = false;
      if (again && !stopped) {
        again = false;
        reload();
      }
    }
  }

  async function load() {
    timer = null;
    const answer = await gql(
      `query Request($id: ID!) { privacyRequest(id: $id) { ${REQUEST_FIELDS} } manualTasks(status: OPEN, first: 500) { tasks { ${MANUAL_FIELDS} } } }`,
      { id },
    );
    if (stopped) return;
    const request = answer.data?.privacyRequest;
    if (request) request.manualTasks = (answer.data?.manualTasks?.tasks || []).filter((/** @type {any} */ t) => t.requestId === id);
    if (!request) {
      replace(view, errorBox(answer.errors.length ? answer.errors.map((e) => e.message).join('; ') : `No request ${id}.`));
      return;
    }
    // Unchanged (an event that changed nothing shown): the page stays as it is, focus and all.
    const shown = JSON.stringify([request, answer.errors]);
    if (shown !== last) {
      last = shown;
      show_(request, answer.errors);
    }
    if (!live && !FINISHED.includes(request.status) && !timer) timer = setTimeout(reload, POLL_MS);
  }

  /** @param {unknown} error */
  function fail(error) {
    if (stopped) return;
    replace(notice, errorBox(`Could not refresh: ${error instanceof Error ? error.message : error}`));
    if (!live && !timer) timer = setTimeout(reload, POLL_MS * 2);
  }

  /** @param {any} request @param {any[]} errors */
  function show_(request, errors) {
    const focused = document.activeElement && view.contains(document.activeElement) ? document.activeElement.id : '';
    replace(
      view,
      header(request),
      errors.length ? errorBox(`Partly answered: ${errors.map((e) => e.message).join('; ')}`) : null,
      actionsBar(request),
      h('div', { class: 'columns' }, h('section', {}, h('h2', {}, 'Timeline'), timeline(request)), h('section', {}, h('h2', {}, 'Tasks'), tasks(request.tasks))),
      receipt(request),
    );
    if (focused) document.getElementById(focused)?.focus();
  }

  /** @param {any} request */
  function actionsBar(request) {
    const actions = available(request);
    if (!actions.length) return null;
    return h(
      'div',
      { class: 'buttons actions', role: 'group', 'aria-label': 'Actions' },
      actions.map((action) =>
        h(
          'button',
          {
            type: 'button',
            id: `action-${action.id}`,
            class: action.danger ? 'danger' : '',
            onclick: async () => {
              replace(notice);
              try {
                const updated = await action.run(request);
                if (updated) {
                  replace(notice, h('p', { class: 'ok', role: 'status' }, `${action.label.replace(/…$/, '')}: done.`));
                  await reload();
                  // A retried request runs again: follow it live anew.
                  if (!FINISHED.includes(updated.status) && !live) follow();
                }
              } catch (error) {
                replace(notice, errorBox(`${action.label.replace(/…$/, '')} refused: ${error instanceof Error ? error.message : error}`));
              }
            },
          },
          action.label,
        ),
      ),
    );
  }

  /** @type {() => void} */
  let unsubscribe = () => {};
  /** Follows the request's events until it finishes; polls instead when that fails. */
  function follow() {
    unsubscribe();
    unsubscribe = subscribe(EVENTS, { id }, {
      onReady: () => {
        live = true;
        view.dataset.live = 'subscription';
        if (timer) clearTimeout(timer);
        timer = null;
      },
      onNext: () => reload(),
      onComplete: () => {
        live = false;
        reload();
      },
      onFail: () => {
        live = false;
        view.dataset.live = 'polling';
        if (!stopped && !timer) timer = setTimeout(reload, POLL_MS);
      },
    });
  }

  await load();
  follow();
  return () => {
    stopped = true;
    unsubscribe();
    if (timer) clearTimeout(timer);
  };
}

/** @param {any} r */
function header(r) {
  return h(
    'div',
    { class: 'card' },
    h('h1', {}, `${r.type} `, h('code', {}, r.id), ' ', h('span', { id: 'request-status' }, badge(r.status))),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Person'), h('dd', {}, h('code', { title: 'keyed hash of the identity given' }, r.subject.slice(0, 16) + '…')),
      h('dt', {}, 'Regulation'), h('dd', {}, r.regulation),
      h('dt', {}, 'Due'), h('dd', {}, when(r.dueAt), ' (', daysLeft(r.dueAt, r.overdue, FINISHED.includes(r.status)), ')'),
      r.extensionReason ? [h('dt', {}, 'Extended because'), h('dd', {}, r.extensionReason)] : null,
      h('dt', {}, 'Requested by'), h('dd', {}, r.requestedBy),
      r.reason ? [h('dt', {}, 'Reason'), h('dd', {}, r.reason)] : null,
      r.decidedBy
        ? [h('dt', {}, r.status === 'DENIED' ? 'Denied by' : 'Approved by'), h('dd', { id: 'request-decision' }, r.decidedBy, r.decisionReason ? `: ${r.decisionReason}` : '')]
        : null,
      r.error ? [h('dt', {}, 'Error'), h('dd', { class: 'error-text' }, r.error)] : null,
    ),
  );
}

/**
 * The timeline: every event the request recorded (`PrivacyRequest.events`), oldest first.
 * @param {any} r
 */
function timeline(r) {
  const events = Array.isArray(r.events) ? r.events : [];
  if (!events.length) return h('p', { class: 'muted', id: 'timeline' }, 'No events recorded.');
  const failed = ['failed', 'task.failed', 'denied', 'cancelled'];
  return h(
    'ol',
    { class: 'timeline', id: 'timeline' },
    events.map((/** @type {any} */ e) =>
      h(
        'li',
        { class: failed.includes(e.kind) ? 'error-text' : '', 'data-kind': e.kind },
        h('time', { datetime: e.at }, when(e.at)),
        ' ',
        h('span', { class: 'kind' }, e.kind),
        ' ',
        e.kind === 'received' ? `${e.message} from ${r.requestedBy}` : e.message,
      ),
    ),
  );
}

/** @param {any[]} list */
function tasks(list) {
  if (!list.length) return h('p', { class: 'muted' }, 'Not planned yet.');
  const byConnector = new Map();
  for (const t of list) {
    if (!byConnector.has(t.connector)) byConnector.set(t.connector, []);
    byConnector.get(t.connector).push(t);
  }
  return h(
    'table',
    { class: 'list', id: 'tasks' },
    h('thead', {}, h('tr', {}, ['Connector', 'Entity', 'Action', 'Status', 'Attempts', 'Records', 'Verified', 'Error'].map((t) => h('th', { scope: 'col' }, t)))),
    [...byConnector.entries()].map(([connector, items]) =>
      h(
        'tbody',
        {},
        items.map((/** @type {any} */ t, /** @type {number} */ i) =>
          h(
            'tr',
            {},
            i === 0 ? h('th', { scope: 'rowgroup', rowspan: String(items.length) }, connector) : null,
            h('td', {}, t.entity),
            h('td', {}, t.action, t.retainUntil ? h('div', { class: 'small muted' }, `until ${t.retainUntil}${t.legalBasis ? ` (${t.legalBasis})` : ''}`) : null),
            h('td', {}, badge(t.status)),
            h('td', {}, String(t.attempts)),
            h('td', {}, show(t.records), t.files ? ` + ${t.files} files` : ''),
            h('td', {}, t.verified === null || t.verified === undefined ? '—' : t.verified ? 'yes' : h('strong', { class: 'error-text' }, 'NO')),
            h('td', { class: 'error-text' }, t.error ? `${t.errorCode ? `${t.errorCode}: ` : ''}${t.error}` : ''),
          ),
        ),
      ),
    ),
  );
}

/** @param {any} r */
function receipt(r) {
  const section = h('section', { id: 'receipt-section' }, h('h2', {}, 'Receipt'));
  if (r.download) {
    section.append(
      h('p', {}, 'Export bundle: ', h('a', { href: r.download.url, id: 'export-download' }, 'download the zip'), ` (${r.download.bytes} bytes, SHA-256 ${r.download.sha256.slice(0, 16)}…, link expires ${when(r.download.expiresAt)})`),
    );
  }
  if (!r.receipt) {
    section.append(h('p', { class: 'muted' }, r.status === 'COMPLETED' ? 'No receipt was kept.' : 'Issued when the request completes.'));
    return section;
  }
  const text = JSON.stringify(r.receipt);
  const check = h('span', { id: 'receipt-check', class: 'muted' }, 'checking…');
  digest(text).then((hex) => {
    if (hex === null) {
      check.textContent = 'not checked here (this page is not a secure context)';
    } else if (hex === r.receiptSha256) {
      check.textContent = 'the JSON below hashes to it';
      check.className = 'ok';
    } else {
      check.textContent = 'the JSON below does NOT hash to it';
      check.className = 'error-text';
    }
  });
  const button = h(
    'button',
    {
      type: 'button',
      id: 'receipt-download',
      onclick: () => {
        const blob = new Blob([text], { type: 'application/json' });
        const url = URL.createObjectURL(blob);
        const a = h('a', { href: url, download: `receipt-${r.id}.json` });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      },
    },
    'Download receipt (JSON)',
  );
  const rc = r.receipt;
  section.append(
    h('p', {}, 'SHA-256 ', h('code', { id: 'receipt-sha' }, r.receiptSha256 || '—'), ': ', check, ' ', button),
    h(
      'dl',
      { class: 'facts', id: 'receipt' },
      h('dt', {}, 'Kind'), h('dd', {}, show(rc.receipt)),
      h('dt', {}, 'Issued'), h('dd', {}, when(rc.issuedAt)),
      h('dt', {}, 'Verification'),
      h('dd', { class: rc.verification?.result === 'PASSED' ? 'ok' : 'error-text', id: 'receipt-verification' }, `${show(rc.verification?.result)} — ${show(rc.verification?.method)}`),
    ),
    Array.isArray(rc.entries)
      ? h(
          'table',
          { class: 'list', id: 'receipt-entries' },
          h('thead', {}, h('tr', {}, ['Connector', 'Entity', 'Action', 'Deleted', 'Masked', 'Retained', 'Other', 'Legal basis / until', 'Verified'].map((t) => h('th', { scope: 'col' }, t)))),
          h(
            'tbody',
            {},
            rc.entries.map((/** @type {any} */ e) =>
              h(
                'tr',
                {},
                h('td', {}, e.connector), h('td', {}, e.entity), h('td', {}, e.action),
                h('td', {}, show(e.deleted), e.filesDeleted ? ` + ${e.filesDeleted} files` : ''),
                h('td', {}, show(e.masked)), h('td', {}, show(e.retained)),
                h('td', {}, [e.rectified && `rectified ${e.rectified}`, e.exported && `exported ${e.exported}`, e.suppressed && `suppressed ${e.suppressed}`].filter(Boolean).join(', ') || '—'),
                h('td', {}, e.legalBasis ? `${e.legalBasis}${e.retainUntil ? `, until ${e.retainUntil}` : ''}` : '—'),
                h('td', {}, e.verified === null || e.verified === undefined ? '—' : e.verified ? 'yes' : h('strong', { class: 'error-text' }, 'NO')),
              ),
            ),
          ),
        )
      : null,
    h('details', {}, h('summary', {}, 'Raw JSON'), h('pre', { class: 'json' }, JSON.stringify(rc, null, 2))),
  );
  return section;
}

/** Hex SHA-256 of `text`, or null where the browser offers no WebCrypto (plain http). @param {string} text */
async function digest(text) {
  if (!globalThis.crypto?.subtle) return null;
  const bytes = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');
}
