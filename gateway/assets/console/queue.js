// @ts-check
/**
 * The requests queue: counts per status, filters (status, type, overdue), newest first with
 * cursor paging, days left with overdue highlighted. Live by polling every 3 s: the
 * `privacyRequestEvents` subscription follows one request, not a list, and its websocket
 * authenticates by the upgrade's headers, which a browser cannot set.
 * @module queue
 */

import { gql, gqlStrict } from './api.js';
import { h, replace, badge, daysLeft, when, field, select, errorBox } from './ui.js';

export const STATUSES = ['AWAITING_APPROVAL', 'RECEIVED', 'IN_PROGRESS', 'WAITING', 'COMPLETED', 'FAILED', 'CANCELLED', 'DENIED'];
export const TYPES = ['ERASURE', 'EXPORT', 'RECTIFICATION', 'OBJECTION'];
const FINISHED = ['COMPLETED', 'FAILED', 'CANCELLED', 'DENIED'];
const PAGE = 25;
const COUNTED = 500;
const POLL_MS = 3000;

const COUNTS = `query Counts {${STATUSES.map(
  (s) => ` ${s.toLowerCase()}: privacyRequests(status: ${s}, first: ${COUNTED}) { requests { id } hasNextPage }`,
).join('')} }`;

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
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const [countData, list] = await Promise.all([
        gqlStrict(COUNTS),
        gql(LIST, {
          status: filter.status || null,
          type: filter.type || null,
          overdue: filter.overdue ? true : null,
          first: PAGE,
          after,
        }),
      ]);
      replace(
        counts,
        STATUSES.map((s) => {
          const page = countData[s.toLowerCase()];
          const n = `${page.requests.length}${page.hasNextPage ? '+' : ''}`;
          return h('li', { 'data-status': s }, badge(s), ' ', h('span', { class: 'count' }, n));
        }),
      );
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
      updated.textContent = `Updated ${when(new Date().toISOString())}; refreshes every ${POLL_MS / 1000} s.`;
    } catch (error) {
      replace(table, errorBox(`Could not load the requests: ${error instanceof Error ? error.message : error}`));
    } finally {
      busy = false;
    }
  }

  await refresh();
  const timer = setInterval(refresh, POLL_MS);
  return () => clearInterval(timer);
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
