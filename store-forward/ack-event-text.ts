/**
 * The canonical JSON text of an ack event's `data` (issue 9 §3: one hash-chained event per
 * acknowledgement message), written directly for its one known shape:
 *
 * ```
 * {"batches":["b1",…],"results":[{"data":{<AckEntryData, keys sorted>},"key":"…","paymentId":"…","type":"…"},…]}
 * ```
 *
 * Exactly the text `canonicalJson({ batches, results })` (hash-chain.ts) makes of it — a test
 * holds the two equal for arbitrary strings — without the generic encoder's key sorting and
 * recursion per object: on a drain that encoder took ~2.5 µs of the agent's CPU per record.
 */
import type { AckEntry } from './kernel.js';

/**
 * The `data` of one ack entry: strings only, absent fields left out (see ack-set.ts `ackEntry`).
 * A type, not an interface: it must fit `AckEntry['data']` (`Record<string, unknown>`).
 */
export type AckEntryData = {
  key: string;
  record: 'payment' | 'void';
  status: string;
  cloudOutcome?: string;
  authCode?: string;
  declineCode?: string;
  reason?: string;
};

/** An {@link AckEntry} whose `data` is an {@link AckEntryData}. */
export type TypedAckEntry = Omit<AckEntry, 'data'> & { data: AckEntryData };

/** The keys of {@link AckEntryData} in canonical (UTF-16 code unit) order. */
const DATA_KEYS = [
  'authCode',
  'cloudOutcome',
  'declineCode',
  'key',
  'reason',
  'record',
  'status',
] as const satisfies readonly (keyof AckEntryData)[];

/**
 * `canonicalJson({ batches, results })` for an ack event: batch ids and entries in the given order,
 * each object's members in canonical key order, strings as `JSON.stringify` writes them.
 */
export function ackEventText(
  batches: readonly string[],
  results: readonly TypedAckEntry[],
): string {
  let text = '{"batches":[';
  for (let i = 0; i < batches.length; i++) {
    text += (i === 0 ? '' : ',') + JSON.stringify(batches[i]);
  }
  text += '],"results":[';
  for (let i = 0; i < results.length; i++) {
    const entry = results[i] as TypedAckEntry;
    let data = '';
    for (const key of DATA_KEYS) {
      const value = entry.data[key];
      if (value === undefined) continue;
      data += `${data === '' ? '' : ','}"${key}":${JSON.stringify(value)}`;
    }
    text +=
      `${i === 0 ? '' : ','}{"data":{${data}},"key":${JSON.stringify(entry.key)},` +
      `"paymentId":${JSON.stringify(entry.paymentId)},"type":${JSON.stringify(entry.type)}}`;
  }
  return `${text}]}`;
}
