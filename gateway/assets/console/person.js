// @ts-check
/**
 * Person lookup: everything held about one person, grouped by store and entity, each field with
 * its data category; what the role may not see shown as withheld with the reason the API gave;
 * the identity graph (which identity led to which, through which entity); per-store status and
 * latency. The query is built from `connectors`, so it follows the declarations.
 * @module person
 */

import { gql, gqlStrict } from './api.js';
import { h, replace, field, select, errorBox, camel, show, badge } from './ui.js';
import { identityKinds } from './new.js';

/** @param {HTMLElement} el */
export async function render(el) {
  const [kinds, registry] = await Promise.all([
    identityKinds(),
    gqlStrict('{ connectors { name kind entities { name graphqlField graphqlType lookups { kind } fields { name graphqlField category } } } }'),
  ]);
  const introspected = await hiddenFields(registry.connectors);
  const hidden = introspected || new Map();
  const idKind = /** @type {HTMLSelectElement} */ (select(kinds, { id: 'person-kind' }));
  const idValue = /** @type {HTMLInputElement} */ (h('input', { id: 'person-value', autocomplete: 'off', required: true }));
  const result = h('div', { id: 'person', 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'card', id: 'person-form', onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); lookUp(); } },
    h('h1', {}, 'Person lookup'),
    h('div', { class: 'row' }, field('Identity kind', idKind), field('Identity value', idValue), h('div', { class: 'field' }, h('span', {}, ' '), h('button', { type: 'submit', class: 'primary', id: 'person-submit' }, 'Look up'))),
    h('p', { class: 'muted small' }, 'Every lookup is recorded in the audit trail with your key and purpose.'),
  );
  replace(el, form, result);
  idValue.focus();

  const connectors = registry.connectors;
  const selection = connectors
    .map((/** @type {any} */ c) => `${camel(c.name)} { ${c.entities.map((/** @type {any} */ e) => `${e.graphqlField} { ${[...e.fields.map((/** @type {any} */ f) => f.graphqlField), ...(hidden.get(e.graphqlType) || [])].join(' ')} }`).join(' ')} }`)
    .join(' ');
  const query = `query Person($identity: IdentityInput!) { subject(identity: $identity) {
    identities { kind value source connector entity depth }
    sources { connector status latencyMs records roundTrips error errorCode }
    ${selection} } }`;

  async function lookUp() {
    const identity = { kind: idKind.value, value: idValue.value };
    if (!identity.value.trim()) return;
    replace(result, h('p', { class: 'muted' }, 'Looking up…'));
    const started = performance.now();
    const answer = await gql(query, { identity });
    const took = performance.now() - started;
    const subject = answer.data?.subject;
    if (!subject) {
      replace(result, errorBox(answer.errors.map((e) => e.message).join('; ') || 'No answer.'));
      return;
    }
    /** @type {Map<string, any>} errors by path */
    const errors = new Map();
    const unplaced = [];
    for (const e of answer.errors) {
      if (Array.isArray(e.path)) errors.set(e.path.join('/'), e);
      else unplaced.push(e);
    }
    const total = subject.sources.reduce((/** @type {number} */ n, /** @type {any} */ s) => n + s.records, 0);
    replace(
      result,
      h('p', { id: 'person-summary' }, `${total} records in ${subject.sources.length} stores, ${subject.identities.length} identities; answered in ${Math.round(took)} ms.`),
      unplaced.length ? errorBox(unplaced.map((e) => e.message).join('; ')) : null,
      h('div', { class: 'columns' }, h('section', {}, h('h2', {}, 'Identity graph'), graph(subject.identities, connectors, errors)), h('section', {}, h('h2', {}, 'Stores'), sources(subject.sources))),
      introspected === null
        ? h('p', { class: 'muted small' }, 'Fields your role may not see are not listed (the API does not name them without introspection).')
        : null,
      connectors.map((/** @type {any} */ c) => store(c, subject, errors, hidden)),
    );
  }
}

/** @param {any[]} list */
function sources(list) {
  return h(
    'table',
    { class: 'list', id: 'sources' },
    h('thead', {}, h('tr', {}, ['Store', 'Status', 'Latency', 'Records', 'Round trips', 'Error'].map((t) => h('th', { scope: 'col' }, t)))),
    h(
      'tbody',
      {},
      list.map((s) =>
        h('tr', { 'data-connector': s.connector }, h('td', {}, s.connector), h('td', {}, badge(s.status)), h('td', {}, `${s.latencyMs.toFixed(1)} ms`), h('td', {}, String(s.records)), h('td', {}, String(s.roundTrips)), h('td', { class: 'error-text' }, s.error ? `${s.errorCode || ''} ${s.error}` : '')),
      ),
    ),
  );
}

/**
 * The identity graph as a tree: each identity under the one that led to it (an identity of a kind
 * the yielding entity looks up, one round earlier).
 * @param {any[]} identities @param {any[]} connectors @param {Map<string, any>} errors
 */
function graph(identities, connectors, errors) {
  /** @type {Map<string, string[]>} "connector.entity" → kinds it looks up */
  const lookups = new Map();
  for (const c of connectors) for (const e of c.entities) lookups.set(`${c.name}.${e.name}`, e.lookups.map((/** @type {any} */ l) => l.kind));
  const nodes = identities.map((/** @type {any} */ identity, /** @type {number} */ index) => ({ identity, index, children: /** @type {any[]} */ ([]) }));
  const roots = [];
  for (const node of nodes) {
    const { identity } = node;
    const via = lookups.get(identity.source) || [];
    const parent = identity.depth > 0 && nodes.find((n) => n.identity.depth === identity.depth - 1 && via.includes(n.identity.kind));
    if (parent) parent.children.push(node);
    else roots.push(node);
  }
  /** @param {any} node @returns {HTMLElement} */
  const item = (node) => {
    const { identity, index } = node;
    const withheld = errors.get(`subject/identities/${index}/value`);
    return h(
      'li',
      {},
      h('span', { class: 'kind' }, identity.kind),
      ' ',
      identity.value !== null ? h('code', {}, identity.value) : h('span', { class: 'withheld', title: withheld?.message || '' }, `withheld: ${withheld?.extensions?.code || 'no value'}`),
      ' ',
      h('span', { class: 'muted small' }, identity.depth === 0 ? '(given)' : `← via ${identity.source}`),
      node.children.length ? h('ul', {}, node.children.map(item)) : null,
    );
  };
  return h('ul', { class: 'graph', id: 'identity-graph' }, roots.map(item));
}

/**
 * The record fields the role is not told about (`connectors` lists only the fields a role may
 * see), from introspection where the gateway answers it: asked for anyway, they come back null
 * with the API's reason, and show as withheld. Null when introspection is off.
 * @param {any[]} connectors
 * @returns {Promise<Map<string, string[]>|null>} GraphQL type → leaf fields not listed
 */
async function hiddenFields(connectors) {
  const entities = connectors.flatMap((c) => c.entities).filter((e) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(e.graphqlType));
  if (!entities.length) return new Map();
  /** @type {import('./api.js').GqlAnswer|null} */
  const answer = await gql(
    `{ ${entities.map((e, i) => `t${i}: __type(name: "${e.graphqlType}") { fields { name type { kind ofType { kind ofType { kind } } } } }`).join(' ')} }`,
  ).catch(() => null);
  const hidden = new Map();
  if (!answer?.data || answer.errors.length) return null;
  entities.forEach((e, i) => {
    const listed = new Set(e.fields.map((/** @type {any} */ f) => f.graphqlField));
    const leaf = (/** @type {any} */ t) => {
      while (t && (t.kind === 'NON_NULL' || t.kind === 'LIST')) t = t.ofType;
      return !t || t.kind === 'SCALAR' || t.kind === 'ENUM';
    };
    const fields = (answer.data[`t${i}`]?.fields || []).filter((/** @type {any} */ f) => !listed.has(f.name) && leaf(f.type)).map((/** @type {any} */ f) => f.name);
    if (fields.length) hidden.set(e.graphqlType, fields);
  });
  return hidden;
}

/** @param {any} c @param {any} subject @param {Map<string, any>} errors @param {Map<string, string[]>} hidden */
function store(c, subject, errors, hidden) {
  const key = camel(c.name);
  const data = subject[key];
  const section = h('section', { class: 'store', 'data-store': c.name }, h('h2', {}, `${c.name} `, h('span', { class: 'muted small' }, c.kind)));
  const failed = errors.get(`subject/${key}`);
  if (data === null || data === undefined) {
    section.append(errorBox(failed ? `Withheld: ${failed.message}` : 'No answer for this store.'));
    return section;
  }
  for (const e of c.entities) {
    const records = data[e.graphqlField];
    const path = `subject/${key}/${e.graphqlField}`;
    const heading = h('h3', {}, `${e.name} `, h('span', { class: 'muted small' }, Array.isArray(records) ? `${records.length} records` : ''));
    if (!Array.isArray(records)) {
      const error = errors.get(path);
      section.append(heading, errorBox(error ? `${error.extensions?.code || 'ERROR'}: ${error.message}` : 'Not answered.'));
      continue;
    }
    if (!records.length) {
      section.append(h('div', { class: 'entity', 'data-entity': e.name }, heading, h('p', { class: 'muted' }, 'Nothing held.')));
      continue;
    }
    /** @type {Map<string, string>} reasons for withheld fields */
    const reasons = new Map();
    const columns = [
      ...e.fields,
      ...(hidden.get(e.graphqlType) || []).map((name) => ({ name, graphqlField: name, category: 'not granted to your role' })),
    ];
    const table = h(
      'table',
      { class: 'list records' },
      h('thead', {}, h('tr', {}, columns.map((/** @type {any} */ f) => h('th', { scope: 'col' }, f.name, h('div', { class: 'category' }, f.category))))),
      h(
        'tbody',
        {},
        records.map((/** @type {any} */ record, /** @type {number} */ i) =>
          h(
            'tr',
            {},
            columns.map((/** @type {any} */ f) => {
              const error = errors.get(`${path}/${i}/${f.graphqlField}`);
              if (error) {
                const code = error.extensions?.code || 'WITHHELD';
                reasons.set(code, error.message);
                return h('td', { class: 'withheld', 'data-field': f.name, title: error.message }, `withheld (${code})`);
              }
              return h('td', { 'data-field': f.name }, show(record[f.graphqlField]));
            }),
          ),
        ),
      ),
    );
    section.append(
      h(
        'div',
        { class: 'entity', 'data-entity': e.name },
        heading,
        h('div', { class: 'scroll' }, table),
        reasons.size ? h('ul', { class: 'reasons' }, [...reasons].map(([code, message]) => h('li', {}, h('strong', {}, code), `: ${message}`))) : null,
      ),
    );
  }
  return section;
}
