/**
 * Integrity of the store (architecture.md §4): the hash chain over every event, the projection against
 * the events, and verified checkpoints so that start-up does not grow with history (issue 9 §4).
 *
 * ```
 *  chain:      e1 ─ e2 ─ … ─ eN ─ eN+1 ─ … ─ head        (events, ack_events, purged links)
 *  checkpoint:            (N, hash(eN), count) ──► start-up walks only eN+1 … head and checks
 *                                                  the payments those events touched
 *  full pass:  e1 … head and every payment  ──► `pos-agent verify`, doctor, the agent's
 *                                                  background pass (a page per tick)
 * ```
 *
 * A checkpoint is written only after a walk that verified the chain up to it. Tampering before
 * the newest checkpoint is not seen by start-up, but by the full pass, which the agent runs in the
 * background after every start (and `verify` / `doctor` run on demand).
 */
import { isAgentError } from '../common/agent-error.js';
import { canonicalJson, eventHash, GENESIS_HASH } from './hash-chain.js';
import type { AckEventData, StoreKernel } from './kernel.js';
import type { ChainReport, EventType, Payment, ProjectionReport } from './model.js';
import { applyEvent } from './projection.js';
import { toPayment, type ChainRow, type EventRow, type PaymentRow } from './rows.js';
import { ACK_EVENT_TYPE } from './sql.js';

const MAX_PROBLEMS = 100;
/** Rows per page of the chain walk and payments per page of the projection check. */
const PAGE = 2000;
const PAYMENT_PAGE = 500;

/** A verified prefix of the chain. */
export interface ChainCheckpoint {
  /** Seq of the last event it covers. */
  seq: number;
  /** That event's hash, lower-case hex. */
  hash: string;
  /** Chain rows (events, ack events, purged links) up to and including `seq`. */
  events: number;
  /** When it was verified, ISO 8601 UTC. */
  verifiedAt: string;
}

/** Result of {@link StoreIntegrity.verifySinceCheckpoint}. */
export interface StartupCheck {
  chain: ChainReport;
  projection: ProjectionReport;
  /** The checkpoint the walk started from, or `null` (a walk from the first event). */
  from: ChainCheckpoint | null;
  /** Chain rows walked after the checkpoint. */
  walked: number;
  /** Where the verified chain ends, for {@link StoreIntegrity.saveCheckpoint}. */
  head: { seq: number; hash: Buffer; events: number };
}

/** One page of a resumable full check: `done` with the reports, or not yet. */
export type FullCheckStep =
  | { done: false }
  | { done: true; chain: ChainReport; projection: ProjectionReport; head: StartupCheck['head'] };

/** A chain walk in progress. */
interface Walk {
  expectedSeq: number;
  prev: Buffer;
  events: number;
  purgedLinks: number;
  problems: Problems;
}

/** Chain and projection checks over a {@link StoreKernel}. Obtain from `PaymentStore.integrity`. */
export class StoreIntegrity {
  readonly #k: StoreKernel;
  readonly #extra: ReadonlyArray<() => string[]>;

  /**
   * @param extraChecks — further projection checks run with the payments' (issue 17: the batch
   *   projection of batches.ts); each returns problem sentences ending in `(POS221)`.
   */
  constructor(kernel: StoreKernel, extraChecks: ReadonlyArray<() => string[]> = []) {
    this.#k = kernel;
    this.#extra = extraChecks;
  }

  #extraProblems(problems: Problems): void {
    for (const check of this.#extra) for (const problem of check()) problems.add(problem);
  }

  /**
   * Walks the whole chain in `seq` order and recomputes every hash: finds an edited row, a missing
   * row (a gap, or a `prev_hash` that does not match) and a truncated tail (`chain_head` ahead of
   * the last event). Streams a page at a time, so memory stays flat. Someone who rewrites every
   * later hash and the head is not detectable locally; the cloud holds each payment's `chain`.
   *
   * @returns `{ ok: true, events }` or `{ ok: false, problems }` (at most 100 sentences, POS220).
   */
  verifyChain(): ChainReport {
    const walk = newWalk(null);
    while (!this.#walkPage(walk)) {
      // next page
    }
    return this.#finishWalk(walk).report;
  }

  /**
   * Folds each payment's events (its own and its entries in ack events) with `applyEvent` and
   * compares the result with its `payments` row, field by field, 500 payments at a time.
   *
   * @returns `{ ok: true, payments }` or `{ ok: false, problems }` (at most 100 sentences naming
   *   the payment and the fields that differ, POS221).
   */
  checkProjection(): ProjectionReport {
    const state = { after: '', payments: 0, problems: new Problems() };
    while (!this.#projectionPage(state)) {
      // next page
    }
    this.#extraProblems(state.problems);
    return projectionReport(state.payments, state.problems);
  }

  /**
   * Start-up check (issue 9 §4): the chain from the newest checkpoint to the head, and the
   * projection of the payments those events touched. Bounded by the activity since the
   * checkpoint, not by history.
   */
  verifySinceCheckpoint(): StartupCheck {
    const from = this.lastCheckpoint();
    const walk = newWalk(from);
    const startEvents = walk.events;
    while (!this.#walkPage(walk)) {
      // next page
    }
    const { report, head } = this.#finishWalk(walk);
    const problems = new Problems();
    const ids = this.#k.read(
      () => this.#k.stmts.paymentsChangedAfter.all({ a: from?.seq ?? 0 }) as { id: string }[],
    );
    let payments = 0;
    for (const { id } of ids) {
      const row = this.#k.read(() => this.#k.stmts.paymentById.get(id)) as PaymentRow | undefined;
      if (row === undefined) continue; // purged by retention since: its links were walked
      payments++;
      const problem = this.#k.read(() => this.#checkPayment(row));
      if (problem !== undefined) problems.add(`${problem} (POS221)`);
    }
    this.#extraProblems(problems);
    return {
      chain: report,
      projection: projectionReport(payments, problems),
      from,
      walked: walk.events - startEvents,
      head,
    };
  }

  /**
   * A full check that runs a page per call, so the agent can run it in the background without
   * holding the event loop: call {@link FullCheck.step} until it returns `done`.
   */
  fullCheck(): { step(): FullCheckStep } {
    const walk = newWalk(null);
    let chainDone = false;
    let finished: { report: ChainReport; head: StartupCheck['head'] } | undefined;
    const projection = { after: '', payments: 0, problems: new Problems() };
    return {
      step: (): FullCheckStep => {
        if (!chainDone) {
          chainDone = this.#walkPage(walk);
          if (chainDone) finished = this.#finishWalk(walk);
          return { done: false };
        }
        if (!this.#projectionPage(projection)) return { done: false };
        this.#extraProblems(projection.problems);
        const chain = finished as { report: ChainReport; head: StartupCheck['head'] };
        return {
          done: true,
          chain: chain.report,
          projection: projectionReport(projection.payments, projection.problems),
          head: chain.head,
        };
      },
    };
  }

  /** The newest verified checkpoint, or `null`. */
  lastCheckpoint(): ChainCheckpoint | null {
    const row = this.#k.read(() => this.#k.stmts.lastCheckpoint.get()) as
      { seq: number; hash: Buffer; events: number; verified_at: string } | undefined;
    if (row === undefined) return null;
    return {
      seq: row.seq,
      hash: Buffer.from(row.hash).toString('hex'),
      events: row.events,
      verifiedAt: row.verified_at,
    };
  }

  /**
   * Records a verified prefix of the chain; call it only with the `head` of a check that passed.
   * A checkpoint at seq 0 (empty chain) or at an already checkpointed seq writes nothing.
   *
   * @throws AgentError POS207 SQLite could not write.
   */
  saveCheckpoint(head: StartupCheck['head']): void {
    if (head.seq <= 0) return;
    this.#k.write(() =>
      this.#k.stmts.insertCheckpoint.run({
        seq: head.seq,
        hash: head.hash,
        events: head.events,
        verified_at: this.#k.now(),
      }),
    );
  }

  /**
   * SQLite's own structural check (`PRAGMA quick_check`, https://sqlite.org/pragma.html#pragma_quick_check):
   * b-tree pages, record formats, NOT NULL and CHECK constraints; not index contents.
   *
   * @returns `{ ok: true }` or `{ ok: false, problems }` (SQLite's messages, at most 100).
   */
  quickCheck(): { ok: true } | { ok: false; problems: string[] } {
    const rows = this.#k.db.pragma('quick_check(100)') as Array<{ quick_check: string }>;
    const problems = rows.map((r) => r.quick_check).filter((m) => m !== 'ok');
    return problems.length === 0 ? { ok: true } : { ok: false, problems };
  }

  /**
   * The payment's history: its own events and its entries in ack events, in chain order (for
   * the API and the demo).
   */
  historyRows(paymentId: string): { events: EventRow[]; acks: AckRow[] } {
    return this.#k.read(() => ({
      events: this.#k.stmts.eventsOfPayment.all(paymentId) as EventRow[],
      acks: this.#k.stmts.ackEventsOfPayment.all(paymentId) as AckRow[],
    }));
  }

  /** One page of the chain walk; true when the walk has reached the end. */
  #walkPage(walk: Walk): boolean {
    const rows = this.#k.read(
      () => this.#k.stmts.chainFrom.all({ a: walk.expectedSeq - 1, b: PAGE }) as ChainRow[],
    );
    const note = (text: string): void => walk.problems.add(`${text} (POS220)`);
    for (const row of rows) {
      const purged = row.type === null || row.at === null || row.data === null;
      if (purged) walk.purgedLinks++;
      walk.events++;
      if (row.seq !== walk.expectedSeq) {
        note(
          row.seq > walk.expectedSeq
            ? `events ${walk.expectedSeq}–${row.seq - 1} are missing before event ${row.seq}`
            : `event ${row.seq} is out of order after event ${walk.expectedSeq - 1}`,
        );
      }
      if (!Buffer.from(row.prev_hash).equals(walk.prev)) {
        note(`event ${row.seq}: prev_hash is not the hash of the event before it`);
      }
      // A purged event's content is gone on purpose (retention): only its link is checked.
      const recomputed = purged
        ? row.hash
        : eventHash(row.prev_hash, {
            seq: row.seq,
            paymentId: row.payment_id,
            type: row.type as string,
            at: row.at as string,
            data: row.data as string,
          });
      if (!Buffer.from(recomputed).equals(row.hash)) {
        const what =
          (row.type as string) === ACK_EVENT_TYPE
            ? 'ack event'
            : `${row.type} of ${row.payment_id}`;
        note(
          `event ${row.seq} (${what}): stored hash differs from the SHA-256 of its content, the ` +
            'row was edited',
        );
      }
      walk.prev = Buffer.from(row.hash);
      walk.expectedSeq = row.seq + 1;
    }
    return rows.length < PAGE;
  }

  #finishWalk(walk: Walk): { report: ChainReport; head: StartupCheck['head'] } {
    const head = this.#k.read(() => this.#k.stmts.chainHead.get()) as
      { seq: number; hash: Buffer } | undefined;
    const lastSeq = walk.expectedSeq - 1;
    if (head === undefined) {
      if (walk.events > 0)
        walk.problems.add(`chain_head is missing while ${walk.events} events exist (POS220)`);
    } else if (head.seq !== lastSeq || !Buffer.from(head.hash).equals(walk.prev)) {
      walk.problems.add(
        `chain_head names event ${head.seq}, but the log ends at event ${lastSeq}: ` +
          'events at the end are missing or were replaced (POS220)',
      );
    }
    const counted = walk.events - walk.purgedLinks;
    const report: ChainReport = walk.problems.empty
      ? walk.purgedLinks === 0
        ? { ok: true, events: counted }
        : { ok: true, events: counted, purgedLinks: walk.purgedLinks }
      : { ok: false, problems: walk.problems.list() };
    return { report, head: { seq: lastSeq, hash: walk.prev, events: walk.events } };
  }

  /** One page of payments of the projection check; true when there are no more. */
  #projectionPage(state: { after: string; payments: number; problems: Problems }): boolean {
    return this.#k.read(() => {
      const s = this.#k.stmts;
      const page = s.paymentsPage.all(state.after, PAYMENT_PAGE) as PaymentRow[];
      const first = page[0];
      const last = page[page.length - 1];
      if (first === undefined || last === undefined) return true;
      const events = groupBy(
        s.eventsOfPaymentRange.all(first.id, last.id) as EventRow[],
        (row) => row.payment_id,
      );
      const acks = groupBy(
        s.ackEventsOfPaymentRange.all(first.id, last.id) as (AckRow & { payment_id: string })[],
        (row) => row.payment_id,
      );
      const parsed = new Map<number, AckEventData>();
      for (const row of page) {
        state.payments++;
        const problem = projectionProblem(
          row,
          events.get(row.id) ?? [],
          acks.get(row.id) ?? [],
          parsed,
        );
        if (problem !== undefined) state.problems.add(`${problem} (POS221)`);
      }
      state.after = last.id;
      return page.length < PAYMENT_PAGE;
    });
  }

  #checkPayment(row: PaymentRow): string | undefined {
    const s = this.#k.stmts;
    return projectionProblem(
      row,
      s.eventsOfPayment.all(row.id) as EventRow[],
      s.ackEventsOfPayment.all(row.id) as AckRow[],
      new Map(),
    );
  }
}

/** A row of an ack event as the payment history reads it. */
export interface AckRow {
  seq: number;
  at: string;
  data: string;
}

/** The payment-event view of a payment's entries in one ack event, in their order. */
export function ackEntriesFor(
  paymentId: string,
  row: AckRow,
  parsed: Map<number, AckEventData> = new Map(),
): { seq: number; type: EventType; at: string; data: Record<string, unknown> }[] {
  let data = parsed.get(row.seq);
  if (data === undefined) {
    data = JSON.parse(row.data) as AckEventData;
    parsed.set(row.seq, data);
  }
  return data.results
    .filter((entry) => entry.paymentId === paymentId)
    .map((entry) => ({ seq: row.seq, type: entry.type, at: row.at, data: entry.data }));
}

function newWalk(from: ChainCheckpoint | null): Walk {
  return {
    expectedSeq: (from?.seq ?? 0) + 1,
    prev: from === null ? GENESIS_HASH : Buffer.from(from.hash, 'hex'),
    events: from?.events ?? 0,
    purgedLinks: 0,
    problems: new Problems(),
  };
}

function groupBy<T>(rows: readonly T[], keyOf: (row: T) => string): Map<string, T[]> {
  const map = new Map<string, T[]>();
  for (const row of rows) {
    const key = keyOf(row);
    const list = map.get(key);
    if (list === undefined) map.set(key, [row]);
    else list.push(row);
  }
  return map;
}

function projectionReport(payments: number, problems: Problems): ProjectionReport {
  return problems.empty ? { ok: true, payments } : { ok: false, problems: problems.list() };
}

/** Collects at most {@link MAX_PROBLEMS} sentences and counts the rest, so memory stays flat. */
export class Problems {
  readonly #list: string[] = [];
  #more = 0;
  /** Adds a sentence (or counts it past the limit). */
  add(text: string): void {
    if (this.#list.length < MAX_PROBLEMS) this.#list.push(text);
    else this.#more++;
  }
  /** True when nothing was added. */
  get empty(): boolean {
    return this.#list.length === 0;
  }
  /** The sentences, with a last one counting those left out. */
  list(): string[] {
    return this.#more === 0 ? this.#list : [...this.#list, `… and ${this.#more} more problems`];
  }
}

const PAYMENT_FIELDS = [
  'id',
  'idempotencyKey',
  'amountMinor',
  'currency',
  'reference',
  'state',
  'approval',
  'offlineMode',
  'card',
  'authCode',
  'declineCode',
  'reason',
  'createdAt',
  'updatedAt',
  'forwardingDeadlineAt',
] as const satisfies readonly (keyof Payment)[];

function projectionProblem(
  row: PaymentRow,
  events: readonly EventRow[],
  acks: readonly AckRow[],
  parsed: Map<number, AckEventData>,
): string | undefined {
  if (events.length === 0) return `payment ${row.id} has no events`;
  const folded: {
    seq: number;
    type: EventType;
    at: string;
    data: () => Record<string, unknown>;
  }[] = events.map((event) => ({
    seq: event.seq,
    type: event.type,
    at: event.at,
    data: () => JSON.parse(event.data) as Record<string, unknown>,
  }));
  for (const ack of acks) {
    for (const entry of ackEntriesFor(row.id, ack, parsed)) {
      folded.push({ ...entry, data: () => entry.data });
    }
  }
  // Stable: entries of one ack event keep their order.
  folded.sort((a, b) => a.seq - b.seq);
  let projected: Payment | undefined;
  for (const event of folded) {
    try {
      projected = applyEvent(projected, { type: event.type, at: event.at, data: event.data() });
    } catch (error) {
      if (!isAgentError(error)) throw error;
      return `payment ${row.id}: event ${event.seq} (${event.type}) cannot be applied: ${error.reason}`;
    }
  }
  if (projected === undefined) return `payment ${row.id} has no creating event`;
  let stored: Payment;
  try {
    stored = toPayment(row);
  } catch (error) {
    if (!isAgentError(error)) throw error;
    return `payment ${row.id}: the row cannot be read: ${error.reason}`;
  }
  const differing = PAYMENT_FIELDS.filter(
    (field) => canonicalJson(stored[field] ?? null) !== canonicalJson(projected[field] ?? null),
  );
  if (differing.length === 0) return undefined;
  const states =
    stored.state === projected.state
      ? ''
      : ` (state is ${stored.state} in payments, ${projected.state} by its events)`;
  const verb = differing.length === 1 ? 'differs' : 'differ';
  return `payment ${row.id}: ${differing.join(', ')} ${verb} from its events${states}`;
}
