/**
 * Packing outbox records into one signed `RecordsBatch` uplink (architecture.md §5), and how
 * many records to read for the next one. Pure apart from signing: no I/O, no clock.
 *
 * Records are packed in `seq` order and a batch never skips a record to fit a later one, so the
 * cloud sees each device's records in order (MQTT 3.1.1 §4.6 keeps one client's QoS 1 messages
 * on a topic in order; only resends can arrive late, and the cloud dedupes those). Records the
 * cloud could never accept are refused here, to be applied as dead (nothing is dropped
 * silently, architecture.md §4): a record over `maxMessageBytes` on its own (POS314), or one that
 * fails the wire schema (POS313). Unknown extra keys of a record are stripped before validation
 * (field names reported, never values).
 */
import {
  type EnvelopeSigner,
  envelopeBytesFor,
  escapedJsonBytes,
  issuesText,
  signBodyEscaped,
  signerKeyId,
} from './envelope.js';
import { syncError } from './errors.js';
import { type AckResult, type UplinkRecord, UplinkRecordSchema } from './schemas.js';

/** Default largest payload: 128 KiB, the AWS IoT Core message size limit. */
export const DEFAULT_MAX_MESSAGE_BYTES = 131_072;

/** Result of {@link packBatch}. */
export interface PackedBatch {
  /** Signed envelope bytes of `{ batch, records }`, ≤ maxMessageBytes; empty when no record fits. */
  payload: Buffer;
  /** The records in the batch, seq order (wire form: unknown keys stripped). */
  records: UplinkRecord[];
  /** Records refused locally (status rejected, POS313/POS314), to be applied as dead. */
  refused: AckResult[];
  /** Names of unknown keys stripped from records (for one warning; never values). */
  stripped: string[];
  /** True when packing stopped at a record that did not fit (the batch is full by size). */
  full: boolean;
}

/**
 * How many records to ask the outbox for next time (`nextPending(limit)`), learnt from the last
 * batch: reading and mapping rows that do not fit is wasted work (with 128 KiB batches of ~176
 * records, a fixed limit of 1000 read ~5.7 rows per row sent).
 *
 * - the batch was full by size → what fitted plus a margin of a quarter (at least 8);
 * - every candidate fitted and there were `limit` of them → twice the limit (more may fit);
 * - fewer candidates than asked (the queue ran dry) → the same limit.
 *
 * Always within 1–`maxRecords`. A limit too small only makes one batch smaller than it could
 * be; it never skips or reorders a record.
 */
export function nextFetchLimit(
  last: { limit: number; candidates: number; packed: number; full: boolean },
  maxRecords: number,
): number {
  let next: number;
  if (last.full) next = last.packed + Math.max(8, Math.ceil(last.packed / 4));
  else if (last.candidates >= last.limit) next = last.limit * 2;
  else next = last.limit;
  return Math.max(1, Math.min(maxRecords, Math.floor(next)));
}

/**
 * Packs records (seq order) into one signed `RecordsBatch` envelope of at most `maxMessageBytes`
 * bytes, computing the exact envelope length without signing per record.
 *
 * Stops at the first record that does not fit (never skips ahead, to keep seq order); a record
 * that does not fit even alone, or fails the schema, is refused (see {@link PackedBatch.refused}).
 */
export function packBatch(
  candidates: readonly unknown[],
  options: {
    batchId: string;
    signer: EnvelopeSigner;
    maxMessageBytes: number;
    maxRecords?: number;
    /**
     * The records were validated when they were created (`OutboxSource.validatesRecords`):
     * skip the per-record key stripping and schema check, which cost more than the store's own
     * work per record on a drain.
     */
    trusted?: boolean;
  },
): PackedBatch {
  const kid = signerKeyId(options.signer);
  const head = `{"batch":${JSON.stringify(options.batchId)},"records":[`;
  const tail = ']}';
  const escapedHead = JSON.stringify(head).slice(1, -1);
  const escapedTail = JSON.stringify(tail).slice(1, -1);
  const fixed = envelopeBytesFor(escapedJsonBytes(head) + escapedJsonBytes(tail), kid);
  const maxRecords = options.maxRecords ?? Number.POSITIVE_INFINITY;
  const records: UplinkRecord[] = [];
  const texts: string[] = [];
  // Each record's text as the inside of a JSON string: measured here, and the envelope's `body`
  // is these pieces joined, so the 128 KiB body is not escaped a second time (signBodyEscaped).
  const escaped: string[] = [];
  const refused: AckResult[] = [];
  const stripped = new Set<string>();
  let total = fixed;
  let full = false;
  for (const candidate of candidates) {
    if (records.length >= maxRecords) break;
    const key = keyOf(candidate);
    const parsed =
      options.trusted === true
        ? ({ success: true, data: candidate as UplinkRecord } as const)
        : UplinkRecordSchema.safeParse(toWireRecord(candidate, stripped));
    if (!parsed.success) {
      refused.push({
        key,
        status: 'rejected',
        code: 'POS313',
        reason: `record fails the wire schema: ${issuesText(parsed.error)}`.slice(0, 512),
      });
      continue;
    }
    const text = JSON.stringify(parsed.data);
    const quoted = JSON.stringify(text);
    const bytes = Buffer.byteLength(quoted, 'utf8') - 2;
    if (fixed + bytes > options.maxMessageBytes) {
      refused.push({
        key,
        status: 'rejected',
        code: 'POS314',
        reason: `record alone makes a ${fixed + bytes}-byte message, over maxMessageBytes ${options.maxMessageBytes}`,
      });
      continue;
    }
    const added = bytes + (records.length > 0 ? 1 : 0);
    if (total + added > options.maxMessageBytes) {
      full = true;
      break;
    }
    total += added;
    records.push(parsed.data);
    texts.push(text);
    escaped.push(quoted.slice(1, -1));
  }
  if (records.length === 0) {
    return { payload: Buffer.alloc(0), records, refused, stripped: [...stripped], full };
  }
  const payload = signBodyEscaped(
    `${head}${texts.join(',')}${tail}`,
    `${escapedHead}${escaped.join(',')}${escapedTail}`,
    options.signer,
  );
  if (payload.length !== total || payload.length > options.maxMessageBytes) {
    // A bug in the size arithmetic must not put an over-limit message on the wire.
    throw syncError(
      'POS314',
      `Packed batch is ${payload.length} bytes (computed ${total}), limit ${options.maxMessageBytes}: report this as a bug`,
    );
  }
  return { payload, records, refused, stripped: [...stripped], full };
}

function keyOf(candidate: unknown): string {
  const key = (candidate as { key?: unknown } | null)?.key;
  return typeof key === 'string' ? key : String(key);
}

const WIRE_KEYS = {
  record: [
    'key',
    'seq',
    'type',
    'at',
    'payment',
    'card',
    'sealed',
    'sred',
    'pinBlock',
    'chain',
    'batch',
  ],
  payment: ['id', 'amountMinor', 'currency', 'reference', 'createdAt'],
  card: [
    'token',
    'brand',
    'first6',
    'last4',
    'expiryMonth',
    'expiryYear',
    'entryMode',
    'cardholderName',
  ],
  sred: ['ksnHex', 'ciphertextHex'],
  pinBlock: ['format', 'ksnHex', 'pinBlockHex'],
} as const;

function pick(
  value: unknown,
  keys: readonly string[],
  where: string,
  stripped: Set<string>,
): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (keys.includes(k)) {
      if (v !== undefined && v !== null) out[k] = v;
      // null for an optional field (a SQL NULL column) means absent.
      else if (
        v === null &&
        !['sealed', 'sred', 'pinBlock', 'reference', 'cardholderName'].includes(k)
      )
        out[k] = v;
    } else stripped.add(`${where}${k}`);
  }
  return out;
}

/** The record with only the contract's keys (nested too); values untouched. */
function toWireRecord(candidate: unknown, stripped: Set<string>): unknown {
  const record = pick(candidate, WIRE_KEYS.record, '', stripped);
  if (record === null || typeof record !== 'object') return record;
  const r = record as Record<string, unknown>;
  if ('payment' in r) r.payment = pick(r.payment, WIRE_KEYS.payment, 'payment.', stripped);
  if ('card' in r) r.card = pick(r.card, WIRE_KEYS.card, 'card.', stripped);
  if ('sred' in r) r.sred = pick(r.sred, WIRE_KEYS.sred, 'sred.', stripped);
  if ('pinBlock' in r) r.pinBlock = pick(r.pinBlock, WIRE_KEYS.pinBlock, 'pinBlock.', stripped);
  return r;
}
