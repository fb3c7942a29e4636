/**
 * The local API for the POS app (DESIGN §6): HTTP with JSON on loopback, bearer token from the
 * keys directory, errors as `{ error: { code, message } }`.
 *
 * | route | answer |
 * |-------|--------|
 * | `POST /v1/payments` (`Idempotency-Key` header) `{ amount, currency, reference? }` | 201 new, 200 retry of a known key |
 * | `GET /v1/payments/:id` | the payment |
 * | `GET /v1/payments?state=…&idempotencyKey=…` | `{ payments: [...] }` |
 * | `GET /v1/status` | devices, link state, queue |
 *
 * Responses carry the card token, brand, first 6 and last 4 only (PCI DSS 4.0.1 req. 3.4.1).
 */
import Fastify, { LogController, type FastifyReply } from 'fastify';
import { z } from 'zod';
import type { LinkHealth } from '../cloud-sync/mqtt-session.js';
import type { StoragePauseState } from './storage-guard.js';
import { AgentError } from '../common/agent-error.js';
import type { OfflineExposure, Payment, PaymentStore } from '../store-forward/payment-store.js';
import { PAYMENT_STATES } from '../store-forward/model.js';
import { installApiAuth } from './api-auth.js';
import type { Logger } from './logger.js';
import type { PaymentService } from './payment-service.js';
import { registerEventStream } from './sse.js';

/** What `GET /v1/status` reports; the agent fills it in. */
export interface AgentStatus {
  deviceId: string;
  version: string;
  /** Each device's state, e.g. `{ name: 'pinPad', path, state: 'connected' }`. */
  devices: Array<{ name: string; path: string; state: string }>;
  /** The MQTT link: `online` when connected to the broker. */
  link: { state: 'online' | 'offline'; broker: string; health?: LinkHealth };
  /** Outbox: records not yet acknowledged, dead records, age of the oldest. */
  queue: { depth: number; inFlight: number; dead: number; acked: number; oldestAt: string | null };
  /** Issue 10: forwarding paused by storage (disk full), and the code payments are refused with. */
  storage?: { forwarding: StoragePauseState; refusing?: string };
  /** Offline exposure per currency and stored payments near their forwarding deadline. */
  offline?: {
    exposure: OfflineExposure;
    deadlineWarnings: Array<{ paymentId: string; forwardingDeadlineAt: string | null }>;
  };
}

const PaymentBody = z
  .object({
    amount: z
      .number()
      .int('amount must be an integer count of minor units, e.g. 1250 for 12.50')
      .positive('amount must be greater than 0')
      .max(99_999_999_999),
    currency: z
      .string()
      .regex(/^[A-Z]{3}$/, 'currency must be an ISO 4217 code in upper case, e.g. EUR'),
    reference: z.string().min(1).max(64).optional(),
    offline: z.enum(['prefer_online', 'require_online', 'force_offline']).optional(),
  })
  .strict();

const ListQuery = z
  .object({
    // An unknown state is the POS app's mistake (400), not the store's (it used to answer 500).
    state: z
      .enum(PAYMENT_STATES, { message: `state must be one of ${PAYMENT_STATES.join(', ')}` })
      .optional(),
    idempotencyKey: z.string().optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

const IdempotencyKey = z
  .string()
  .regex(
    /^[\x21-\x7e]{8,128}$/,
    'Idempotency-Key must be 8–128 printable ASCII characters without spaces (a UUID works)',
  )
  .refine(
    (key) => !key.endsWith('.void'),
    'Idempotency-Key must not end in ".void": the agent reserves <key>.void for the void record of a canceled payment',
  );

/** `Retry-After` of a 503 POS207 for a full disk, seconds. */
const DISK_FULL_RETRY_AFTER_SECONDS = 30;

/** HTTP status for an error code; unknown codes are 500. */
const STATUS_BY_CODE: Record<string, number> = {
  POS400: 400,
  POS401: 401,
  POS404: 404,
  POS405: 404,
  POS409: 409,
  POS210: 409,
  POS410: 409,
  POS420: 422,
  POS430: 503,
  // Issue 10: storage that cannot take a payment now (disk full) or at all until restored.
  POS207: 503,
  POS230: 503,
  POS231: 503,
  POS431: 503,
  POS211: 404,
  POS212: 409,
  // The store refused a field of the request (bad reference or key, a PAN-shaped digit run):
  // the POS app's mistake, not the agent's.
  POS213: 400,
  POS214: 400,
  // The PIN pad went away mid-read, or did not answer in time.
  POS102: 503,
  POS120: 504,
};

/**
 * The JSON shape of a payment for the POS app: amounts in minor units, times in ISO 8601 UTC.
 */
export function toApiPayment(payment: Payment): Record<string, unknown> {
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
    forwardingDeadlineAt: payment.forwardingDeadlineAt ?? null,
    createdAt: payment.createdAt,
    updatedAt: payment.updatedAt,
  };
}

/**
 * Builds the API server (not yet listening).
 *
 * @param deps.apiToken — the bearer token; compared in constant time.
 * @param deps.status — fills in `GET /v1/status`.
 * @returns the fastify app, with `apiAuth.counters()`: refusals of the auth guard by code
 *   (POS401/POS402/POS403, agent/api-auth.ts), read by `/metrics`.
 */
export function buildApi(deps: {
  apiToken: string;
  payments: PaymentService;
  store: PaymentStore;
  status: () => AgentStatus;
  logger: Logger;
  /** `GET /metrics` (agent/metrics.ts); absent: the route answers 404. */
  metrics?: { metrics: () => Promise<string>; contentType: string };
}) {
  const app = Fastify({
    loggerInstance: deps.logger.child({ component: 'api' }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 16_384,
  });

  const fail = (reply: FastifyReply, error: AgentError): FastifyReply => {
    // Disk full (issue 10): the POS app may try again once space is freed; say when.
    if (error.code === 'POS207' && error.details?.sqlite === 'SQLITE_FULL')
      reply.header('retry-after', String(DISK_FULL_RETRY_AFTER_SECONDS));
    return reply.code(STATUS_BY_CODE[error.code] ?? 500).send({
      error: {
        code: error.code,
        message: error.reason,
        ...(error.details ? { details: error.details } : {}),
      },
    });
  };

  const apiAuth = installApiAuth(app, { apiToken: deps.apiToken });

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof AgentError) return fail(reply, error);
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
        `no route ${request.method} ${request.url.split('?')[0]}; see the route table in agent/api.ts`,
      ),
    ),
  );

  app.post('/v1/payments', async (request, reply) => {
    const body = PaymentBody.safeParse(request.body);
    if (!body.success) throw badRequest(body.error);
    const keyHeader = request.headers['idempotency-key'];
    let idempotencyKey: string | undefined;
    if (keyHeader !== undefined) {
      const key = IdempotencyKey.safeParse(keyHeader);
      if (!key.success) throw badRequest(key.error);
      idempotencyKey = key.data;
    }
    const { payment, created } = await deps.payments.takePayment({
      amountMinor: body.data.amount,
      currency: body.data.currency,
      reference: body.data.reference,
      idempotencyKey,
      offlineMode: body.data.offline,
    });
    return reply.code(created ? 201 : 200).send(toApiPayment(payment));
  });

  app.get('/v1/payments/:id', async (request) => {
    const { id } = request.params as { id: string };
    const payment = deps.store.getPayment(id);
    if (payment === undefined) throw new AgentError('POS404', `no payment with id ${id}`);
    return toApiPayment(payment);
  });

  app.get('/v1/payments', async (request) => {
    const query = ListQuery.safeParse(request.query);
    if (!query.success) throw badRequest(query.error);
    if (query.data.idempotencyKey !== undefined) {
      const payment = deps.store.getPaymentByKey(query.data.idempotencyKey);
      return { payments: payment === undefined ? [] : [toApiPayment(payment)] };
    }
    const payments = deps.store.listPayments({
      ...(query.data.state !== undefined ? { state: query.data.state as Payment['state'] } : {}),
      limit: query.data.limit,
    });
    return { payments: payments.map(toApiPayment) };
  });

  app.get('/v1/status', async () => deps.status());

  const metrics = deps.metrics;
  if (metrics !== undefined) {
    app.get('/metrics', async (_request, reply) =>
      reply.type(metrics.contentType).send(await metrics.metrics()),
    );
  }

  app.post('/v1/payments/:id/cancel', async (request) => {
    const { id } = request.params as { id: string };
    const { payment, voided } = await deps.payments.cancel(id);
    return { ...toApiPayment(payment), voidForwarded: voided };
  });

  // While the agent stops, an answer closes its connection: a keep-alive connection that turns
  // idle after app.close() began would hold the close until its keep-alive timeout.
  app.addHook('onSend', async (_request, reply) => {
    if (deps.payments.stopping) reply.header('connection', 'close');
  });

  registerEventStream(app, deps.payments);

  // The auth refusal counters ride on the app as `apiAuth`, for `/metrics` (agent/metrics.ts).
  return Object.assign(app, { apiAuth });
}

function badRequest(error: z.ZodError): AgentError {
  const problems = error.issues.map(
    (i) => `${i.path.length > 0 ? i.path.join('.') : 'body'}: ${i.message}`,
  );
  return new AgentError('POS400', `bad request: ${problems.join('; ')}`, { details: { problems } });
}
