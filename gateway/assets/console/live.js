// @ts-check
/**
 * Live updates: one GraphQL subscription over `/graphql/ws` (the `graphql-transport-ws`
 * protocol). A browser cannot set headers on a websocket, so the key and the purpose travel in
 * the `connection_init` payload, checked by the gateway like a POST's headers (a refused one
 * closes the socket with 4403). When the socket cannot be opened or drops, the caller is told
 * (`onFail`) and falls back to polling; it never shows stale data as live.
 * @module live
 */

import { credentials } from './api.js';

/**
 * @typedef {{ onNext: (data: any) => void, onFail: (reason: string) => void, onReady?: () => void, onComplete?: () => void }} Handlers
 */

/**
 * Subscribes to `query`; returns a function that ends the subscription.
 * @param {string} query
 * @param {object} variables
 * @param {Handlers} handlers
 * @returns {() => void}
 */
export function subscribe(query, variables, handlers) {
  const creds = credentials();
  let stopped = false;
  let failed = false;
  const fail = (/** @type {string} */ reason) => {
    if (stopped || failed) return;
    failed = true;
    handlers.onFail(reason);
  };
  if (!creds || typeof WebSocket === 'undefined') {
    fail('no websocket');
    return () => {};
  }
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql/ws`;
  /** @type {WebSocket} */
  let socket;
  try {
    socket = new WebSocket(url, 'graphql-transport-ws');
  } catch (error) {
    fail(String(error));
    return () => {};
  }
  const send = (/** @type {object} */ message) => socket.send(JSON.stringify(message));
  socket.addEventListener('open', () => {
    send({ type: 'connection_init', payload: { authorization: `Bearer ${creds.key}`, purpose: creds.purpose } });
  });
  socket.addEventListener('message', (event) => {
    let message;
    try {
      message = JSON.parse(String(event.data));
    } catch {
      return;
    }
    switch (message.type) {
      case 'connection_ack':
        send({ id: '1', type: 'subscribe', payload: { query, variables } });
        handlers.onReady?.();
        break;
      case 'ping':
        send({ type: 'pong' });
        break;
      case 'next':
        if (message.payload?.errors?.length) {
          fail(message.payload.errors.map((/** @type {any} */ e) => e.message).join('; '));
          socket.close(1000);
        } else if (!stopped) {
          handlers.onNext(message.payload?.data);
        }
        break;
      case 'error':
        fail(Array.isArray(message.payload) ? message.payload.map((/** @type {any} */ e) => e.message).join('; ') : 'refused');
        socket.close(1000);
        break;
      case 'complete':
        stopped = true;
        socket.close(1000);
        handlers.onComplete?.();
        break;
      default:
        break;
    }
  });
  socket.addEventListener('close', (event) => fail(`the live connection closed (${event.code}${event.reason ? `: ${event.reason}` : ''})`));
  socket.addEventListener('error', () => fail('the live connection failed'));
  return () => {
    stopped = true;
    if (socket.readyState === WebSocket.OPEN) send({ id: '1', type: 'complete' });
    socket.close(1000);
  };
}
