/**
 * Access control of the local API (architecture.md §6, issue 5): who may talk to the agent.
 *
 * Order of the checks, on every request (a fastify `onRequest` hook, before any route):
 * 1. **Where from** — only loopback (127.0.0.0/8, ::1, ::ffff:127.x) or the UNIX socket
 *    (`api.socketPath`, created 0600). Anything else: 403 POS403. The API also listens on
 *    loopback only (config), so this is the second line, for a misconfigured proxy or a
 *    port forward.
 * 2. **Same origin** (issue 13) — a browser request whose `Origin` is not `http://<its Host>`, or
 *    that says `Sec-Fetch-Site: cross-site`, is refused 403 POS407, whatever it carries: a page
 *    on another site must not drive the API through the browser of the terminal. Routes marked
 *    `config: { public: true }` (the status page's files, `/login`, `/openapi.json`) need nothing
 *    more.
 * 3. **Bearer token** — `Authorization: Bearer <api.token>`, compared in constant time (both
 *    sides hashed with SHA-256 first so the lengths are equal for `timingSafeEqual`). A correct
 *    token is always let through, never slowed down. The token is never logged or echoed.
 * 4. **Status page session** — a request without `Authorization` may instead carry the
 *    HttpOnly session cookie of agent/web-auth.ts, if its `Host` is loopback by name (a DNS
 *    rebinding page has a foreign Host) and the route is not `config: { bearerOnly: true }`.
 *    An unknown or expired session answers 401 POS408 and counts as a failure below.
 * 5. **Slow-down of failures only** — a missing or wrong token answers 401 POS401; after
 *    `freeFailures` (default 3) consecutive failures from one source, further failures from it
 *    are answered 429 POS402 with `Retry-After` for a delay that doubles with each failure
 *    (default 1 s, 2 s, 4 s … capped at `maxDelayMs`, 5 min). Every local client shares
 *    127.0.0.1, so throttling by source must never lock out the POS app holding the right
 *    token: only failures are throttled. A correct token does not reset the count (else a
 *    guessing process would get fresh free tries from every request of the POS app); the count
 *    is forgotten after more than `maxDelayMs` without a failure.
 *
 * Errors use the API's shape `{ error: { code, message } }`. The clock is injected.
 */
import { createHash, hash as sha, timingSafeEqual } from 'node:crypto';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { type AddressInfo, createConnection } from 'node:net';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type Clock, systemClock } from '../common/clock.js';
import type { Logger } from './logger.js';
import { httpStatus, type AgentErrorCode } from './errors.js';
import { isLoopbackHost, readCookie, SESSION_COOKIE, type WebSessions } from './web-auth.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** No token or session needed (the status page's files, `/login`, `/openapi.json`). */
    public?: boolean;
    /** The bearer token only: a status page session is not enough. */
    bearerOnly?: boolean;
  }
}

/** The API's fastify instance (node:http server, pino logger). */
export type ApiApp = FastifyInstance<Server, IncomingMessage, ServerResponse, Logger>;

/** Options of {@link installApiAuth}. */
export interface ApiAuthOptions {
  /** The bearer token (api.token). */
  apiToken: string;
  clock?: Clock;
  /** Consecutive failures from one source before delays start. Default 3. */
  freeFailures?: number;
  /** First delay, ms. Default 1000. */
  baseDelayMs?: number;
  /** Longest delay, ms. Default 300000. */
  maxDelayMs?: number;
  /** Status page sessions (agent/web-auth.ts); absent: the bearer token only. */
  sessions?: WebSessions;
}

/** What {@link installApiAuth} returns, for `/metrics` and tests. */
export interface ApiAuthGuard {
  /**
   * Refusals by code: POS401 (token), POS402 (slowed down), POS403 (address), POS407
   * (cross-origin), POS408 (status page session unknown or expired).
   */
  counters(): { POS401: number; POS402: number; POS403: number; POS407: number; POS408: number };
}

/** True for a loopback peer address, or none (a UNIX socket peer has no address). */
export function isLocalPeer(address: string | undefined): boolean {
  if (address === undefined || address === '') return true;
  if (address === '::1') return true;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** Refuses the request with `code`, at the HTTP status of its table entry (agent/errors.ts). */
function send(reply: FastifyReply, code: AgentErrorCode, message: string): FastifyReply {
  return reply.code(httpStatus(code)).send({ error: { code, message } });
}

/**
 * Adds the access checks to `app` as its first `onRequest` hook.
 *
 * @returns counters of the refusals.
 */
export function installApiAuth(app: ApiApp, options: ApiAuthOptions): ApiAuthGuard {
  const clock = options.clock ?? systemClock;
  const freeFailures = options.freeFailures ?? 3;
  const baseDelayMs = options.baseDelayMs ?? 1000;
  const maxDelayMs = options.maxDelayMs ?? 300_000;
  const expected = createHash('sha256').update(options.apiToken).digest();
  const sources = new Map<
    string,
    { failures: number; blockedUntil: number; lastFailureAt: number }
  >();
  const counters = { POS401: 0, POS402: 0, POS403: 0, POS407: 0, POS408: 0 };

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const peer = request.socket.remoteAddress;
    if (!isLocalPeer(peer)) {
      counters.POS403 += 1;
      request.log.warn({ peer }, 'API request from a non-local address refused');
      return send(
        reply,
        'POS403',
        `requests are accepted from this machine only (loopback or the UNIX socket), not from ${peer ?? 'unknown'}; run the POS app on the terminal or use api.socketPath`,
      );
    }
    const host = request.headers.host;
    const origin = request.headers.origin;
    if (
      (origin !== undefined && origin !== `http://${host ?? ''}`) ||
      request.headers['sec-fetch-site'] === 'cross-site'
    ) {
      counters.POS407 += 1;
      request.log.warn({ origin, host }, 'cross-origin API request refused');
      return send(
        reply,
        'POS407',
        `cross-origin request refused (Origin ${origin ?? 'none'}, Host ${host ?? 'none'}): the API answers this agent's own status page and local programs only; call it from the POS app without an Origin header, or open the status page with "pos-agent open"`,
      );
    }
    const config = request.routeOptions.config;
    if (config.public === true) return undefined;
    const source = peer ?? 'unix';
    const match = /^Bearer (.+)$/.exec(request.headers.authorization ?? '');
    // One-shot SHA-256: no Hash object per request for the young-generation GC to finalize
    // (store-forward/hash-chain.ts eventHash says what those cost).
    const given = sha('sha256', match?.[1] ?? '', 'buffer');
    if (match !== null && timingSafeEqual(given, expected)) return undefined;
    const session =
      request.headers.authorization === undefined
        ? readCookie(request.headers.cookie, SESSION_COOKIE)
        : undefined;
    if (
      session !== undefined &&
      options.sessions?.valid(session) === true &&
      config.bearerOnly !== true &&
      isLoopbackHost(host)
    ) {
      return undefined;
    }
    const now = clock.now();
    let state = sources.get(source);
    if (state === undefined || now - state.lastFailureAt > maxDelayMs) {
      state = { failures: 0, blockedUntil: 0, lastFailureAt: now };
      sources.set(source, state);
    }
    state.lastFailureAt = now;
    if (state.blockedUntil > now) {
      counters.POS402 += 1;
      const seconds = Math.ceil((state.blockedUntil - now) / 1000);
      void reply.header('retry-after', String(seconds));
      return send(
        reply,
        'POS402',
        `too many requests with a wrong or missing bearer token; retry in ${seconds} s with the token from api.token`,
      );
    }
    state.failures += 1;
    if (state.failures >= freeFailures) {
      const delay = Math.min(maxDelayMs, baseDelayMs * 2 ** (state.failures - freeFailures));
      state.blockedUntil = now + delay;
    }
    request.log.warn({ failures: state.failures }, 'API request with a wrong or missing token');
    if (session !== undefined && match === null) {
      counters.POS408 += 1;
      return send(
        reply,
        'POS408',
        'the status page session has expired or is not valid here; run "pos-agent open --config FILE" for a new login link',
      );
    }
    counters.POS401 += 1;
    return send(
      reply,
      'POS401',
      match === null
        ? 'missing bearer token; send "Authorization: Bearer <token from api.token>"'
        : 'wrong bearer token; use the token from the api.token file of the keys directory',
    );
  });
  return { counters: () => ({ ...counters }) };
}

/**
 * Removes a stale UNIX socket file at `socketPath` — one left behind by a crashed agent, on which
 * nothing answers (connect → ECONNREFUSED) — so that `listen` does not fail with EADDRINUSE. A
 * socket something answers on, or a path that is not a socket, is left alone (listen then fails
 * and says so).
 */
async function removeStaleSocket(socketPath: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(socketPath).isSocket();
  } catch {
    return;
  }
  if (!isSocket) return;
  const stale = await new Promise<boolean>((resolve) => {
    const probe = createConnection({ path: socketPath });
    probe.once('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
  if (stale) unlinkSync(socketPath);
}

/**
 * Starts listening on the UNIX socket `api.socketPath` or on `host:port`.
 *
 * The socket is created 0600 from the start (umask 0177 around the bind, restored after; chmod
 * 0600 again after), so there is no window in which another user may connect. A stale socket file
 * from a crashed agent is removed first.
 *
 * @returns the API's base URL: `http://127.0.0.1:PORT` or `unix:/path/to.sock`.
 */
export async function listenApi(
  app: ApiApp,
  api: { host: string; port: number; socketPath?: string | undefined },
): Promise<string> {
  if (api.socketPath !== undefined) {
    await removeStaleSocket(api.socketPath);
    // Plugins load before the umask changes, so it is restrictive only around the bind itself.
    await app.ready();
    const previous = process.umask(0o177);
    try {
      await app.listen({ path: api.socketPath });
    } finally {
      process.umask(previous);
    }
    chmodSync(api.socketPath, 0o600);
    return `unix:${api.socketPath}`;
  }
  await app.listen({ host: api.host, port: api.port });
  const address = app.server.address() as AddressInfo;
  return `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
}
