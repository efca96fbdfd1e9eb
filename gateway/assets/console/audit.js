// @ts-check
/**
 * The audit trail: filters by action, actor and person (an identity, matched by its keyed hash),
 * cursor paging. The chain's verification is not offered over the API; the page says how to run
 * it (`subject-gateway audit verify`) rather than show a state it cannot know.
 * @module audit
 */

import { gql } from './api.js';
import { h, replace, field, select, errorBox, when } from './ui.js';
import { identityKinds } from './new.js';

const PAGE = 50;

/** @param {HTMLElement} el */
export async function render(el) {
  const kinds = await identityKinds();
  const action = /** @type {HTMLInputElement} */ (h('input', { id: 'audit-action', placeholder: 'subject.read, erasure.completed, …', autocomplete: 'off' }));
  const actor = /** @type {HTMLInputElement} */ (h('input', { id: 'audit-actor', placeholder: 'key:…', autocomplete: 'off' }));
  const idKind = /** @type {HTMLSelectElement} */ (select(kinds, { id: 'audit-person-kind' }));
  const idValue = /** @type {HTMLInputElement} */ (h('input', { id: 'audit-person-value', autocomplete: 'off' }));
  const list = h('div', { id: 'audit', 'aria-live': 'polite' });
  const pager = h('div', { class: 'buttons' });
  /** @type {(string|null)[]} */
  let cursors = [];
  /** @type {string|null} */
  let after = null;
  replace(
    el,
    h('h1', {}, 'Audit trail'),
    h('p', { class: 'muted', id: 'audit-chain' }, 'Chain verification: not offered over the API. Run `subject-gateway audit verify --anchor FILE` on a host with the state database.'),
    h(
      'form',
      { class: 'filters', id: 'audit-form', onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); cursors = []; after = null; load(); } },
      field('Action', action),
      field('Actor', actor),
      field('Person: kind', idKind),
      field('Person: value', idValue),
      h('div', { class: 'field' }, h('span', {}, ' '), h('button', { type: 'submit', class: 'primary', id: 'audit-submit' }, 'Filter')),
    ),
    list,
    pager,
  );

  async function load() {
    const subject = idValue.value.trim() ? { kind: idKind.value, value: idValue.value } : null;
    const answer = await gql(
      `query Audit($first: Int, $after: String, $action: String, $actor: String, $subject: IdentityInput) {
        auditEvents(first: $first, after: $after, action: $action, actor: $actor, subject: $subject) {
          events { seq at actor role purpose action subjects detail hash } endCursor hasNextPage } }`,
      { first: PAGE, after, action: action.value.trim() || null, actor: actor.value.trim() || null, subject },
    );
    const page = answer.data?.auditEvents;
    if (!page) {
      replace(list, errorBox(answer.errors.map((e) => e.message).join('; ') || 'No answer.'));
      replace(pager);
      return;
    }
    replace(
      list,
      page.events.length
        ? h(
            'table',
            { class: 'list', id: 'audit-events' },
            h('thead', {}, h('tr', {}, ['#', 'At', 'Action', 'Actor', 'Role / purpose', 'People', 'Detail'].map((t) => h('th', { scope: 'col' }, t)))),
            h(
              'tbody',
              {},
              page.events.map((/** @type {any} */ e) =>
                h(
                  'tr',
                  {},
                  h('td', {}, String(e.seq)),
                  h('td', {}, when(e.at)),
                  h('td', {}, h('code', {}, e.action)),
                  h('td', {}, e.actor),
                  h('td', {}, `${e.role} / ${e.purpose}`),
                  h('td', { title: e.subjects.join('\n') }, String(e.subjects.length)),
                  h('td', {}, h('code', { class: 'small' }, JSON.stringify(e.detail))),
                ),
              ),
            ),
          )
        : h('p', { class: 'muted' }, 'No events match.'),
    );
    replace(
      pager,
      cursors.length ? h('button', { type: 'button', onclick: () => { after = cursors.pop() ?? null; load(); } }, '← Earlier') : null,
      page.hasNextPage ? h('button', { type: 'button', id: 'audit-next', onclick: () => { cursors.push(after); after = page.endCursor; load(); } }, 'Later →') : null,
    );
  }
  await load();
}
