// @ts-check
/**
 * The retention schedule (`retentionSchedule`, needs `manage_requests`): what records erasures
 * retained, on what legal basis, until when, and what happens to each then; soonest first with
 * paging. Read only: retention ends on its own when its date passes.
 * @module retention
 */

import { gql } from './api.js';
import { h, replace, errorBox, when, badge } from './ui.js';

const PAGE = 50;

/** @param {HTMLElement} el */
export async function render(el) {
  const list = h('div', { id: 'retention', 'aria-live': 'polite' });
  const pager = h('div', { class: 'buttons' });
  /** @type {(string|null)[]} */
  let cursors = [];
  /** @type {string|null} */
  let after = null;
  replace(
    el,
    h('h1', {}, 'Retention schedule'),
    h('p', { class: 'muted' }, 'Records an erasure kept for a legal reason, and when that reason ends. Each is erased or anonymised then, and the request\'s receipt amended.'),
    list,
    pager,
  );

  async function load() {
    const answer = await gql(
      `query Retention($first: Int, $after: String) { retentionSchedule(first: $first, after: $after) {
        entries { id requestId connector entity legalBasis retainUntil afterRetention status attempts endedAt lastError } endCursor hasNextPage } }`,
      { first: PAGE, after },
    );
    const page = answer.data?.retentionSchedule;
    if (!page) {
      replace(list, errorBox(answer.errors.map((e) => e.message).join('; ') || 'No answer.'));
      replace(pager);
      return;
    }
    replace(
      list,
      page.entries.length
        ? h(
            'table',
            { class: 'list', id: 'retention-entries' },
            h('thead', {}, h('tr', {}, ['Request', 'Connector', 'Entity', 'Legal basis', 'Retained until', 'Then', 'Status', 'Attempts', 'Last error'].map((t) => h('th', { scope: 'col' }, t)))),
            h(
              'tbody',
              {},
              page.entries.map((/** @type {any} */ e) =>
                h(
                  'tr',
                  { 'data-id': e.id },
                  h('td', {}, h('a', { href: `#/request/${encodeURIComponent(e.requestId)}` }, e.requestId)),
                  h('td', {}, e.connector),
                  h('td', {}, e.entity),
                  h('td', {}, e.legalBasis || '—'),
                  h('td', {}, e.retainUntil),
                  h('td', {}, e.afterRetention),
                  h('td', {}, badge(e.status), e.endedAt ? h('div', { class: 'small muted' }, when(e.endedAt)) : null),
                  h('td', {}, String(e.attempts)),
                  h('td', { class: 'error-text small' }, e.lastError || ''),
                ),
              ),
            ),
          )
        : h('p', { class: 'muted' }, 'Nothing is retained.'),
    );
    replace(
      pager,
      cursors.length ? h('button', { type: 'button', onclick: () => { after = cursors.pop() ?? null; load(); } }, '← Sooner') : null,
      page.hasNextPage ? h('button', { type: 'button', onclick: () => { cursors.push(after); after = page.endCursor; load(); } }, 'Later →') : null,
    );
  }
  await load();
}
