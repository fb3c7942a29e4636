/**
 * Group commit for the cloud core's ledger: the `up/records` messages that arrive together (in
 * one socket read: a prefetch of AMQP deliveries, or MQTT publishes) are booked in ONE ledger
 * transaction, one fsync, before any of their acks goes out.
 *
 * Why: a fleet sends small messages (1–2 records each). With one FULL commit per message the
 * cloud core was bound by fsyncs: after a cloud outage of 1,000 terminals it answered ~85
 * messages/s on a shared 2-core machine (issue 16), while the CPU allowed several hundred.
 *
 * Guarantees kept: nothing is answered before its booking is committed; messages are booked in
 * arrival order, so each device's records keep their order; when the commit fails, no message of
 * the group is answered (each resolves `undefined`, and the caller leaves it unsettled: an AMQP
 * delivery is requeued, an MQTT sender resends).
 */
import type { AckResult, UplinkRecord } from '../cloud-sync/schemas.js';

/** One message to book: its device and its records, in order. */
export interface BookRequest {
  deviceId: string;
  records: readonly UplinkRecord[];
}

/**
 * Books the messages queued since the last flush in one call of `applyAll`, a microtask after
 * the first of them arrived.
 */
export class BookQueue {
  readonly #applyAll: (requests: readonly BookRequest[]) => AckResult[][];
  readonly #onError: (error: unknown, messages: number) => void;
  #queued: { request: BookRequest; resolve: (results: AckResult[] | undefined) => void }[] = [];
  #commits = 0;

  /**
   * @param applyAll — books every request in ONE ledger transaction and returns each request's
   *   ack results, in order (`CloudBook.applyMessages`); throws when the commit fails.
   * @param onError — told of a failed commit and how many messages it held (for the log).
   */
  constructor(
    applyAll: (requests: readonly BookRequest[]) => AckResult[][],
    onError: (error: unknown, messages: number) => void,
  ) {
    this.#applyAll = applyAll;
    this.#onError = onError;
  }

  /** Ledger commits made (one per group). */
  get commits(): number {
    return this.#commits;
  }

  /**
   * Queues one message. Resolves with its ack results once the group's commit is done, or with
   * `undefined` when that commit failed (nothing of the group was booked).
   */
  book(request: BookRequest): Promise<AckResult[] | undefined> {
    return new Promise((resolve) => {
      this.#queued.push({ request, resolve });
      if (this.#queued.length === 1) queueMicrotask(() => this.#flush());
    });
  }

  #flush(): void {
    const group = this.#queued;
    this.#queued = [];
    if (group.length === 0) return;
    let results: AckResult[][];
    try {
      results = this.#applyAll(group.map((q) => q.request));
      this.#commits += 1;
    } catch (error) {
      this.#onError(error, group.length);
      for (const q of group) q.resolve(undefined);
      return;
    }
    group.forEach((q, i) => q.resolve(results[i] ?? []));
  }
}
