/**
 * A small typed client of the local API for the POS app (issue 13), typed and checked with the
 * same zod schemas the agent's routes validate with (agent/api-schemas.ts): a request the agent
 * would refuse fails here first, and an answer that does not match the contract fails loudly
 * instead of flowing on as `any`. Uses the runtime's `fetch` (Node ≥ 18, browsers).
 *
 * ```ts
 * const agent = new PosAgentClient({ baseUrl: 'http://127.0.0.1:7420', token });
 * const key = crypto.randomUUID();                      // one per payment, reused on retry
 * const { payment } = await agent.createPayment({ amount: 1250, currency: 'EUR' }, key);
 * payment.message  // "Approved", "Declined by the card issuer (do not honour, code 05)", …
 * ```
 *
 * Errors: {@link PosAgentApiError} with the agent's `code` (POS4xx…), `message` and HTTP status;
 * {@link PosAgentContractError} when an answer does not match the schema (a version mismatch).
 */
import type { z } from 'zod';
import {
  ApiErrorSchema,
  ApiPaymentSchema,
  CanceledPaymentSchema,
  PaymentBodySchema,
  PaymentListSchema,
  StatusSchema,
  type ApiPayment,
  type ApiStatus,
  type PaymentBody,
} from './api-schemas.js';

/** A refusal of the agent: `{ error: { code, message, details? } }` and the HTTP status. */
export class PosAgentApiError extends Error {
  /** The agent's code, e.g. `POS409`. */
  readonly code: string;
  /** HTTP status, e.g. 409. */
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;
  /** What the cashier should read, when the refusal concerns the terminal (agent/texts.ts). */
  readonly cashierMessage: string | undefined;

  constructor(
    status: number,
    code: string,
    message: string,
    options: { details?: Record<string, unknown>; cashierMessage?: string } = {},
  ) {
    super(`${message} (${code}, HTTP ${status})`);
    this.status = status;
    this.code = code;
    this.details = options.details;
    this.cashierMessage = options.cashierMessage;
  }

  override get name(): string {
    return 'PosAgentApiError';
  }
}

/** An answer that does not match the contract (agent and client from different versions). */
export class PosAgentContractError extends Error {
  override get name(): string {
    return 'PosAgentContractError';
  }
}

/** Options of {@link PosAgentClient}. */
export interface PosAgentClientOptions {
  /** e.g. `http://127.0.0.1:7420` (no trailing slash needed). */
  baseUrl: string;
  /** The bearer token (the agent's keys/api.token). */
  token: string;
  /** A fetch implementation; default the global one. */
  fetch?: typeof fetch;
}

/** The local API, one method per route (architecture.md §6, docs/openapi.json). */
export class PosAgentClient {
  readonly #baseUrl: string;
  readonly #token: string;
  readonly #fetch: typeof fetch;

  constructor(options: PosAgentClientOptions) {
    this.#baseUrl = options.baseUrl.replace(/\/$/, '');
    this.#token = options.token;
    this.#fetch = options.fetch ?? fetch;
  }

  /**
   * `POST /v1/payments`: reads the card, authorizes online or stores offline by policy; answers
   * once the outcome is committed. A decline is a result (`payment.state === 'declined'`), not
   * an error.
   *
   * @param idempotencyKey — required: a new key (a UUID) per payment, the SAME key on every retry
   *   of it (after a timeout or a restart): the agent then answers the original payment.
   * @returns `created: false` for a retry of a known key.
   * @throws PosAgentApiError POS409 key reused with other parameters, POS410 PIN pad busy,
   *   POS420 card not read, POS430 PIN pad not connected, …; ZodError for a body the agent
   *   would refuse (nothing is sent).
   */
  async createPayment(
    body: PaymentBody,
    idempotencyKey: string,
  ): Promise<{ payment: ApiPayment; created: boolean }> {
    const checked = PaymentBodySchema.parse(body);
    const { status, json } = await this.#request('POST', '/v1/payments', {
      body: checked,
      headers: { 'idempotency-key': idempotencyKey },
    });
    return { payment: parse(ApiPaymentSchema, json, 'POST /v1/payments'), created: status === 201 };
  }

  /** `GET /v1/payments/:id`. @throws PosAgentApiError POS404 unknown id. */
  async getPayment(id: string): Promise<ApiPayment> {
    const route = `/v1/payments/${encodeURIComponent(id)}`;
    const { json } = await this.#request('GET', route);
    return parse(ApiPaymentSchema, json, `GET ${route}`);
  }

  /** `GET /v1/payments?state=…&idempotencyKey=…&limit=…`, newest first: the first page. */
  async listPayments(
    query: { state?: ApiPayment['state']; idempotencyKey?: string; limit?: number } = {},
  ): Promise<ApiPayment[]> {
    return (await this.listPaymentPage(query)).payments;
  }

  /**
   * `GET /v1/payments?…&before=…`: one page, newest first, and the cursor of the next (older)
   * page (`null` on the last).
   *
   * @throws PosAgentApiError POS213 `before` is not a cursor the agent gave.
   */
  async listPaymentPage(
    query: {
      state?: ApiPayment['state'];
      idempotencyKey?: string;
      limit?: number;
      before?: string;
    } = {},
  ): Promise<{ payments: ApiPayment[]; next: string | null }> {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined) params.set(name, String(value));
    }
    const route = `/v1/payments${params.size > 0 ? `?${params.toString()}` : ''}`;
    const { json } = await this.#request('GET', route);
    const page = parse(PaymentListSchema, json, `GET ${route}`);
    return { payments: page.payments, next: page.next ?? null };
  }

  /**
   * `POST /v1/payments/:id/cancel`.
   *
   * @throws PosAgentApiError POS211 unknown payment, POS212 not cancelable in its state.
   */
  async cancelPayment(id: string): Promise<z.infer<typeof CanceledPaymentSchema>> {
    const route = `/v1/payments/${encodeURIComponent(id)}/cancel`;
    const { json } = await this.#request('POST', route);
    return parse(CanceledPaymentSchema, json, `POST ${route}`);
  }

  /** `GET /v1/status`: devices, link, queue, offline exposure. */
  async status(): Promise<ApiStatus> {
    const { json } = await this.#request('GET', '/v1/status');
    return parse(StatusSchema, json, 'GET /v1/status');
  }

  async #request(
    method: string,
    route: string,
    options: { body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; json: unknown }> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.#token}`,
      ...options.headers,
    };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const response = await this.#fetch(`${this.#baseUrl}${route}`, {
      method,
      headers,
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new PosAgentContractError(
        `${method} ${route}: HTTP ${response.status} with a body that is not JSON`,
      );
    }
    if (response.status >= 400) {
      const refusal = ApiErrorSchema.safeParse(json);
      if (!refusal.success) {
        throw new PosAgentContractError(
          `${method} ${route}: HTTP ${response.status} without the error shape`,
        );
      }
      const { code, message, details, cashierMessage } = refusal.data.error;
      throw new PosAgentApiError(response.status, code, message, {
        ...(details !== undefined ? { details } : {}),
        ...(cashierMessage !== undefined ? { cashierMessage } : {}),
      });
    }
    return { status: response.status, json };
  }
}

function parse<S extends z.ZodType>(schema: S, json: unknown, what: string): z.infer<S> {
  const result = schema.safeParse(json);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new PosAgentContractError(
      `${what}: the answer does not match the contract: ${problems.join('; ')}`,
    );
  }
  return result.data;
}
