/**
 * The hand-written parts of `docs/openapi.json` (OpenAPI 3.1): title, the idempotency and error
 * rules, the bearer scheme. The operations and schemas are generated from agent/api-schemas.ts
 * by @fastify/swagger; this file only says what a schema cannot.
 */
/** The `info`, `servers`, `components` and `security` sections given to @fastify/swagger. */
export const OPENAPI_INFO = {
  info: {
    title: 'pos-edge-agent local API',
    // The contract's version (the /v1 of the routes), not the agent's: a release that keeps the
    // contract keeps the committed document current.
    version: '1.0.0',
    description: [
      'The API the POS app calls on the terminal (architecture.md §6). HTTP on loopback (default',
      '`http://127.0.0.1:7420`) or a UNIX socket (`api.socketPath`); JSON; amounts are integer',
      'minor units of an ISO 4217 currency; times are ISO 8601 UTC.',
      '',
      '**Authentication.** `Authorization: Bearer <keys/api.token>` on every route but',
      "`GET /openapi.json` and the status page's files. A caller not on loopback gets 403 POS403;",
      'repeated wrong tokens are slowed down (429 POS402 with `Retry-After`). A browser request',
      'whose `Origin` (or `Sec-Fetch-Site: cross-site`) or `Host` is not this agent gets 403 POS407.',
      'The status page signs in with a one-time link from `pos-agent open` and then holds an',
      'HttpOnly, SameSite=Strict session cookie; the bearer token never reaches the browser.',
      '',
      '**Idempotency.** `POST /v1/payments` requires `Idempotency-Key` (400 POS406 without it):',
      'one new key per payment (a UUID), the same key on every retry of that payment — after a',
      'timeout, a dropped connection or a restart of the POS app. The key is stored in the same',
      'SQLite transaction that creates the payment. A retry with the same key and parameters',
      'answers 200 with the original payment (waiting for it while it is in progress); with other',
      'parameters 409 POS409. The same key reaches the cloud core, which dedupes by it: a payment',
      'is never charged twice.',
      '',
      '**Errors.** `{ "error": { "code": "POS4xx", "message": "…", "details"?: {…} } }`; the',
      'message names the problem and the fix. Codes: POS400 bad request (`details.problems`),',
      'POS401 token, POS402 slowed down, POS403 not loopback, POS404/POS211 unknown payment,',
      'POS405 unknown route, POS406 Idempotency-Key missing, POS407 cross-origin, POS408 status',
      'page session expired, POS409 key reused with other parameters, POS410 PIN pad busy,',
      'POS212 not cancelable now, POS213/POS214 a field the store refuses, POS420 card not read,',
      'POS430 PIN pad not connected, POS431 agent stopping, POS102/POS120 PIN pad lost or slow,',
      'POS499 internal error (see the agent log).',
      '',
      '**Outcomes.** A payment that is declined is not an error: 201 with `state: declined`,',
      '`declineCode` for the app and `message` for the cashier. `approval` says `online` or',
      '`offline` — never a silent switch.',
      '',
      '**Events.** `GET /v1/events` is a `text/event-stream`: one event per terminal prompt, named',
      'by its `kind`, with a `Prompt` as data; `?include=status` adds `status` events (a `Status`',
      'plus `recent`, the last payments) whenever the status changes.',
    ].join('\n'),
  },
  servers: [{ url: 'http://127.0.0.1:7420', description: 'the agent on this terminal' }],
  components: {
    securitySchemes: {
      bearer: {
        type: 'http' as const,
        scheme: 'bearer',
        description: 'the contents of keys/api.token',
      },
    },
  },
  security: [{ bearer: [] }],
};

/**
 * The document as published (`GET /openapi.json`, `docs/openapi.json`): @fastify/swagger's
 * output without the component schemas nothing refers to (the type provider registers an input
 * and an output variant of every named schema; only the ones in use are kept).
 */
export function publishedOpenApi(document: Record<string, unknown>): Record<string, unknown> {
  const components = document.components as { schemas?: Record<string, unknown> } | undefined;
  const schemas = components?.schemas;
  if (schemas === undefined) return document;
  const used = new Set<string>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      value.forEach(visit);
    } else if (value !== null && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) {
        if (key === '$ref' && typeof inner === 'string') {
          const name = inner.replace('#/components/schemas/', '');
          if (!used.has(name)) {
            used.add(name);
            visit(schemas[name]);
          }
        } else {
          visit(inner);
        }
      }
    }
  };
  visit(document.paths);
  return {
    ...document,
    components: {
      ...components,
      schemas: Object.fromEntries(Object.entries(schemas).filter(([name]) => used.has(name))),
    },
  };
}
