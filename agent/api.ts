/**
 * The local API for the POS app (architecture.md §6): HTTP with JSON on loopback, bearer token from the
 * keys directory, errors as `{ error: { code, message } }`. The routes validate with the zod
 * schemas of agent/api-schemas.ts (fastify-type-provider-zod), and the same schemas make
 * `GET /openapi.json` (@fastify/swagger) and `docs/openapi.json` — the reference for the POS app.
 *
 * | route | answer |
 * |-------|--------|
 * | `POST /v1/payments` (`Idempotency-Key` header, required) `{ amount, currency, reference?, offline? }` | 201 new, 200 retry of a known key |
 * | `GET /v1/payments/:id` | the payment |
 * | `GET /v1/payments?state=…&idempotencyKey=…` | `{ payments: [...] }` |
 * | `POST /v1/payments/:id/cancel` | the payment, canceled |
 * | `GET /v1/status` | devices, link state, queue |
 * | `GET /v1/events` | terminal prompts as server-sent events (agent/sse.ts) |
 * | `POST /v1/login-codes` | a one-time login link for the status page (agent/web-auth.ts) |
 * | `GET /openapi.json` | this API as OpenAPI 3.1; no token needed |
 * | `GET /` | the terminal status page (agent/web/) |
 *
 * Responses carry the card token, brand, first 6 and last 4 only (PCI DSS 4.0.1 req. 3.4.1).
 */
import Fastify, { LogController, type FastifyReply } from 'fastify';
import fastifySwagger from '@fastify/swagger';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { LinkHealth } from '../cloud-sync/mqtt-session.js';
import type { StoragePauseState } from './storage-guard.js';
import { AgentError } from '../common/agent-error.js';
import type { OfflineExposure, Payment, PaymentStore } from '../store-forward/payment-store.js';
import type { BatchStatus } from '../store-forward/batch-types.js';
import {
  ApiErrorSchema,
  ApiPaymentSchema,
  CanceledPaymentSchema,
  ListQuerySchema,
  LoginCodeSchema,
  PaymentBodySchema,
  PaymentHeadersSchema,
  PaymentListSchema,
  PaymentParamsSchema,
  StatusSchema,
  type ApiPayment,
} from './api-schemas.js';
import { installApiAuth } from './api-auth.js';
import { httpStatus } from './errors.js';
import type { Logger } from './logger.js';
import { OPENAPI_INFO, publishedOpenApi } from './openapi-info.js';
import type { PaymentService } from './payment-service.js';
import { registerEventStream } from './sse.js';
import { formatAmount, outcomeText, refusalText } from './texts.js';
import { registerStatusPage } from './web/page.js';
import { WebSessions } from './web-auth.js';

/** What `GET /v1/status` reports; the agent fills it in. */
export interface AgentStatus {
  deviceId: string;
  version: string;
  /** Each device's state, e.g. `{ name: 'pinPad', path, state: 'connected' }`. */
  devices: Array<{ name: string; path: string; state: string }>;
  /** The MQTT link: `online` when connected to the broker. */
  link: {
    state: 'online' | 'offline';
    /** The broker endpoint in use, or being tried while offline (issue 16). */
    broker: string;
    /** Every configured broker endpoint, in order. */
    endpoints?: string[];
    health?: LinkHealth;
  };
  /** Outbox: records not yet acknowledged, dead records, age of the oldest. */
  queue: { depth: number; inFlight: number; dead: number; acked: number; oldestAt: string | null };
  /** Issue 10: forwarding paused by storage (disk full), and the code payments are refused with. */
  storage?: { forwarding: StoragePauseState; refusing?: string };
  /** Offline exposure per currency and stored payments near their forwarding deadline. */
  offline?: {
    exposure: OfflineExposure;
    deadlineWarnings: Array<{ paymentId: string; forwardingDeadlineAt: string | null }>;
  };
  /** Issue 17: the open batch's running totals, the last close, open exceptions, drift. */
  batch?: BatchStatus;
}

/** `Retry-After` of a 503 POS207 for a full disk, seconds. */
const DISK_FULL_RETRY_AFTER_SECONDS = 30;

/**
 * The JSON shape of a payment for the POS app ({@link ApiPaymentSchema}): amounts in minor units,
 * times in ISO 8601 UTC, and `message`, the cashier's sentence for its state (agent/texts.ts).
 *
 * @param policy — the offline policy, to name the limit in an offline decline's message.
 */
export function toApiPayment(
  payment: Payment,
  policy?: Parameters<typeof outcomeText>[1],
): ApiPayment {
  return {
    id: payment.id,
    idempotencyKey: payment.idempotencyKey,
    state: payment.state,
    amount: payment.amountMinor,
    currency: payment.currency,
    reference: payment.reference ?? null,
    card:
      payment.card === undefined
        ? null
        : {
            token: payment.card.token,
            brand: payment.card.brand,
            first6: payment.card.first6,
            last4: payment.card.last4,
            expiryMonth: payment.card.expiryMonth,
            expiryYear: payment.card.expiryYear,
            entryMode: payment.card.entryMode,
          },
    // Never a silent switch: the POS app always learns how the payment was approved.
    approval: payment.approval ?? null,
    offline: payment.offlineMode ?? null,
    authCode: payment.authCode ?? null,
    declineCode: payment.declineCode ?? null,
    reason: payment.reason ?? null,
    message: outcomeText(payment, policy),
    forwardingDeadlineAt: payment.forwardingDeadlineAt ?? null,
    createdAt: payment.createdAt,
    updatedAt: payment.updatedAt,
  };
}

/** Error answers documented on every route, by HTTP status. */
const ERRORS = {
  401: ApiErrorSchema.describe(
    'POS401 missing or wrong bearer token; POS408 the status page session expired',
  ),
  403: ApiErrorSchema.describe(
    'POS403 not from loopback; POS407 a cross-origin browser request (Origin or Host not this agent)',
  ),
  429: ApiErrorSchema.describe('POS402 too many wrong tokens; retry after `Retry-After` seconds'),
} as const;

/**
 * Builds the API server (not yet listening).
 *
 * @param deps.apiToken — the bearer token; compared in constant time.
 * @param deps.status — fills in `GET /v1/status`.
 * @param deps.clock — for the status page's login codes and sessions; default the system clock.
 * @returns the fastify app, with `apiAuth.counters()`: refusals of the auth guard by code
 *   (POS401/POS402/POS403/POS407, agent/api-auth.ts), read by `/metrics`; and `webSessions`, the
 *   status page's login codes and sessions.
 */
export function buildApi(deps: {
  apiToken: string;
  payments: PaymentService;
  store: PaymentStore;
  status: () => AgentStatus;
  logger: Logger;
  /** `GET /metrics` (agent/metrics.ts); absent: the route answers 404. */
  metrics?: { metrics: () => Promise<string>; contentType: string };
  now?: () => number;
}) {
  const app = Fastify({
    loggerInstance: deps.logger.child({ component: 'api' }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 16_384,
  });
  app.setValidatorCompiler(validatorCompiler);
  // Answers are written as they are: the response schemas document them (and the typed client
  // checks them), but a payment already committed must never turn into a 500 over its shape.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  const fail = (reply: FastifyReply, error: AgentError): FastifyReply => {
    const cashierMessage = refusalText(error.code, error.details);
    // Disk full (issue 10): the POS app may try again once space is freed; say when.
    if (error.code === 'POS207' && error.details?.sqlite === 'SQLITE_FULL')
      reply.header('retry-after', String(DISK_FULL_RETRY_AFTER_SECONDS));
    return reply.code(httpStatus(error.code)).send({
      error: {
        code: error.code,
        message: error.reason,
        ...(cashierMessage !== undefined ? { cashierMessage } : {}),
        ...(error.details ? { details: error.details } : {}),
      },
    });
  };

  const sessions = new WebSessions(deps.now !== undefined ? { now: deps.now } : {});
  const apiAuth = installApiAuth(app, { apiToken: deps.apiToken, sessions });

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof AgentError) return fail(reply, error);
    if (hasZodFastifySchemaValidationErrors(error)) {
      const where = (error as { validationContext?: string }).validationContext ?? 'body';
      const missingKey =
        where === 'headers' &&
        request.headers['idempotency-key'] === undefined &&
        error.validation.some((v) => v.instancePath === '/idempotency-key');
      if (missingKey) {
        return fail(
          reply,
          new AgentError(
            'POS406',
            'the Idempotency-Key header is missing; send a new UUID per payment (e.g. "Idempotency-Key: 0190f0a2-0000-7000-8000-000000000001") and the same one on every retry of it, so a retry never charges twice',
          ),
        );
      }
      const problems = error.validation.map((v) => {
        const field = v.instancePath.replace(/^\//, '').replace(/\//g, '.');
        return `${field !== '' ? field : where === 'body' ? 'body' : where}: ${v.message ?? 'invalid'}`;
      });
      return fail(
        reply,
        new AgentError('POS400', `bad request: ${problems.join('; ')}`, { details: { problems } }),
      );
    }
    const status = (error as { statusCode?: number }).statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      return fail(reply, new AgentError('POS400', `bad request: ${(error as Error).message}`));
    }
    request.log.error({ err: error }, 'unexpected error');
    return fail(
      reply,
      new AgentError('POS499', `internal error (request ${request.id}); see the agent log`),
    );
  });

  app.setNotFoundHandler((request, reply) =>
    fail(
      reply,
      new AgentError(
        'POS405',
        `no route ${request.method} ${request.url.split('?')[0]}; the routes are listed in GET /openapi.json (docs/openapi.json)`,
      ),
    ),
  );

  void app.register(fastifySwagger, {
    openapi: { openapi: '3.1.0', ...OPENAPI_INFO },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });

  // Routes go in a plugin that loads after @fastify/swagger, which sees them through onRoute.
  void app.register(async (scope) => {
    const api = scope.withTypeProvider<ZodTypeProvider>();
    const policy = deps.payments.policy;
    const out = (payment: Payment): ApiPayment => toApiPayment(payment, policy);

    api.post(
      '/v1/payments',
      {
        schema: {
          operationId: 'createPayment',
          summary: 'Take a payment: read the card, authorize online or store offline by policy',
          description:
            "Answers after the outcome is committed to SQLite (synchronous=FULL). `Idempotency-Key` is required: the first request with a key answers 201; a retry with the same key and the same parameters answers 200 with the original payment (also while it is still in progress: the retry waits for it), so nothing is charged twice; the same key with other parameters answers 409 POS409. A declined payment is a 201 with `state: declined`, its `declineCode` and the cashier's `message`.",
          tags: ['payments'],
          headers: PaymentHeadersSchema,
          body: PaymentBodySchema,
          response: {
            200: ApiPaymentSchema.describe(
              'a retry of a known Idempotency-Key: the original payment',
            ),
            201: ApiPaymentSchema.describe('the new payment, in its final state'),
            400: ApiErrorSchema.describe(
              'POS400 bad body or header (every problem in `details.problems`); POS406 Idempotency-Key missing; POS213/POS214 a field the store refuses',
            ),
            ...ERRORS,
            409: ApiErrorSchema.describe(
              'POS409 the Idempotency-Key was used with other parameters; POS410 the PIN pad is busy with another payment',
            ),
            422: ApiErrorSchema.describe(
              'POS420 the card could not be read; the payment is `failed` (`details.paymentId`, `details.reason`)',
            ),
            503: ApiErrorSchema.describe(
              'POS430 the PIN pad is not connected; POS431 the agent is stopping; POS102 the PIN pad went away',
            ),
            504: ApiErrorSchema.describe('POS120 the PIN pad did not answer in time'),
          },
        },
      },
      async (request, reply) => {
        const body = request.body;
        const { payment, created } = await deps.payments.takePayment({
          amountMinor: body.amount,
          currency: body.currency,
          reference: body.reference,
          idempotencyKey: request.headers['idempotency-key'],
          offlineMode: body.offline,
        });
        return reply.code(created ? 201 : 200).send(out(payment));
      },
    );

    api.get(
      '/v1/payments/:id',
      {
        schema: {
          operationId: 'getPayment',
          summary: 'One payment',
          tags: ['payments'],
          params: PaymentParamsSchema,
          response: {
            200: ApiPaymentSchema,
            ...ERRORS,
            404: ApiErrorSchema.describe('POS404 no payment with this id'),
          },
        },
      },
      async (request) => {
        const payment = deps.store.getPayment(request.params.id);
        if (payment === undefined) {
          throw new AgentError('POS404', `no payment with id ${request.params.id}`);
        }
        return out(payment);
      },
    );

    api.get(
      '/v1/payments',
      {
        schema: {
          operationId: 'listPayments',
          summary: 'Payments, newest first; or the one taken with an Idempotency-Key',
          tags: ['payments'],
          querystring: ListQuerySchema,
          response: {
            200: PaymentListSchema,
            400: ApiErrorSchema.describe('POS400 bad query; POS213 `before` is not a cursor'),
            ...ERRORS,
          },
        },
      },
      async (request) => {
        const query = request.query;
        if (query.idempotencyKey !== undefined) {
          const payment = deps.store.getPaymentByKey(query.idempotencyKey);
          return { payments: payment === undefined ? [] : [out(payment)] };
        }
        // Keyset pagination by index (issue 9): flat in table size, stable while payments arrive.
        const page = deps.store.listPaymentPage({
          state: query.state,
          limit: query.limit,
          before: query.before,
        });
        return { payments: page.payments.map(out), next: page.next };
      },
    );

    api.post(
      '/v1/payments/:id/cancel',
      {
        schema: {
          operationId: 'cancelPayment',
          summary:
            'Cancel: before authorization the card read stops; after an approval a void record goes to the cloud',
          tags: ['payments'],
          params: PaymentParamsSchema,
          response: {
            200: CanceledPaymentSchema,
            ...ERRORS,
            404: ApiErrorSchema.describe('POS211 no payment with this id'),
            409: ApiErrorSchema.describe(
              'POS212 not cancelable in its state (authorizing: wait for the outcome; or final)',
            ),
          },
        },
      },
      async (request) => {
        const { payment, voided } = await deps.payments.cancel(request.params.id);
        return { ...out(payment), voidForwarded: voided };
      },
    );

    api.get(
      '/v1/status',
      {
        schema: {
          operationId: 'getStatus',
          summary: 'Devices, link state, outbox queue, offline exposure and deadlines',
          tags: ['status'],
          response: { 200: StatusSchema, ...ERRORS },
        },
      },
      async () => deps.status(),
    );

    const metrics = deps.metrics;
    if (metrics !== undefined) {
      api.get(
        '/metrics',
        {
          schema: {
            summary: 'Prometheus text format (agent/metrics.ts)',
            tags: ['status'],
            produces: ['text/plain'],
          },
        },
        async (_request, reply) => reply.type(metrics.contentType).send(await metrics.metrics()),
      );
    }

    api.post(
      '/v1/login-codes',
      {
        schema: {
          operationId: 'createLoginCode',
          summary:
            'A one-time login link for the status page (`pos-agent open` calls this); single use, valid for 60 s',
          tags: ['status page'],
          response: { 201: LoginCodeSchema, ...ERRORS },
        },
        config: { bearerOnly: true },
      },
      async (request, reply) => {
        const { code, expiresAt } = sessions.issueCode();
        const host = request.headers.host ?? '127.0.0.1';
        return reply.code(201).send({
          url: `http://${host}/login?code=${code}`,
          expiresAt: new Date(expiresAt).toISOString(),
        });
      },
    );

    api.get(
      '/openapi.json',
      {
        schema: { hide: true },
        config: { public: true },
      },
      async () => publishedOpenApi(app.swagger() as unknown as Record<string, unknown>),
    );

    // The status page formats no money itself: amounts come worded, like the prompts.
    registerEventStream(scope, deps.payments, {
      status: () => {
        const status = deps.status();
        const byCurrency = status.offline?.exposure.byCurrency ?? {};
        return {
          ...status,
          exposureText: Object.entries(byCurrency).map(([currency, e]) => ({
            currency,
            amount: formatAmount(e.amountMinor, currency),
            count: e.count,
          })),
          // Issue 17: the open batch's charged totals and the last close, worded.
          batchText:
            status.batch === undefined
              ? null
              : {
                  open: Object.entries(status.batch.open.totals.byCurrency).map(
                    ([currency, e]) => `${formatAmount(e.amountMinor, currency)} (${e.count})`,
                  ),
                  count: status.batch.open.totals.count,
                  lastClosed:
                    status.batch.lastClosed === null
                      ? null
                      : `${status.batch.lastClosed.reconciliation.replace('_', ' ')}, ` +
                        Object.entries(status.batch.lastClosed.totals.byCurrency)
                          .map(([c, e]) => formatAmount(e.amountMinor, c))
                          .join(', '),
                  openExceptions: status.batch.openExceptions,
                },
        };
      },
      recent: () =>
        deps.store
          .listPayments({ limit: 6 })
          .map((p) => ({ ...out(p), amountText: formatAmount(p.amountMinor, p.currency) })),
    });
    registerStatusPage(scope, sessions);
  });

  // While the agent stops, an answer closes its connection: a keep-alive connection that turns
  // idle after app.close() began would hold the close until its keep-alive timeout.
  app.addHook('onSend', async (_request, reply) => {
    if (deps.payments.stopping) reply.header('connection', 'close');
  });

  // The auth refusal counters ride on the app as `apiAuth`, for `/metrics` (agent/metrics.ts).
  return Object.assign(app, { apiAuth, webSessions: sessions });
}
