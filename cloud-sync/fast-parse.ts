/**
 * Fast paths for the schemas parsed once per message on the drain (issue 9 §3): a plain check of
 * the common shape, tried by {@link openEnvelope} before the zod schema.
 *
 * - `down/acks` ({@link fastAcks}): parsed by the agent, once per acknowledgement message.
 * - the signed envelope around every message ({@link fastEnvelope}), on both sides.
 * - `up/records` ({@link fastRecordsBatch}): parsed by the cloud core (the simulator, and the
 *   drain bench's cloud child that shares the agent's two cores), once per batch of ~180 records.
 *
 * Why: zod parses through code it generates at the first parse of a schema; V8 runs that code in
 * its interpreter until it has been called often enough, and zod allocates a result object per
 * field. A drain's first ~30 `down/acks` messages (~5,000 records) cost the agent ~18 µs of CPU
 * per record in `AcksSchema` alone (0.9 µs once warm); the check below costs ~4 µs cold and
 * ~1.5 µs after 110 messages, JSON.parse included. The agent drains after a restart or an outage,
 * when this code is cold.
 *
 * The rule every fast path keeps: it answers only for input its schema certainly accepts, with
 * exactly the value the schema would return (unknown keys of a downlink stripped, as `z.object`
 * does); for anything else — a field it does not handle, a value out of range, a wrong type — it
 * answers `undefined` and the zod schema decides, with its own error messages. So a fast path can
 * make a message cheaper, never accept one the contract refuses. test/cloud-sync/fast-parse.test.ts
 * checks that against the schemas on generated and mutated messages.
 */
import type { z } from 'zod';
import { CARD_BRANDS, ENTRY_MODES, FIRST6_PATTERN, LAST4_PATTERN } from '../common/card.js';
import {
  type Acks,
  AcksSchema,
  type AckResult,
  BATCH_ID_PATTERN,
  CARD_TOKEN_PATTERN,
  CHAIN_HASH_PATTERN,
  CURRENCY_PATTERN,
  IDEMPOTENCY_KEY_PATTERN,
  IsoDateTimeSchema,
  type OutboxRecord,
  type RecordsBatch,
  RecordsBatchSchema,
} from './schemas.js';

/** A fast path: the schema's output for input it certainly accepts, otherwise `undefined`. */
export type FastParse = (value: unknown) => unknown;

/**
 * Copies the optional text field `field` (`z.string().max(max).optional()`) from `from` to `to`;
 * false when zod must decide (not a string, too long, or present as `undefined`).
 */
function copyText(
  from: Record<string, unknown>,
  to: AckResult,
  field: 'code' | 'reason' | 'authCode' | 'declineCode',
  max: number,
): boolean {
  const text = from[field];
  if (text === undefined) return !(field in from);
  if (typeof text !== 'string' || text.length > max) return false;
  to[field] = text;
  return true;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * `AcksSchema` for acknowledgements without batch answers (every message of a drain; a result
 * with `batch`, issue 17's reconciliation answer, goes to zod): `{ batch, results: [{ key,
 * status, code?, reason?, outcome?, authCode?, declineCode? }] }`, unknown keys dropped.
 */
export function fastAcks(value: unknown): Acks | undefined {
  if (!isPlainObject(value)) return undefined;
  const { batch, results } = value;
  if (typeof batch !== 'string' || !BATCH_ID_PATTERN.test(batch) || !Array.isArray(results)) {
    return undefined;
  }
  const out: AckResult[] = new Array<AckResult>(results.length);
  for (let i = 0; i < results.length; i++) {
    const result: unknown = results[i];
    if (!isPlainObject(result) || 'batch' in result) return undefined;
    const { key, status, outcome } = result;
    if (typeof key !== 'string' || !IDEMPOTENCY_KEY_PATTERN.test(key)) return undefined;
    if (status !== 'accepted' && status !== 'duplicate' && status !== 'rejected') return undefined;
    // In the schema's key order, as zod writes its output.
    const parsed: AckResult = { key, status };
    if (!copyText(result, parsed, 'code', 64) || !copyText(result, parsed, 'reason', 512)) {
      return undefined;
    }
    if (outcome !== undefined) {
      if (outcome !== 'approved' && outcome !== 'declined') return undefined;
      parsed.outcome = outcome;
    } else if ('outcome' in result) return undefined;
    if (!copyText(result, parsed, 'authCode', 16) || !copyText(result, parsed, 'declineCode', 32)) {
      return undefined;
    }
    out[i] = parsed;
  }
  return { batch, results: out };
}

/** `IsoDateTimeSchema`'s own pattern (zod's `z.iso.datetime({ offset: true })`), when it has one. */
const ISO_DATE_TIME: RegExp | undefined = IsoDateTimeSchema._zod.def.pattern;

/**
 * Canonical base64 (padding only at the end, length a multiple of 4): a subset of what
 * `z.base64()` accepts (its charset and `atob`, which also takes other spellings).
 */
const CANONICAL_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const BRANDS: ReadonlySet<unknown> = new Set(CARD_BRANDS);
const MODES: ReadonlySet<unknown> = new Set(ENTRY_MODES);
const BATCH_KEYS: ReadonlySet<string> = new Set(['batch', 'records']);
// Listed here, not taken from the schemas: a key the schemas gain later stays unknown to this
// file until it checks it, so such a record goes to zod (a test compares the lists with the
// schemas' shapes).
/** The keys of a payment or void record the fast path checks (all of `OutboxRecordSchema` but `sred`, `pinBlock`). */
export const RECORD_KEYS: ReadonlySet<string> = new Set([
  'key',
  'seq',
  'type',
  'at',
  'payment',
  'card',
  'sealed',
  'chain',
]);
/** The keys of `PaymentSchema`, all checked by the fast path. */
export const PAYMENT_KEYS: ReadonlySet<string> = new Set([
  'id',
  'amountMinor',
  'currency',
  'reference',
  'createdAt',
]);
/** The keys of `WireCardSchema`, all checked by the fast path. */
export const CARD_KEYS: ReadonlySet<string> = new Set([
  'token',
  'brand',
  'first6',
  'last4',
  'expiryMonth',
  'expiryYear',
  'entryMode',
  'cardholderName',
]);

/** Every own key of `value` is in `known` and none holds `undefined` (zod's business). */
function onlyKnownKeys(value: Record<string, unknown>, known: ReadonlySet<string>): boolean {
  for (const key in value) {
    if (!known.has(key) || value[key] === undefined) return false;
  }
  return true;
}

function isText(value: unknown, min: number, max: number): value is string {
  return typeof value === 'string' && value.length >= min && value.length <= max;
}

function isIntIn(value: unknown, min: number, max: number): value is number {
  return Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= max;
}

function isDateTime(value: unknown): value is string {
  return ISO_DATE_TIME !== undefined && typeof value === 'string' && ISO_DATE_TIME.test(value);
}

/** One payment or void record as `OutboxRecordSchema` returns it, or `undefined`. */
function fastOutboxRecord(value: unknown): OutboxRecord | undefined {
  if (!isPlainObject(value) || !onlyKnownKeys(value, RECORD_KEYS)) return undefined;
  const { key, seq, type, at, payment, card, sealed, chain } = value;
  if (typeof key !== 'string' || !IDEMPOTENCY_KEY_PATTERN.test(key)) return undefined;
  if (!isIntIn(seq, 1, Number.MAX_SAFE_INTEGER) || (type !== 'payment' && type !== 'void')) {
    return undefined;
  }
  if (!isDateTime(at) || typeof chain !== 'string' || !CHAIN_HASH_PATTERN.test(chain)) {
    return undefined;
  }
  if (!isPlainObject(payment) || !onlyKnownKeys(payment, PAYMENT_KEYS)) return undefined;
  const { id, amountMinor, currency, reference, createdAt } = payment;
  if (!isText(id, 1, 64) || !isIntIn(amountMinor, 1, Number.MAX_SAFE_INTEGER)) return undefined;
  if (typeof currency !== 'string' || !CURRENCY_PATTERN.test(currency)) return undefined;
  if ((reference !== undefined && !isText(reference, 0, 128)) || !isDateTime(createdAt)) {
    return undefined;
  }
  if (!isPlainObject(card) || !onlyKnownKeys(card, CARD_KEYS)) return undefined;
  const { token, brand, first6, last4, expiryMonth, expiryYear, entryMode, cardholderName } = card;
  if (typeof token !== 'string' || !CARD_TOKEN_PATTERN.test(token) || !BRANDS.has(brand)) {
    return undefined;
  }
  if (typeof first6 !== 'string' || !FIRST6_PATTERN.test(first6)) return undefined;
  if (typeof last4 !== 'string' || !LAST4_PATTERN.test(last4)) return undefined;
  if (!isIntIn(expiryMonth, 1, 12) || !isIntIn(expiryYear, 2000, 2099)) return undefined;
  if (!MODES.has(entryMode)) return undefined;
  if (cardholderName !== undefined && !isText(cardholderName, 1, 26)) return undefined;
  if (sealed !== undefined && !(isText(sealed, 96, 8192) && CANONICAL_BASE64.test(sealed))) {
    return undefined;
  }
  // In the schemas' key order, as zod writes its output.
  const paymentOut: OutboxRecord['payment'] =
    reference === undefined
      ? { id, amountMinor, currency, createdAt }
      : { id, amountMinor, currency, reference, createdAt };
  const cardOut: OutboxRecord['card'] = {
    token,
    brand: brand as OutboxRecord['card']['brand'],
    first6,
    last4,
    expiryMonth,
    expiryYear,
    entryMode: entryMode as OutboxRecord['card']['entryMode'],
  };
  if (cardholderName !== undefined) cardOut.cardholderName = cardholderName;
  return sealed === undefined
    ? { key, seq, type, at, payment: paymentOut, card: cardOut, chain }
    : { key, seq, type, at, payment: paymentOut, card: cardOut, sealed, chain };
}

/**
 * `RecordsBatchSchema` for batches of payment and void records whose card data is sealed (every
 * batch of a drain; batch records, SRED card data and PIN blocks go to zod): `{ batch, records }`
 * with at least one record, `seq` strictly increasing, no unknown key anywhere (strict, like
 * every uplink schema).
 */
export function fastRecordsBatch(value: unknown): RecordsBatch | undefined {
  if (!isPlainObject(value) || !onlyKnownKeys(value, BATCH_KEYS)) return undefined;
  const { batch, records } = value;
  if (typeof batch !== 'string' || !BATCH_ID_PATTERN.test(batch)) return undefined;
  if (!Array.isArray(records) || records.length === 0) return undefined;
  const out: OutboxRecord[] = new Array<OutboxRecord>(records.length);
  let lastSeq = 0;
  for (let i = 0; i < records.length; i++) {
    const record = fastOutboxRecord(records[i]);
    if (record === undefined || record.seq <= lastSeq) return undefined;
    lastSeq = record.seq;
    out[i] = record;
  }
  return { batch, records: out };
}

/** `EnvelopeSchema`'s key id rule (envelope.ts): 16 lower-case hex digits. */
const KEY_ID = /^[0-9a-f]{16}$/;
const ENVELOPE_KEYS: ReadonlySet<string> = new Set(['v', 'kid', 'body', 'sig']);

/**
 * `EnvelopeSchema` (envelope.ts, strict): `{ v: 1, kid, body, sig }` with a canonical base64
 * signature of 88 characters. Parsed for every message, before the signature is checked.
 */
export function fastEnvelope(
  value: unknown,
): { v: 1; kid: string; body: string; sig: string } | undefined {
  if (!isPlainObject(value) || !onlyKnownKeys(value, ENVELOPE_KEYS)) return undefined;
  const { v, kid, body, sig } = value;
  if (v !== 1 || typeof kid !== 'string' || !KEY_ID.test(kid) || typeof body !== 'string') {
    return undefined;
  }
  if (typeof sig !== 'string' || sig.length !== 88 || !CANONICAL_BASE64.test(sig)) {
    return undefined;
  }
  return { v, kid, body, sig };
}

const FAST_PATHS = new Map<z.ZodType, FastParse>([
  [AcksSchema, fastAcks],
  [RecordsBatchSchema, fastRecordsBatch],
]);

/** The fast path of `schema`, when it has one. */
export function fastPathOf(schema: z.ZodType): FastParse | undefined {
  return FAST_PATHS.get(schema);
}
