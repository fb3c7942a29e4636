/**
 * Fast paths for the schemas parsed once per message on the drain (issue 9 §3): a plain check of
 * the common shape, tried by {@link openEnvelope} before the zod schema.
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
import {
  type Acks,
  AcksSchema,
  type AckResult,
  BATCH_ID_PATTERN,
  IDEMPOTENCY_KEY_PATTERN,
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

const FAST_PATHS = new Map<z.ZodType, FastParse>([[AcksSchema, fastAcks]]);

/** The fast path of `schema`, when it has one. */
export function fastPathOf(schema: z.ZodType): FastParse | undefined {
  return FAST_PATHS.get(schema);
}
