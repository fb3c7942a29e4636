/**
 * Reading payments (architecture.md §6: `GET /v1/payments/:id`, `GET /v1/payments?state=…`):
 * by id, by idempotency key, a page of the list by index, one payment's history. A payment in
 * progress is found too: it is a draft in memory until its decision (payment-drafts.ts), and
 * reads exactly like the row it becomes.
 */
import { storeError } from './errors.js';
import { ackEntriesFor, type StoreIntegrity } from './integrity.js';
import type { StoreKernel } from './kernel.js';
import { PAYMENT_STATES, type Payment, type PaymentState, type StoredEvent } from './model.js';
import type { PaymentDrafts } from './payment-drafts.js';
import { toPayment, type PaymentRow } from './rows.js';
import { KEYSET_END } from './sql.js';
import { checkInteger } from './validate.js';

/** A page of {@link PaymentQueries.listPaymentPage}: the payments and the cursor of the next page. */
export interface PaymentPage {
  payments: Payment[];
  /** Pass as `before` for the next (older) page; `null` on the last page. */
  next: string | null;
}

/** Which page of payments `listPaymentPage` answers. */
export interface PaymentPageFilter {
  /** Only payments in this state. */
  state?: PaymentState | undefined;
  /** 1–1000, default 100. */
  limit?: number | undefined;
  /** The `next` cursor of the previous page; default: the newest. */
  before?: string | undefined;
}

/** The store's payment reads over one kernel and its drafts. */
export class PaymentQueries {
  readonly #k: StoreKernel;
  readonly #drafts: PaymentDrafts;
  readonly #integrity: StoreIntegrity;

  constructor(k: StoreKernel, drafts: PaymentDrafts, integrity: StoreIntegrity) {
    this.#k = k;
    this.#drafts = drafts;
    this.#integrity = integrity;
  }

  /** The payment with this id (`pay_…`), in progress or stored, or `undefined`. */
  getPayment(id: string): Payment | undefined {
    const draft = this.#drafts.get(id);
    if (draft !== undefined) return draft.payment;
    const row = this.#k.read(() => this.#k.stmts.paymentById.get(id)) as PaymentRow | undefined;
    return row === undefined ? undefined : toPayment(row);
  }

  /**
   * The payment with this id.
   *
   * @throws AgentError POS211 when there is none (the local API answers 404).
   */
  requirePayment(id: string): Payment {
    const payment = this.getPayment(id);
    if (payment === undefined) {
      throw storeError(
        'POS211',
        `payment ${JSON.stringify(id.slice(0, 64))} not found; fix: use the id returned by POST /v1/payments, or look it up by its idempotency key`,
        { details: { paymentId: id } },
      );
    }
    return payment;
  }

  /** The payment created with this idempotency key, in progress or stored, or `undefined`. */
  getPaymentByKey(idempotencyKey: string): Payment | undefined {
    const draft = this.#drafts.byKey(idempotencyKey);
    if (draft !== undefined) return draft.payment;
    const row = this.#k.read(() => this.#k.stmts.paymentByKey.get(idempotencyKey)) as
      PaymentRow | undefined;
    return row === undefined ? undefined : toPayment(row);
  }

  /**
   * Payments, newest first, by index (flat in table size), a page at a time; payments in
   * progress (drafts, a handful at most) are merged in by the same order.
   *
   * @param filter.state — only payments in this state.
   * @param filter.limit — 1–1000, default: 100.
   * @param filter.before — the `next` cursor of the previous page; default: the newest.
   * @throws AgentError POS213 unknown state, limit out of range or a malformed cursor.
   */
  listPaymentPage(filter: PaymentPageFilter = {}): PaymentPage {
    const limit = checkInteger('limit', filter.limit ?? 100, 1, 1000);
    const state = filter.state;
    if (state !== undefined && !(PAYMENT_STATES as readonly string[]).includes(state)) {
      throw storeError(
        'POS213',
        `state is not one of ${PAYMENT_STATES.join(', ')}; fix: send one of them`,
      );
    }
    const [createdAt, id] = parseCursor(filter.before);
    const rows = this.#k.read(() =>
      state === undefined
        ? this.#k.stmts.listPayments.all({ a: createdAt, b: id, n: limit })
        : this.#k.stmts.listPaymentsByState.all(state, createdAt, id, limit),
    ) as PaymentRow[];
    let payments = rows.map(toPayment);
    const drafts = this.#drafts
      .payments()
      .filter((p) => (state === undefined || p.state === state) && olderThan(p, createdAt, id));
    if (drafts.length > 0) {
      payments = [...drafts, ...payments].sort(newestFirst).slice(0, limit);
    }
    const last = payments[payments.length - 1];
    return {
      payments,
      next: payments.length === limit && last !== undefined ? `${last.createdAt}~${last.id}` : null,
    };
  }

  /** The first page of {@link listPaymentPage}: payments, newest first. Errors as there. */
  listPayments(
    filter: { state?: PaymentState | undefined; limit?: number | undefined } = {},
  ): Payment[] {
    return this.listPaymentPage(filter).payments;
  }

  /**
   * The history of one payment in chain order (empty for an unknown id, and for a payment in
   * progress, whose events are written with its decision): its own events, and its entries in
   * ack events (`seq` and hashes of the ack event they belong to).
   */
  listEvents(paymentId: string): StoredEvent[] {
    const { events, acks } = this.#integrity.historyRows(paymentId);
    const list: StoredEvent[] = events.map((row) => ({
      seq: row.seq,
      paymentId: row.payment_id,
      type: row.type,
      at: row.at,
      data: JSON.parse(row.data) as Record<string, unknown>,
      prevHash: row.prev_hash.toString('hex'),
      hash: row.hash.toString('hex'),
    }));
    for (const ack of acks) {
      for (const entry of ackEntriesFor(paymentId, ack)) {
        list.push({ ...entry, paymentId, prevHash: '', hash: '' });
      }
    }
    return list.sort((a, b) => a.seq - b.seq);
  }
}

/** `before` cursor → (created_at, id) bounds; no cursor → past the newest payment. */
function parseCursor(before: string | undefined): [string, string] {
  if (before === undefined) return [KEYSET_END, KEYSET_END];
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)~(pay_[0-9a-f-]{36})$/.exec(before);
  if (match === null) {
    throw storeError(
      'POS213',
      'before is not a cursor of this list; fix: pass the `next` value of the previous page',
    );
  }
  return [match[1] as string, match[2] as string];
}

/** `(p.createdAt, p.id) < (createdAt, id)`, as the list's SQL compares them (ASCII text). */
function olderThan(p: Payment, createdAt: string, id: string): boolean {
  return p.createdAt < createdAt || (p.createdAt === createdAt && p.id < id);
}

/** The list's order: `created_at DESC, id DESC`. */
function newestFirst(a: Payment, b: Payment): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}
