// @ts-check
/**
 * The requests queue: counts per status (`privacyRequestCounts`, shown as filter chips),
 * filters (status, type, overdue), newest first with cursor paging, days left with overdue
 * highlighted. Live from the `privacyRequestEvents` subscription without an id (every request's
 * events): each event refreshes the page once. Polls every 3 s only while the live connection
 * is down (retried every 15 s).
 * @module queue
 */

import { gql, gqlStrict } from './api.js';
import { h, replace, badge, daysLeft, when, field, select, errorBox } from './ui.js';
import { subscribe } from './live.js';

export const STATUSES = ['AWAITING_APPROVAL', 'RECEIVED', 'IN_PROGRESS', 'WAITING', 'COMPLETED', 'FAILED', 'CANCELLED', 'DENIED'];
export const TYPES = ['ERASURE', 'EXPORT', 'RECTIFICATION', 'OBJECTION'];
const FINISHED = ['COMPLETED', 'FAILED', 'CANCELLED', 'DENIED'];
const PAGE = 25;
const POLL_MS = 3000;
const RETRY_LIVE_MS = 15000;

const COUNTS = `query Counts($type: PrivacyRequestType, $overdue: Boolean) {
  privacyRequestCounts(type: $type, overdue: $overdue) { status count }
}`;
const EVENTS = 'subscription Queue { privacyRequestEvents { requestId status } }';

const LIST = `query Queue($status: PrivacyRequestStatus, $type: PrivacyRequestType, $overdue: Boolean, $first: Int, $after: String) {
  privacyRequests(status: $status, type: $type, overdue: $overdue, first: $first, after: $after) {
    requests { id type status regulation requestedBy createdAt updatedAt dueAt overdue error }
    endCursor hasNextPage
  }
}`;

/** @param {HTMLElement} el */
export async function render(el) {
  /** @type {{ status: string, type: string, overdue: boolean }} */
  const filter = { status: '', type: '', overdue: false };
  /** @type {(string|null)[]} cursors of the pages before this one */
  let cursors = [];
  /** @type {string|null} */
  let after = null;

  const counts = h('ul', { class: 'counts', id: 'counts', 'aria-label': 'Requests per status' });
  const status = /** @type {HTMLSelectElement} */ (select([['', 'any status'], ...STATUSES.map((s) => /** @type {[string,string]} */ ([s, s]))], { id: 'filter-status' }));
  const type = /** @type {HTMLSelectElement} */ (select([['', 'any type'], ...TYPES.map((s) => /** @type {[string,string]} */ ([s, s]))], { id: 'filter-type' }));
  const overdue = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', id: 'filter-overdue' }));
  const table = h('div', { id: 'queue', 'aria-live': 'polite' });
  const pager = h('div', { class: 'buttons' });
  const updated = h('p', { class: 'muted small' });
  const onFilter = () => {
    filter.status = status.value;
    filter.type = type.value;
    filter.overdue = overdue.checked;
    cursors = [];
    after = null;
    refresh();
  };
  status.addEventListener('change', onFilter);
  type.addEventListener('change', onFilter);
  overdue.addEventListener('change', onFilter);

  replace(
    el,
    h('h1', {}, 'Privacy requests'),
    counts,
    h(
      'div',
      { class: 'filters', role: 'group', 'aria-label': 'Filters' },
      field('Status', status),
      field('Type', type),
      h('div', { class: 'field check' }, overdue, h('label', { for: 'filter-overdue' }, 'Overdue only')),
      h('a', { href: '#/new', class: 'button' }, 'New request'),
    ),
    table,
    pager,
    updated,
  );

  let busy = false;
  let again = false;
  async function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const variables = { type: filter.type || null, overdue: filter.overdue ? true : null };
      const [countData, list] = await Promise.all([
        gqlStrict(COUNTS, variables),
        gql(LIST, { ...variables, status: filter.status || null, first: PAGE, after }),
      ]);
      replace(counts, chips(countData.privacyRequestCounts));
      if (!list.data?.privacyRequests) {
        replace(table, errorBox(list.errors.map((e) => e.message).join('; ') || 'no answer'));
        return;
      }
      const page = list.data.privacyRequests;
      replace(table, requestsTable(page.requests));
      replace(
        pager,
        cursors.length
          ? h('button', { type: 'button', onclick: () => { after = cursors.pop() ?? null; refresh(); } }, '← Newer')
          : null,
        page.hasNextPage
          ? h('button', { type: 'button', id: 'next-page', onclick: () => { cursors.push(after); after = page.endCursor; refresh(); } }, 'Older →')
          : null,
      );
      updated.textContent = `Updated ${when(new Date().toISOString())}; ${live ? 'live' : `refreshes every ${POLL_MS / 1000} s (live updates unavailable)`}.`;
    } catch (error) {
      replace(table, errorBox(`Could not load the requests: ${error instanceof Error ? error.message : error}`));
    } finally {
      busy = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  /** The status counts as chips: each one filters the queue to its status (again: all). @param {{status: string, count: number}[]} rows */
  function chips(rows) {
    return rows.map((row) =>
      h(
        'li',
        { 'data-status': row.status },
        h(
          'button',
          {
            type: 'button',
            class: 'chip',
            'aria-pressed': filter.status === row.status ? 'true' : 'false',
            title: filter.status === row.status ? 'Show every status' : `Show ${row.status} only`,
            onclick: () => {
              status.value = filter.status === row.status ? '' : row.status;
              onFilter();
            },
          },
          badge(row.status),
          ' ',
          h('span', { class: 'count' }, String(row.count)),
        ),
      ),
    );
  }

  // Live: every event refreshes once (events arriving together make one refresh).
  let live = false;
  let closed = false;
  /** @type {ReturnType<typeof setInterval>|null} */
  let poller = null;
  /** @type {ReturnType<typeof setTimeout>|null} */
  let retry = null;
  /** @type {() => void} */
  let unsubscribe = () => {};
  function connect() {
    retry = null;
    unsubscribe = subscribe(EVENTS, {}, {
      onReady: () => {
        live = true;
        table.dataset.live = 'subscription';
        if (poller) clearInterval(poller);
        poller = null;
        // What happened while the connection was down (or opening).
        refresh();
      },
      onNext: () => refresh(),
      onFail: () => {
        live = false;
        table.dataset.live = 'polling';
        if (closed) return;
        if (!poller) poller = setInterval(refresh, POLL_MS);
        retry = setTimeout(connect, RETRY_LIVE_MS);
      },
    });
  }

  await refresh();
  connect();
  return () => {
    closed = true;
    unsubscribe();
    if (poller) clearInterval(poller);
    if (retry) clearTimeout(retry);
  };
}

/** @param {any[]} requests */
function requestsTable(requests) {
  if (!requests.length) return h('p', { class: 'muted' }, 'No requests match.');
  return h(
    'table',
    { class: 'list' },
    h('thead', {}, h('tr', {}, ['Request', 'Type', 'Status', 'Due', 'Created', 'Requested by'].map((t) => h('th', { scope: 'col' }, t)))),
    h(
      'tbody',
      {},
      requests.map((r) =>
        h(
          'tr',
          { class: r.overdue ? 'row-overdue' : '', 'data-id': r.id },
          h('td', {}, h('a', { href: `#/request/${encodeURIComponent(r.id)}` }, r.id)),
          h('td', {}, r.type),
          h('td', {}, badge(r.status)),
          h('td', {}, daysLeft(r.dueAt, r.overdue, FINISHED.includes(r.status))),
          h('td', {}, when(r.createdAt)),
          h('td', {}, r.requestedBy),
        ),
      ),
    ),
  );
}
