// @ts-check
/**
 * The console's only way to the gateway: `POST /graphql` with the caller's own API key and
 * stated purpose, and `GET /console/session` to learn a key's role before a purpose is chosen.
 *
 * The key lives in sessionStorage (gone when the tab closes), never in a URL, a cookie or a log.
 * @module api
 */

const KEY = 'subject-gateway.key';
const PURPOSE = 'subject-gateway.purpose';
const ME = 'subject-gateway.me';

/**
 * @typedef {{ principal: string, role: string, operations: string[], purposes: string[], purpose?: string }} Me
 * @typedef {{ message: string, path?: Array<string|number>, extensions?: { code?: string } }} GqlError
 * @typedef {{ data: any, errors: GqlError[] }} GqlAnswer
 */

/** A refusal of the credentials themselves (401): the console signs out. */
export class AuthError extends Error {}

/** Errors a GraphQL answer carried, for callers that need all of it to be there. */
export class GraphQLError extends Error {
  /** @param {GqlError[]} errors */
  constructor(errors) {
    super(errors.map((e) => (e.extensions?.code ? `${e.message} (${e.extensions.code})` : e.message)).join('; '));
    this.errors = errors;
    this.code = errors[0]?.extensions?.code || '';
  }
}

/** @returns {Me|null} */
export function me() {
  const text = sessionStorage.getItem(ME);
  if (!text || !sessionStorage.getItem(KEY)) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/**
 * The signed-in key and purpose, for the live connection (`live.js`), which cannot use `gql`.
 * @returns {{ key: string, purpose: string }|null}
 */
export function credentials() {
  const key = sessionStorage.getItem(KEY);
  const purpose = sessionStorage.getItem(PURPOSE);
  return key && purpose ? { key, purpose } : null;
}

/** @param {string} operation */
export function may(operation) {
  return Boolean(me()?.operations.includes(operation));
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(PURPOSE);
  sessionStorage.removeItem(ME);
}

/**
 * Step one of signing in: the role behind `key` and the purposes it may state (401 for a key
 * the gateway does not know).
 * @param {string} key
 * @returns {Promise<Me>}
 */
export async function session(key) {
  const response = await fetch('/console/session', {
    headers: { Authorization: `Bearer ${key}` },
    cache: 'no-store',
    credentials: 'omit',
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new AuthError(body?.errors?.[0]?.message || `the gateway answered ${response.status}`);
  }
  return body;
}

/**
 * Step two: the purpose chosen, checked by the GraphQL API itself (`me`), then kept.
 * @param {string} key
 * @param {string} purpose
 * @returns {Promise<Me>}
 */
export async function signIn(key, purpose) {
  const answer = await post(key, purpose, '{ me { principal role operations purposes purpose } }', {});
  if (!answer.data?.me) throw new GraphQLError(answer.errors);
  sessionStorage.setItem(KEY, key);
  sessionStorage.setItem(PURPOSE, purpose);
  sessionStorage.setItem(ME, JSON.stringify(answer.data.me));
  return answer.data.me;
}

/**
 * @param {string} key @param {string} purpose @param {string} query @param {object} variables
 * @returns {Promise<GqlAnswer>}
 */
async function post(key, purpose, query, variables) {
  const response = await fetch('/graphql', {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${key}`,
      'X-Purpose': purpose,
      'Content-Type': 'application/json',
      Accept: 'application/graphql-response+json, application/json',
    },
    body: JSON.stringify({ query, variables }),
    cache: 'no-store',
    credentials: 'omit',
  });
  const body = await response.json().catch(() => null);
  if (response.status === 401) {
    throw new AuthError(body?.errors?.[0]?.message || 'the credentials were refused');
  }
  if (!body || typeof body !== 'object') {
    throw new Error(`the gateway answered ${response.status} without GraphQL`);
  }
  return { data: body.data ?? null, errors: Array.isArray(body.errors) ? body.errors : [] };
}

/**
 * Runs a query or mutation as the signed-in caller. Returns data and errors both: a partial
 * answer (a store down, a field withheld) is shown with its errors, never as if complete.
 * @param {string} query
 * @param {object} [variables]
 * @returns {Promise<GqlAnswer>}
 */
export async function gql(query, variables = {}) {
  const key = sessionStorage.getItem(KEY);
  const purpose = sessionStorage.getItem(PURPOSE);
  if (!key || !purpose) throw new AuthError('not signed in');
  try {
    return await post(key, purpose, query, variables);
  } catch (error) {
    if (error instanceof AuthError) {
      signOut();
      window.dispatchEvent(new CustomEvent('console:signed-out', { detail: error.message }));
    }
    throw error;
  }
}

/**
 * Like `gql`, but any error fails the call: for mutations and for pages that cannot show half.
 * @param {string} query
 * @param {object} [variables]
 */
export async function gqlStrict(query, variables = {}) {
  const answer = await gql(query, variables);
  if (answer.errors.length) throw new GraphQLError(answer.errors);
  return answer.data;
}

/**
 * A one-click sign-in link's fragment (`#key=…&purpose=…`, which browsers never send to the
 * server): read once, then removed from the address bar and history.
 * @returns {{ key: string, purpose: string|null }|null}
 */
export function takeFragmentKey() {
  if (!location.hash.startsWith('#key=')) return null;
  const params = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, '', `${location.pathname}#/`);
  const key = params.get('key');
  return key ? { key, purpose: params.get('purpose') } : null;
}
