/**
 * Input checks of the store, done in TypeScript before SQLite sees a value, so the caller gets a
 * message that names the field and the fix (POS213) instead of a bare `CHECK constraint failed`.
 * The schema's `CHECK`s stay the truth: these checks are the same rules, said more helpfully.
 *
 * Messages name fields, lengths and limits; they never echo card fields (token, first 6,
 * last 4, name, sealed data), and free text that holds a PAN-shaped run is refused (POS214)
 * without quoting it (architecture.md §2, PCI DSS 4.0.1 req. 3.4.1).
 */
import { findPanShapedRuns, redactPanShapedRuns } from '../common/luhn-scan.js';
import { storeError } from './errors.js';
import {
  CARD_BRANDS,
  ENTRY_MODES,
  VOID_KEY_SUFFIX,
  type NewPayment,
  type PaymentCard,
} from './model.js';

const PRINTABLE_NO_SPACE = /^[!-~]+$/;
const TOKEN = /^tok_[a-z2-7]{32}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const HEX = /^[0-9A-Fa-f]+$/;

function invalid(field: string, problem: string, fix: string): never {
  throw storeError('POS213', `${field} ${problem}; fix: ${fix}`, { details: { field } });
}

/**
 * Refuses free text holding a Luhn-valid run of 13–19 digits (it could be a PAN), found after
 * normalization (full-width digits, separators: `common/luhn-scan.ts`).
 *
 * @throws AgentError POS214 naming the field and the run's length, never the digits.
 */
export function refusePanShaped(field: string, text: string): void {
  const runs = findPanShapedRuns(text);
  if (runs.length > 0) {
    throw storeError(
      'POS214',
      `${field} holds a ${runs[0]?.length ?? 0}-digit Luhn-valid run that could be a card number, ` +
        'and card numbers are never stored; fix: send a reference without long digit runs ' +
        '(separators like "-", " " or "." do not split a card number: use letters, or shorten it)',
      { details: { field } },
    );
  }
}

/**
 * Checks an integer: `Number.isSafeInteger` and `min ≤ value ≤ max`.
 *
 * @throws AgentError POS213.
 */
export function checkInteger(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    invalid(
      field,
      `is ${typeof value === 'number' ? String(value) : typeof value}, not an integer from ${min} to ${max}`,
      `send an integer in range${field.endsWith('amountMinor') ? ' (minor units, e.g. 1050 for 10.50 EUR)' : ''}`,
    );
  }
  return value;
}

function checkText(
  field: string,
  value: unknown,
  min: number,
  max: number,
  pattern?: RegExp,
  describe = 'characters',
): string {
  if (typeof value !== 'string') {
    invalid(field, `is ${typeof value}, not text`, `send a string of ${min}–${max} ${describe}`);
  }
  if (value.length < min || value.length > max) {
    invalid(field, `is ${value.length} characters long`, `send ${min}–${max} ${describe}`);
  }
  if (pattern && !pattern.test(value)) {
    invalid(field, 'holds characters outside the allowed set', `send ${describe} only`);
  }
  return value;
}

function checkEnum<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    invalid(field, `is not one of ${allowed.join(', ')}`, 'send one of the listed values');
  }
  return value as T;
}

/**
 * Checks a client's idempotency key: 1–255 printable ASCII characters without spaces, not ending
 * in {@link VOID_KEY_SUFFIX} (`.void`, the agent's namespace for void records: a key
 * `order-1234.void` would collide with the void record of a canceled payment `order-1234`).
 *
 * @param options.stored — a key read back from the event log (replay, `checkProjection`): the
 *   `.void` rule is not applied, so payments an older agent accepted still replay.
 * @throws AgentError POS213 (length, characters, or the reserved `.void` ending), POS214 a
 *   PAN-shaped run.
 */
export function checkIdempotencyKey(
  value: unknown,
  field = 'idempotencyKey',
  options: { stored?: boolean } = {},
): string {
  const key = checkText(field, value, 1, 255, PRINTABLE_NO_SPACE, 'printable ASCII characters');
  refusePanShaped(field, key);
  if (options.stored !== true && key.endsWith(VOID_KEY_SUFFIX)) {
    invalid(
      field,
      `ends in "${VOID_KEY_SUFFIX}", which the agent reserves for the void record of a canceled ` +
        `payment (<key>${VOID_KEY_SUFFIX})`,
      `send a key that does not end in "${VOID_KEY_SUFFIX}" (a UUID works)`,
    );
  }
  return key;
}

/** Checks an ISO 4217 alphabetic currency code: three upper-case letters. @throws POS213 */
export function checkCurrency(value: unknown): string {
  if (typeof value !== 'string' || !/^[A-Z]{3}$/.test(value)) {
    invalid(
      'currency',
      `is ${typeof value === 'string' ? JSON.stringify(value.slice(0, 8)) : typeof value}, not an ISO 4217 code`,
      'send three upper-case letters, e.g. "EUR"',
    );
  }
  return value;
}

/** Checks a card as the boundary hands it out (drivers' `CardToken`). @throws POS213/POS214 */
export function checkCard(card: unknown): PaymentCard {
  if (typeof card !== 'object' || card === null) {
    invalid('card', 'is missing', 'pass the CardToken the card boundary produced');
  }
  const c = card as Record<string, unknown>;
  const checked: PaymentCard = {
    token: checkText('card.token', c.token, 36, 36, TOKEN, '"tok_" + 32 base32 letters (a–z, 2–7)'),
    brand: checkEnum('card.brand', c.brand, CARD_BRANDS),
    first6: checkText('card.first6', c.first6, 6, 6, /^\d{6}$/, 'digits'),
    last4: checkText('card.last4', c.last4, 4, 4, /^\d{4}$/, 'digits'),
    expiryMonth: checkInteger('card.expiryMonth', c.expiryMonth, 1, 12),
    expiryYear: checkInteger('card.expiryYear', c.expiryYear, 2000, 2099),
    entryMode: checkEnum('card.entryMode', c.entryMode, ENTRY_MODES),
  };
  if (c.cardholderName !== undefined) {
    checked.cardholderName = checkText(
      'card.cardholderName',
      c.cardholderName,
      2,
      26,
      /^[^0-9]+$/,
      'characters without digits',
    );
  }
  return checked;
}

/** The fields a payment starts with, before its card is read (`PaymentStore.startPayment`). */
export type PaymentStart = Pick<
  NewPayment,
  'idempotencyKey' | 'amountMinor' | 'currency' | 'reference'
>;

/** A card read: the boundary's card fields and the sealed (or SRED) data the cloud needs. */
export type CardRead = Pick<NewPayment, 'card' | 'sealed' | 'sred'>;

/**
 * Checks the fields a payment starts with: the idempotency key, the amount (integer minor units,
 * 1 … 2^53−1), the ISO 4217 currency and the optional reference (1–128 characters).
 *
 * @throws AgentError POS213 for a field outside its rules (named), POS214 for a PAN-shaped run
 *   in `reference` or `idempotencyKey`.
 */
export function checkPaymentStart(input: PaymentStart): PaymentStart {
  const out: PaymentStart = {
    idempotencyKey: checkIdempotencyKey(input.idempotencyKey),
    amountMinor: checkInteger('amountMinor', input.amountMinor, 1, Number.MAX_SAFE_INTEGER),
    currency: checkCurrency(input.currency),
  };
  if (input.reference !== undefined) {
    out.reference = checkText('reference', input.reference, 1, 128);
    refusePanShaped('reference', out.reference);
  }
  return out;
}

/**
 * Checks and normalizes a card read: the card fields, and `sealed` (padded base64, 96–8192
 * characters) or `sred` (hex, made upper-case).
 *
 * @throws AgentError POS213 for a field outside its rules (named, never its value), POS214 for a
 *   PAN-shaped run in `card.cardholderName`.
 */
export function checkCardRead(input: CardRead): CardRead {
  const out: CardRead = { card: checkCard(input.card) };
  if (out.card.cardholderName !== undefined) {
    refusePanShaped('card.cardholderName', out.card.cardholderName);
  }
  if (input.sealed !== undefined) {
    const sealed = checkText('sealed', input.sealed, 96, 8192, BASE64, 'base64 characters');
    if (sealed.length % 4 !== 0) {
      invalid(
        'sealed',
        `is ${sealed.length} characters long, not a multiple of 4`,
        'send padded base64',
      );
    }
    out.sealed = sealed;
  }
  if (input.sred !== undefined) {
    const ksnHex = checkText('sred.ksnHex', input.sred.ksnHex, 20, 24, HEX, 'hex digits');
    if (ksnHex.length !== 20 && ksnHex.length !== 24) {
      invalid(
        'sred.ksnHex',
        `is ${ksnHex.length} hex digits`,
        'send a 10-byte (TDES) or 12-byte (AES) DUKPT KSN',
      );
    }
    const ciphertextHex = checkText(
      'sred.ciphertextHex',
      input.sred.ciphertextHex,
      16,
      8192,
      HEX,
      'hex digits',
    );
    if (ciphertextHex.length % 2 !== 0) {
      invalid(
        'sred.ciphertextHex',
        `is ${ciphertextHex.length} hex digits, an odd number`,
        'send whole bytes',
      );
    }
    out.sred = { ksnHex: ksnHex.toUpperCase(), ciphertextHex: ciphertextHex.toUpperCase() };
  }
  return out;
}

/**
 * Checks and normalizes the input of `createPayment`: {@link checkPaymentStart} and
 * {@link checkCardRead}; hex of `sred` becomes upper-case, every other value is returned as given.
 *
 * @throws AgentError POS213 for a field outside its rules (named), POS214 for a PAN-shaped run
 *   in `reference`, `idempotencyKey` or `card.cardholderName`.
 */
export function checkNewPayment(input: NewPayment): NewPayment {
  return { ...checkPaymentStart(input), ...checkCardRead(input) };
}

/** Trims cloud-supplied text to 1–500 characters with PAN-shaped runs redacted. */
export function safeReason(text: string): string {
  const cleaned = redactPanShapedRuns(text, () => '[redacted]');
  const trimmed = cleaned.trim().slice(0, 500);
  return trimmed.length > 0 ? trimmed : '(no reason given)';
}
