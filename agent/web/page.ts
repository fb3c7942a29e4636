/**
 * The terminal status page (issue 13), served by the agent on loopback at `/` for the kiosk
 * browser beside the POS app and for a tech at the terminal: link state, devices, the payment in
 * progress with its live prompt, the offline queue, the last payments (masked). Plain HTML, CSS
 * and JavaScript (agent/web/assets.ts), no framework; live through `GET /v1/events?include=status`
 * (server-sent events).
 *
 * | route | auth | answer |
 * |-------|------|--------|
 * | `GET /` | session cookie | the page; without a session, how to sign in (`pos-agent open`) |
 * | `GET /login?code=…` | the one-time code | sets the session cookie, 303 to `/` |
 * | `GET /ui/app.js`, `/ui/app.css` | none | the page's script and style (no secrets in them) |
 * | `GET /favicon.ico` | none | 204: no icon, and no failed sign-in counted |
 *
 * Every answer carries a Content-Security-Policy that allows only this origin's own script,
 * style and event stream, and forbids framing (clickjacking).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { readCookie, SESSION_COOKIE, sessionCookie, type WebSessions } from '../web-auth.js';
import { APP_CSS, APP_JS, PAGE_HTML, SIGN_IN_HTML } from './assets.js';

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function page(reply: FastifyReply, status: number, type: string, body: string): FastifyReply {
  return reply
    .code(status)
    .header('content-type', type)
    .header('content-security-policy', CSP)
    .header('x-frame-options', 'DENY')
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-store')
    .send(body);
}

/** Adds the status page's routes to `app`. */
export function registerStatusPage(
  app: FastifyInstance<Server, IncomingMessage, ServerResponse>,
  sessions: WebSessions,
): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const hidden = { schema: { hide: true }, config: { public: true } } as const;

  api.get('/', hidden, async (request, reply) => {
    const session = readCookie(request.headers.cookie, SESSION_COOKIE);
    if (session === undefined || !sessions.valid(session)) {
      return page(reply, 401, 'text/html; charset=utf-8', SIGN_IN_HTML);
    }
    return page(reply, 200, 'text/html; charset=utf-8', PAGE_HTML);
  });

  api.get(
    '/login',
    {
      schema: { hide: true, querystring: z.object({ code: z.string().max(100).default('') }) },
      config: { public: true },
    },
    async (request, reply) => {
      const opened = sessions.redeem(request.query.code);
      if (opened === undefined) {
        request.log.warn('status page login with an unknown, used or expired code');
        return page(reply, 401, 'text/html; charset=utf-8', SIGN_IN_HTML);
      }
      request.log.info('status page session opened');
      return reply
        .code(303)
        .header('set-cookie', sessionCookie(opened.sessionId, opened.maxAgeSeconds))
        .header('referrer-policy', 'no-referrer')
        .header('cache-control', 'no-store')
        .header('location', '/')
        .send();
    },
  );

  // Browsers ask for it on every page; without this route a signed-out kiosk's request would be a
  // 401 and count as a failed token towards the API's slow-down.
  api.get('/favicon.ico', hidden, async (_request, reply) => reply.code(204).send());

  api.get('/ui/app.js', hidden, async (_request, reply) =>
    page(reply, 200, 'text/javascript; charset=utf-8', APP_JS),
  );
  api.get('/ui/app.css', hidden, async (_request, reply) =>
    page(reply, 200, 'text/css; charset=utf-8', APP_CSS),
  );
}
