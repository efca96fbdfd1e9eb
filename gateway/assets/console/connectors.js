// @ts-check
/**
 * Connectors: each store's health (asked now), timeout, the purposes its data may serve,
 * entities with the identities they look up and yield, every field with its data category, and
 * the last `check` of the declarations against the live stores (`connectorCheck`, with its
 * time), which "Check now" (`checkConnectors`) renews.
 * @module connectors
 */

import { gql, gqlStrict } from './api.js';
import { h, replace, errorBox, badge, when } from './ui.js';

const CHECK_FIELDS = 'at ok findings { connector entity ok location details }';

/** @param {HTMLElement} el */
export async function render(el) {
  replace(el, h('h1', {}, 'Connectors'), h('p', { class: 'muted' }, 'Asking every store…'));
  const answer = await gql(`{ connectorCheck { ${CHECK_FIELDS} } connectors { name kind description timeoutMs purposes
    health { status latencyMs error }
    entities { name source description graphqlField lookups { kind field } yields { kind field }
      fields { name type category categoryName description } } } }`);
  const list = answer.data?.connectors;
  if (!list) {
    replace(el, h('h1', {}, 'Connectors'), errorBox(answer.errors.map((e) => e.message).join('; ')));
    return;
  }
  replace(
    el,
    h('h1', {}, 'Connectors'),
    answer.errors.length ? errorBox(answer.errors.map((e) => e.message).join('; ')) : null,
    h(
      'table',
      { class: 'list', id: 'connector-health' },
      h('thead', {}, h('tr', {}, ['Connector', 'Kind', 'Health', 'Latency', 'Timeout', 'Purposes', 'Entities'].map((t) => h('th', { scope: 'col' }, t)))),
      h(
        'tbody',
        {},
        list.map((/** @type {any} */ c) =>
          h(
            'tr',
            { 'data-connector': c.name },
            h('td', {}, h('a', { href: `#connector-${c.name}` }, c.name)),
            h('td', {}, c.kind),
            h('td', {}, c.health ? badge(c.health.status) : '—', c.health?.error ? h('div', { class: 'error-text small' }, c.health.error) : null),
            h('td', {}, c.health ? `${c.health.latencyMs.toFixed(1)} ms` : '—'),
            h('td', {}, `${c.timeoutMs} ms`),
            h('td', {}, c.purposes ? c.purposes.join(', ') : h('span', { class: 'muted' }, 'any')),
            h('td', {}, String(c.entities.length)),
          ),
        ),
      ),
    ),
    checkSection(answer.data?.connectorCheck ?? null),
    list.map((/** @type {any} */ c) =>
      h(
        'section',
        { class: 'store', id: `connector-${c.name}` },
        h('h2', {}, c.name, ' ', h('span', { class: 'muted small' }, c.kind)),
        c.description ? h('p', {}, c.description) : null,
        c.entities.map((/** @type {any} */ e) =>
          h(
            'details',
            { class: 'entity' },
            h('summary', {}, h('strong', {}, e.name), ` — ${e.source}; looks up ${e.lookups.map((/** @type {any} */ l) => `${l.kind} (${l.field})`).join(', ') || '—'}; yields ${e.yields.map((/** @type {any} */ l) => `${l.kind} (${l.field})`).join(', ') || '—'}`),
            e.description ? h('p', {}, e.description) : null,
            h(
              'table',
              { class: 'list' },
              h('thead', {}, h('tr', {}, ['Field', 'Type', 'Category', ''].map((t) => h('th', { scope: 'col' }, t)))),
              h('tbody', {}, e.fields.map((/** @type {any} */ f) => h('tr', {}, h('td', {}, f.name), h('td', {}, f.type), h('td', {}, h('code', {}, f.category)), h('td', { class: 'muted' }, f.categoryName)))),
            ),
          ),
        ),
      ),
    ),
  );
}

/**
 * The last check (or none yet) and a button that runs one now.
 * @param {any} initial
 */
function checkSection(initial) {
  const body = h('div', { id: 'connector-check', 'aria-live': 'polite' });
  const status = h('div', { 'aria-live': 'polite' });
  const button = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', id: 'check-now' }, 'Check now'));
  button.addEventListener('click', async () => {
    button.disabled = true;
    replace(status, h('p', { class: 'muted' }, 'Checking every store…'));
    try {
      const data = await gqlStrict(`mutation Check { checkConnectors { ${CHECK_FIELDS} } }`);
      replace(status);
      show(data.checkConnectors);
    } catch (error) {
      replace(status, errorBox(`Check failed: ${error instanceof Error ? error.message : error}`));
    } finally {
      button.disabled = false;
    }
  });
  /** @param {any} check */
  function show(check) {
    if (!check) {
      replace(body, h('p', { class: 'muted' }, 'No check since the gateway started.'));
      return;
    }
    replace(
      body,
      h('p', {}, badge(check.ok ? 'OK' : 'FAILED'), ` checked ${when(check.at)}: `, `${check.findings.filter((/** @type {any} */ f) => !f.ok).length} of ${check.findings.length} findings failed.`),
      h(
        'table',
        { class: 'list', id: 'check-findings' },
        h('thead', {}, h('tr', {}, ['Connector', 'Entity', 'Result', 'Declared at', 'Details'].map((t) => h('th', { scope: 'col' }, t)))),
        h(
          'tbody',
          {},
          check.findings.map((/** @type {any} */ f) =>
            h(
              'tr',
              { class: f.ok ? '' : 'row-overdue' },
              h('td', {}, f.connector),
              h('td', {}, f.entity),
              h('td', {}, badge(f.ok ? 'OK' : 'FAILED')),
              h('td', {}, h('code', { class: 'small' }, f.location)),
              h('td', { class: f.ok ? 'small' : 'small error-text' }, f.details.join('; ') || '—'),
            ),
          ),
        ),
      ),
    );
  }
  show(initial);
  return h('section', { class: 'store' }, h('h2', {}, 'Last check against the stores'), h('div', { class: 'buttons' }, button), status, body);
}
