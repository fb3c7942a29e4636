/**
 * The cloud core simulator's ledger logic as a pure class (issue 15, issue 17): what the cloud
 * knows per idempotency key, how it decides, dedupes and voids, and its answer to a terminal's
 * batch report. No MQTT, no envelopes, no timers: `CloudCore` (cloud-core.ts) is the shell that
 * verifies uplinks, calls this class and signs and sends its answers, so the rules can be tested
 * and reused without a broker.
 *
 * ```
 *  applyRecord(device, record) ─┬─ payment: dedupe by key ─ decide (test cards, amounts) ─ book
 *                               ├─ void: mark the payment voided (once per void key)
 *                               └─ batch: the ledger's totals and per-payment view of the batch
 *  authorize(device, request)  ─── the same decision for an online authorization
 * ```
 *
 * Batch answers (issue 17, docs/reconciliation.md): for a batch record the ledger answers with
 * each named payment it holds (`charged`: approved and not voided; `declined`; `voided`), plus
 * the payments of the same terminal it holds that the report did not name, whose records came
 * before the report in the device's seq order and that no earlier close claimed (a close claims
 * them); the totals are computed over those. The answer to a batch key is kept, so a resend gets
 * the same answer.
 *
 * Ledger faults (for the reconciliation scenarios) are listed, each with its effect, on
 * `LedgerFaults` (cloud-book-types.ts).
 *
 * PCI: the PAN exists only inside `decide()` as the string returned by the injected opener and
 * is never logged, stored, counted or put in an ack.
 */
import { createHash, randomUUID } from 'node:crypto';
import { type Clock, isoAt, systemClock } from '../common/clock.js';
import { totalsOf, type CloudState } from '../common/reconciliation.js';
import type {
  AckResult,
  AuthRequest,
  AuthResponse,
  BatchRecord,
  OutboxRecord,
  UplinkRecord,
} from '../cloud-sync/schemas.js';
import type { SyncLogger } from '../cloud-sync/sync-worker.js';
import {
  DEFAULT_DECISION_RULES,
  NO_LEDGER_FAULTS,
  SILENT_LOG,
  zeroCounters,
  type BatchAnswer,
  type CloudBookOptions,
  type CloudCoreCounters,
  type CloudRecordEntry,
  type DecisionRules,
  type LedgerFaults,
  type OpenedCard,
} from './cloud-book-types.js';
import { CloudLedger, type DurableMap } from './cloud-ledger.js';

/** The ledger logic; see the file comment. */
export class CloudBook {
  #openSealed: ((sealedBase64: string) => OpenedCard) | undefined;
  #rules: DecisionRules;
  #clock: Clock;
  #log: SyncLogger;
  #ledger: CloudLedger<CloudRecordEntry, AckResult, BatchAnswer>;
  #records: DurableMap<CloudRecordEntry>;
  #voids: DurableMap<AckResult>;
  #batches: DurableMap<BatchAnswer>;
  #lastSeq = new Map<string, number>();
  #faults: LedgerFaults = { ...NO_LEDGER_FAULTS };
  /** The counters, shared with the MQTT shell (which counts batches, acks and refusals). */
  readonly counters: CloudCoreCounters = zeroCounters();
  get #counters(): CloudCoreCounters {
    return this.counters;
  }

  constructor(options: CloudBookOptions = {}) {
    this.#openSealed = options.openSealed;
    this.#rules = { ...DEFAULT_DECISION_RULES, ...options.rules };
    this.#clock = options.clock ?? systemClock;
    this.#log = options.logger ?? SILENT_LOG;
    this.#ledger = new CloudLedger(options.ledgerFile, { shared: options.sharedLedger === true });
    this.#records = this.#ledger.entries;
    this.#voids = this.#ledger.voids;
    this.#batches = this.#ledger.batches;
  }

  /** Changes ledger fault switches (others keep their values). */
  setFaults(faults: Partial<LedgerFaults>): void {
    this.#faults = { ...this.#faults, ...faults };
  }

  /** The current ledger fault switches (a copy). */
  get faults(): LedgerFaults {
    return { ...this.#faults };
  }

  /** Every idempotency key seen, with its single effect and how often it arrived. */
  records(): ReadonlyMap<string, CloudRecordEntry> {
    return this.#records.asReadonlyMap();
  }

  /** The idempotency keys seen, in first-arrival order. */
  keys(): string[] {
    return [...this.#records.keys()];
  }

  /** Closes the ledger file. */
  close(): void {
    this.#ledger.close();
  }

  /**
   * An online authorization request: decided once per key (a known key gets its original
   * outcome; a key a void arrived for first is declined `voided`).
   *
   * @returns the response to send.
   * @throws SqliteError when the ledger commit fails (SQLITE_BUSY after the busy timeout, an I/O
   *   error): nothing of it is in the file then, and nothing is answered.
   */
  authorize(deviceId: string, request: AuthRequest): AuthResponse {
    // One transaction: on a shared ledger, the read of the key and its booking are not split by
    // another instance's void of the same key (which would otherwise be overwritten).
    return this.#ledger.transaction(() => this.#authorize(deviceId, request));
  }

  #authorize(deviceId: string, request: AuthRequest): AuthResponse {
    this.#counters.authRequests += 1;
    const now = this.#clock.now();
    let entry = this.#records.get(request.key);
    if (entry?.voided === true && entry.outcome === undefined) {
      // A void arrived first (the agent gave up on this key): never approve it now.
      entry.outcome = 'declined';
      entry.declineCode = 'voided';
    }
    const booked =
      entry === undefined
        ? this.#newEntry(deviceId, { ...request, type: 'payment' }, now)
        : undefined;
    if (booked !== undefined) {
      entry = booked;
      if (entry.status === 'accepted') this.#counters.accepted += 1;
      else this.#counters.rejected += 1;
    } else {
      // Known here, or booked a moment ago by another instance on the shared ledger (issue 16).
      entry ??= this.#winner(request.key);
      entry.count += 1;
      entry.lastSeenAt = now;
      this.#records.set(entry.key, entry);
    }
    const response: AuthResponse = {
      key: entry.key,
      outcome: entry.outcome ?? 'declined',
    };
    if (entry.authCode !== undefined) response.authCode = entry.authCode;
    if (entry.declineCode !== undefined) response.declineCode = entry.declineCode;
    else if (entry.outcome === undefined) response.declineCode = '96'; // system malfunction
    return response;
  }

  /** The ledger's state of a payment in a batch answer. */
  static stateOf(entry: CloudRecordEntry): CloudState {
    if (entry.voided === true) return 'voided';
    if (entry.outcome === 'approved' && entry.declinedLater !== true) return 'charged';
    return 'declined';
  }

  /** The answer to a batch record: see the file comment. */
  #applyBatch(deviceId: string, record: BatchRecord): AckResult {
    const known = this.#batches.get(record.key);
    if (known !== undefined) {
      this.#counters.duplicates += 1;
      return { key: record.key, status: 'duplicate', batch: known };
    }
    const report = record.batch;
    const now = this.#clock.now();
    if (this.#faults.phantomChargeMinor > 0) {
      const key = `phantom-${randomUUID()}`;
      this.#records.set(key, {
        key,
        deviceId,
        type: 'payment',
        seq: 0,
        paymentId: key,
        amountMinor: this.#faults.phantomChargeMinor,
        currency: report.payments[0]?.currency ?? 'EUR',
        status: 'accepted',
        outcome: 'approved',
        authCode: 'PHANTM',
        count: 1,
        firstSeenAt: now,
        lastSeenAt: now,
        createdAt: report.openedAt,
        brand: 'unknown',
      });
      this.#faults.phantomChargeMinor = 0;
      this.#log.info({ deviceId, idempotencyKey: key }, 'fault: a phantom charge in the ledger');
    }
    const named = new Set(report.payments.map((p) => p.key));
    const lines: BatchAnswer['payments'] = [];
    const line = (entry: CloudRecordEntry): void => {
      lines.push({
        key: entry.key,
        amountMinor: entry.amountMinor,
        currency: entry.currency,
        ...(entry.brand === undefined ? {} : { brand: entry.brand }),
        state: CloudBook.stateOf(entry),
      });
    };
    const claimed: CloudRecordEntry[] = [];
    for (const key of named) {
      const entry = this.#records.get(key);
      if (entry === undefined || entry.lost === true || entry.type !== 'payment') continue;
      if (entry.status !== 'accepted') continue;
      line(entry);
      claimed.push(entry);
    }
    for (const entry of this.#records.values()) {
      if (entry.deviceId !== deviceId || entry.type !== 'payment' || named.has(entry.key)) continue;
      if (entry.lost === true || entry.status !== 'accepted' || entry.batchId !== undefined)
        continue;
      // Only payments whose record came before the report in the device's seq order (a phantom
      // has seq 0): a payment of a later batch, authorized online before this report arrived,
      // is not this batch's.
      if (entry.seq === undefined || entry.seq >= record.seq) continue;
      line(entry);
      claimed.push(entry);
    }
    if (report.kind === 'close') {
      for (const entry of claimed) {
        if (entry.batchId !== undefined) continue;
        entry.batchId = report.id;
        this.#records.set(entry.key, entry);
      }
    }
    const answer: BatchAnswer = {
      id: report.id,
      kind: report.kind,
      asOf: isoAt(now),
      totals: totalsOf(lines),
      payments: lines,
    };
    this.#batches.set(record.key, answer);
    this.#counters.accepted += 1;
    this.#log.info(
      { deviceId, batch: report.id, kind: report.kind, payments: lines.length },
      'cloud core answered a batch report',
    );
    return { key: record.key, status: 'accepted', batch: answer };
  }

  /**
   * Keys that would be charged: approved and not voided. "Never two charges per key" holds by
   * construction (one entry per key); this is what a test compares with the store's view.
   */
  charges(): string[] {
    return [...this.#records.values()]
      .filter((e) => e.outcome === 'approved' && e.voided !== true && e.lost !== true)
      .map((e) => e.key);
  }

  /**
   * A void record: the payment under `record.key` (or, for a void with its own key, the payment
   * with the same device and payment id) is marked voided. Answered `accepted` with the
   * ORIGINAL outcome, so the agent can record what the cloud had done; a void for a key the cloud
   * never saw leaves a voided entry under that key, so a late authorization with it can never be
   * approved.
   */
  #applyVoid(deviceId: string, record: OutboxRecord): AckResult {
    const now = this.#clock.now();
    const known = this.#voids.get(record.key);
    if (known !== undefined) {
      this.#counters.duplicates += 1;
      return { ...known, status: 'duplicate' };
    }
    if (this.#faults.ignoreVoids > 0) {
      // Fault: acknowledged, never applied; the charge stays.
      this.#faults.ignoreVoids -= 1;
      const ignored: AckResult = { key: record.key, status: 'accepted' };
      this.#voids.set(record.key, ignored);
      this.#log.info({ idempotencyKey: record.key }, 'fault: void acknowledged but not applied');
      return ignored;
    }
    let target = this.#records.get(record.key);
    if (target === undefined) {
      target = [...this.#records.values()].find(
        (e) => e.deviceId === deviceId && e.paymentId === record.payment.id && e.type === 'payment',
      );
    }
    if (target === undefined) {
      target = {
        key: record.key,
        deviceId,
        type: 'void',
        seq: record.seq,
        paymentId: record.payment.id,
        amountMinor: record.payment.amountMinor,
        currency: record.payment.currency,
        status: 'accepted',
        count: 0,
        firstSeenAt: now,
        lastSeenAt: now,
      };
      this.#records.set(record.key, target);
    }
    target.voided = true;
    target.lastSeenAt = now;
    this.#records.set(target.key, target);
    this.#counters.accepted += 1;
    const result: AckResult = { key: record.key, status: 'accepted' };
    if (target.outcome !== undefined) result.outcome = target.outcome;
    if (target.authCode !== undefined) result.authCode = target.authCode;
    if (target.declineCode !== undefined) result.declineCode = target.declineCode;
    this.#voids.set(record.key, result);
    this.#log.info(
      { deviceId, idempotencyKey: record.key, voided: target.key, outcome: target.outcome },
      'cloud core voided a payment',
    );
    return result;
  }

  /**
   * Applies the records of one `up/records` message in order ({@link applyRecord} each), their
   * ledger writes in ONE commit: the message's acks go out after it, as before, but a ledger file
   * takes one fsync per message instead of one or two per record.
   */
  applyRecords(deviceId: string, records: readonly UplinkRecord[]): AckResult[] {
    return this.applyMessages([{ deviceId, records }])[0] ?? [];
  }

  /**
   * Applies several `up/records` messages in order, all their ledger writes in ONE commit (the
   * cloud core's group commit, book-queue.ts). Returns each message's ack results, in order.
   * @throws when the commit fails; then nothing of any message is booked.
   */
  applyMessages(
    messages: readonly { deviceId: string; records: readonly UplinkRecord[] }[],
  ): AckResult[][] {
    return this.#ledger.transaction(() =>
      messages.map((m) => m.records.map((r) => this.applyRecord(m.deviceId, r))),
    );
  }

  /**
   * Applies one record of `up/records` once by its key and returns its ack result: a payment is
   * decided and booked, a void undoes a payment, a batch record is answered with the ledger's
   * totals for the batch. A resent key is answered `duplicate` with the original effect.
   */
  applyRecord(deviceId: string, record: UplinkRecord): AckResult {
    this.#counters.records += 1;
    if (record.type === 'batch') return this.#applyBatch(deviceId, record);
    if (record.type === 'void') return this.#applyVoid(deviceId, record);
    const now = this.#clock.now();
    const known = this.#records.get(record.key);
    if (known?.lost === true) {
      // The ledger had lost it (fault): the resend books it again, as the first arrival.
      delete known.lost;
      known.count += 1;
      known.lastSeenAt = now;
      this.#records.set(known.key, known);
      this.#counters.accepted += 1;
      return this.#resultOf(known, 'accepted');
    }
    if (known !== undefined) return this.#duplicate(known, record.seq, now);
    const lastSeq = this.#lastSeq.get(deviceId) ?? 0;
    if (record.seq <= lastSeq) this.#counters.outOfOrder += 1;
    else this.#lastSeq.set(deviceId, record.seq);
    const entry = this.#newEntry(deviceId, record, now);
    if (entry === undefined) {
      // Another cloud core instance on the shared ledger booked this key a moment ago (issue 16):
      // here it is a resend like any other, answered with the winner's effect.
      return this.#duplicate(this.#winner(record.key), record.seq, now);
    }
    if (entry.status === 'accepted') this.#counters.accepted += 1;
    else this.#counters.rejected += 1;
    const result = this.#resultOf(entry, entry.status);
    this.#faultsOnRecord(entry, true);
    return result;
  }

  /** A payment record whose key is booked already: its original effect, answered `duplicate`. */
  #duplicate(known: CloudRecordEntry, seq: number, now: number): AckResult {
    this.#faultsOnRecord(known, false);
    known.count += 1;
    known.lastSeenAt = now;
    if (known.seq === undefined) known.seq = seq;
    this.#records.set(known.key, known);
    this.#counters.duplicates += 1;
    return this.#resultOf(known, 'duplicate');
  }

  /** The entry another instance booked after {@link CloudLedger} refused this one's claim. */
  #winner(key: string): CloudRecordEntry {
    const entry = this.#records.get(key);
    if (entry === undefined)
      throw new Error(`ledger refused the claim of ${key} but holds no entry`);
    return entry;
  }

  /**
   * The ledger faults that act on a payment record's arrival (after its ack is decided). The entry
   * is written through again only when a fault changed it: the arrival booked it already (one
   * ledger write per record, not two).
   */
  #faultsOnRecord(entry: CloudRecordEntry, first: boolean): void {
    const f = this.#faults;
    if (entry.status !== 'accepted') return;
    if (f.alterAmountMinor === 0 && !(first && f.declineAfterOffline > 0) && f.loseRecords <= 0)
      return;
    if (f.alterAmountMinor !== 0) {
      entry.amountMinor = Math.max(1, entry.amountMinor + f.alterAmountMinor);
      f.alterAmountMinor = 0;
      this.#log.info({ idempotencyKey: entry.key }, 'fault: amount changed in the ledger');
    }
    if (first && f.declineAfterOffline > 0 && entry.outcome === 'approved') {
      f.declineAfterOffline -= 1;
      entry.declinedLater = true;
      this.#log.info({ idempotencyKey: entry.key }, 'fault: offline approval declined afterwards');
    }
    if (f.loseRecords > 0) {
      f.loseRecords -= 1;
      entry.lost = true;
      this.#log.info({ idempotencyKey: entry.key }, 'fault: record lost by the ledger');
    }
    this.#records.set(entry.key, entry);
  }

  /**
   * Decides and books the first arrival of a key; undefined when another instance on the shared
   * ledger booked it first (nothing counted then).
   */
  #newEntry(
    deviceId: string,
    record: Pick<OutboxRecord, 'key' | 'payment' | 'card' | 'sealed'> & {
      type?: 'payment' | 'void';
      seq?: number;
    },
    now: number,
  ): CloudRecordEntry | undefined {
    const entry: CloudRecordEntry = {
      key: record.key,
      deviceId,
      type: record.type ?? 'payment',
      seq: record.seq,
      paymentId: record.payment.id,
      amountMinor: record.payment.amountMinor,
      currency: record.payment.currency,
      status: 'accepted',
      count: 1,
      firstSeenAt: now,
      lastSeenAt: now,
      createdAt: record.payment.createdAt,
      brand: record.card.brand,
    };
    if (entry.type === 'payment') {
      const decision = this.#decide(record);
      if ('rejected' in decision) {
        entry.status = 'rejected';
        entry.code = decision.rejected;
      } else {
        entry.outcome = decision.outcome;
        if (decision.outcome === 'approved') entry.authCode = decision.authCode;
        else entry.declineCode = decision.declineCode;
      }
    }
    // One instance books a key: on a shared ledger another may have won it meanwhile.
    if (!this.#records.claim(record.key, entry)) return undefined;
    if (entry.outcome === 'approved') this.#counters.approved += 1;
    if (entry.outcome === 'declined') this.#counters.declined += 1;
    this.#log.info(
      {
        deviceId,
        idempotencyKey: entry.key,
        paymentId: entry.paymentId,
        status: entry.status,
        outcome: entry.outcome,
        declineCode: entry.declineCode,
      },
      'cloud core applied a record',
    );
    return entry;
  }

  #resultOf(entry: CloudRecordEntry, status: AckResult['status']): AckResult {
    const result: AckResult = { key: entry.key, status };
    if (entry.status === 'rejected') {
      result.status = 'rejected';
      result.code = entry.code ?? 'rejected';
      result.reason = 'sealed card data could not be opened with the vault key';
    }
    if (entry.outcome !== undefined) result.outcome = entry.outcome;
    if (entry.authCode !== undefined) result.authCode = entry.authCode;
    if (entry.declineCode !== undefined) result.declineCode = entry.declineCode;
    return result;
  }

  /** Approve or decline; the PAN lives only in this function's scope. */
  #decide(
    record: Pick<OutboxRecord, 'key' | 'payment' | 'card' | 'sealed'>,
  ):
    | { outcome: 'approved'; authCode: string }
    | { outcome: 'declined'; declineCode: string }
    | { rejected: string } {
    let panDecline: string | undefined;
    if (record.sealed !== undefined && this.#openSealed !== undefined) {
      let opened: OpenedCard;
      try {
        opened = this.#openSealed(record.sealed);
      } catch {
        return { rejected: 'sealed_unreadable' };
      }
      panDecline = this.#rules.declinedPans.get(opened.panDigits);
    } else {
      for (const [pan, code] of this.#rules.declinedPans) {
        if (pan.startsWith(record.card.first6) && pan.endsWith(record.card.last4)) {
          panDecline = code;
          break;
        }
      }
    }
    if (panDecline !== undefined) return { outcome: 'declined', declineCode: panDecline };
    const forced = this.#faults.declineCode;
    if (forced !== undefined) return { outcome: 'declined', declineCode: forced };
    for (const rule of this.#rules.amountRules) {
      if (rule.matches(record.payment.amountMinor, record.payment.currency)) {
        return { outcome: 'declined', declineCode: rule.declineCode };
      }
    }
    const authCode = createHash('sha256')
      .update(record.key)
      .digest('hex')
      .slice(0, 6)
      .toUpperCase();
    return { outcome: 'approved', authCode };
  }
}
