// @ts-check
/**
 * Sign-in with the identity provider, where `[auth.oidc.console]` is configured: the
 * authorization-code flow with PKCE (S256, WebCrypto), the console a public client. The page
 * makes a code verifier and a state (kept in sessionStorage until the provider sends the browser
 * back), goes to the provider's authorization endpoint, and on return to `/console/?code&state`
 * checks the state, exchanges the code at the token endpoint itself, and signs in with the token
 * as Bearer, like a typed key (the purpose is chosen next). The code and state are removed from
 * the address bar and history at once.
 * @module oidc
 */

const PENDING = 'subject-gateway.pkce';

/**
 * @typedef {{ clientId: string, authorizationEndpoint: string, tokenEndpoint: string, scope: string }} OidcOffer
 */

/** @param {Uint8Array} bytes */
function base64url(bytes) {
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function random() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

function redirectUri() {
  return `${location.origin}/console/`;
}

/**
 * Whether the gateway offers sign-in with a provider, and where.
 * @returns {Promise<OidcOffer|null>}
 */
export async function offer() {
  try {
    const response = await fetch('/console/session', { cache: 'no-store', credentials: 'omit' });
    const body = await response.json();
    return body?.oidc || null;
  } catch {
    return null;
  }
}

/**
 * Goes to the provider's authorization endpoint.
 * @param {OidcOffer} oidc
 */
export async function start(oidc) {
  if (!globalThis.crypto?.subtle) throw new Error('this page is not a secure context (https or localhost): PKCE needs WebCrypto');
  const verifier = random();
  const state = random();
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, tokenEndpoint: oidc.tokenEndpoint, clientId: oidc.clientId }));
  const url = new URL(oidc.authorizationEndpoint);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('client_id', oidc.clientId);
  url.searchParams.set('redirect_uri', redirectUri());
  url.searchParams.set('scope', oidc.scope || 'openid');
  url.searchParams.set('state', state);
  url.searchParams.set('code_challenge', challenge);
  url.searchParams.set('code_challenge_method', 'S256');
  location.assign(url.toString());
}

/**
 * The provider's answer, when the page is its redirect: the token, or why there is none.
 * `null` when the page was not opened by the provider.
 * @returns {Promise<{ token: string }|{ error: string }|null>}
 */
export async function takeCallback() {
  const params = new URLSearchParams(location.search);
  if (!params.has('code') && !params.has('error')) return null;
  history.replaceState(null, '', `${location.pathname}#/`);
  const text = sessionStorage.getItem(PENDING);
  sessionStorage.removeItem(PENDING);
  if (params.has('error')) return { error: `the identity provider answered: ${params.get('error')}` };
  /** @type {{ verifier: string, state: string, tokenEndpoint: string, clientId: string }|null} */
  let pending = null;
  try {
    pending = text ? JSON.parse(text) : null;
  } catch {
    pending = null;
  }
  if (!pending || params.get('state') !== pending.state) return { error: 'the sign-in came back with a state this tab did not send: start again' };
  const response = await fetch(pending.tokenEndpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: params.get('code') || '',
      redirect_uri: redirectUri(),
      client_id: pending.clientId,
      code_verifier: pending.verifier,
    }),
    cache: 'no-store',
    credentials: 'omit',
  }).catch((error) => ({ ok: false, status: 0, json: async () => ({ error: String(error) }) }));
  const body = await response.json().catch(() => null);
  if (!response.ok) return { error: `the token endpoint refused the code: ${body?.error_description || body?.error || response.status}` };
  const token = body?.access_token || body?.id_token;
  return token ? { token } : { error: 'the token endpoint sent no token' };
}
