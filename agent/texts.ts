/**
 * The one table of what the cashier reads (issue 13): every prompt, result, decline and refusal
 * as a sentence for the terminal's screen, next to the stable code the POS app branches on.
 * The API (`message` of a payment), the server-sent events (`text` of a prompt) and the status
 * page all take their words from here, so the three never disagree.
 *
 * Money is shown as money: `USD 75.00`, `JPY 1250`, `KWD 1.250` ({@link formatAmount}), never a
 * count of minor units.
 *
 * Issuer decline codes are the ISO 8583 response codes (field 39, ISO 8583-1:1987 and the card
 * schemes' common use of them); an unknown code is shown as a code, never guessed at.
 */
import type { OfflinePolicy } from '../store-forward/offline-policy.js';
import type { ErrorCode } from '../common/agent-error.js';

/**
 * Formats an amount for a 16-character PIN pad line and for people, e.g. `EUR 12.50`,
 * `JPY 1250`, `KWD 1.250`: the currency code, then the amount with the currency's ISO 4217
 * minor-unit exponent (0 for JPY, 2 for EUR, 3 for KWD/BHD/JOD/OMR/TND), from the runtime's ICU
 * data (`Intl.NumberFormat` resolved `maximumFractionDigits`); 2 for a code ICU does not accept.
 * Integer arithmetic on the digits only, so no float rounding.
 *
 * @param amountMinor — integer minor units of `currency`.
 * @param currency — ISO 4217 alphabetic code, upper case.
 */
export function formatAmount(amountMinor: number, currency: string): string {
  const exponent = minorUnitExponent(currency);
  const sign = amountMinor < 0 ? '-' : '';
  const digits = BigInt(Math.trunc(Math.abs(amountMinor)))
    .toString()
    .padStart(exponent + 1, '0');
  if (exponent === 0) return `${currency} ${sign}${digits}`;
  const cut = digits.length - exponent;
  return `${currency} ${sign}${digits.slice(0, cut)}.${digits.slice(cut)}`;
}

const EXPONENTS = new Map<string, number>();

/** The ISO 4217 minor-unit exponent of `currency`; 2 when the runtime does not know the code. */
function minorUnitExponent(currency: string): number {
  let exponent = EXPONENTS.get(currency);
  if (exponent === undefined) {
    try {
      exponent =
        new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions()
          .maximumFractionDigits ?? 2;
    } catch {
      exponent = 2;
    }
    EXPONENTS.set(currency, exponent);
  }
  return exponent;
}

/** The fixed prompts of the payment flow, by prompt kind. */
export const PROMPT_TEXTS = {
  present_card: 'Insert, tap or swipe the card',
  enter_pin: 'Enter PIN',
  authorizing: 'Approving online…',
  approved_online: 'Approved',
  approved_offline: 'Approved offline — payment stored',
  canceled: 'Canceled',
} as const;

/**
 * Names of the ISO 8583 response codes (field 39) a card issuer declines with, as the cashier
 * reads them. Source: ISO 8583-1:1987 Annex A response codes, as used by Visa and Mastercard.
 */
export const ISSUER_DECLINE_NAMES: Readonly<Record<string, string>> = {
  '01': 'refer to card issuer',
  '03': 'invalid merchant',
  '04': 'pick up card',
  '05': 'do not honour',
  '12': 'invalid transaction',
  '13': 'invalid amount',
  '14': 'invalid card number',
  '41': 'lost card, pick up',
  '43': 'stolen card, pick up',
  '51': 'insufficient funds',
  '54': 'expired card',
  '55': 'incorrect PIN',
  '57': 'not permitted to this cardholder',
  '61': 'over the withdrawal limit',
  '62': 'restricted card',
  '65': 'too many uses of the card',
  '75': 'too many wrong PINs',
  '91': 'card issuer unavailable',
  '96': 'system malfunction',
};

/** What a local decline needs to be worded: the payment's amount and the offline policy. */
export interface DeclineContext {
  /** Integer minor units of `currency`. */
  amountMinor: number;
  /** ISO 4217 alphabetic code. */
  currency: string;
  /** The offline policy in force; absent: the limits are not named. */
  policy?: OfflinePolicy | undefined;
}

/**
 * The cashier's sentence for a decline code: the agent's own codes (offline policy, PIN, online
 * authorization) and the issuer's ISO 8583 codes.
 *
 * @example declineText('offline_amount_limit', { amountMinor: 7500, currency: 'USD', policy })
 *   // 'Declined — USD 75.00 is over the offline limit of USD 50.00 per payment'
 * @example declineText('05', …) // 'Declined by the card issuer (do not honour, code 05)'
 */
export function declineText(code: string, context: DeclineContext): string {
  const amount = formatAmount(context.amountMinor, context.currency);
  const policy = context.policy;
  switch (code) {
    case 'offline_amount_limit': {
      const limit = policy?.perTransactionLimitMinor[context.currency];
      if (policy !== undefined && limit === undefined) {
        return `Declined — ${context.currency} payments cannot be approved offline (no offline limit is set for ${context.currency})`;
      }
      return limit === undefined
        ? `Declined — ${amount} is over the offline limit per payment`
        : `Declined — ${amount} is over the offline limit of ${formatAmount(limit, context.currency)} per payment`;
    }
    case 'offline_total_limit': {
      const total =
        policy?.totalLimitMinor[context.currency] ??
        policy?.perTransactionLimitMinor[context.currency];
      return total === undefined
        ? `Declined — ${amount} more would pass the total of payments stored offline`
        : `Declined — ${amount} more would pass the total offline limit of ${formatAmount(total, context.currency)}`;
    }
    case 'offline_count_limit':
      return policy === undefined
        ? 'Declined — too many payments are stored offline; wait until the store is online again'
        : `Declined — ${policy.maxCount} payments are stored offline, the most allowed; wait until the store is online again`;
    case 'offline_not_allowed':
      return 'Declined — this payment must be approved online, and the store is offline';
    case 'online_pin_required':
      return 'Declined — this card needs its PIN checked online, and the store is offline';
    case 'authorization_timeout':
      return 'Declined — no answer from the card issuer in time; nothing is charged';
    case 'authorization_interrupted':
      return 'Declined — the online approval was interrupted; nothing is charged';
    case 'pin_timeout':
      return 'Declined — no PIN was entered in time';
    case 'pin_canceled':
      return 'Declined — the PIN entry was canceled';
    case 'pin_bypassed':
      return 'Declined — the PIN was skipped, and this card needs one';
    case 'declined':
      return 'Declined by the card issuer';
    default: {
      const name = ISSUER_DECLINE_NAMES[code];
      return name === undefined
        ? `Declined by the card issuer (code ${code})`
        : `Declined by the card issuer (${name}, code ${code})`;
    }
  }
}

/** Reasons a card read fails (architecture.md §3.2 message 29, §3.3 reader failures). */
const CARD_NOT_READ: Readonly<Record<string, string>> = {
  timeout: 'No card was presented in time',
  canceled: 'The card read was canceled',
  bad_read: 'The card could not be read — try again, or insert the chip',
  chip_required: 'This is a chip card — insert it instead of swiping',
  card_removed: 'The card was removed too early — try again',
  no_start_sentinel: 'The swipe could not be read — swipe again',
};

/** The cashier's sentence when the card could not be read, by reason code. */
export function cardNotReadText(reason: string): string {
  return CARD_NOT_READ[reason] ?? `The card could not be read (${reason}) — try again`;
}

/**
 * The cashier's sentence for a refusal of `POST /v1/payments` or of a cancel, by the API's error
 * code (the API sends it as `error.cashierMessage`); undefined for the POS app's own mistakes
 * (bad request, token, missing Idempotency-Key), which are for its developer, not the cashier.
 *
 * @param details — the error's details; POS420 carries the card-read `reason`.
 */
export function refusalText(
  code: ErrorCode,
  details?: Readonly<Record<string, unknown>>,
): string | undefined {
  switch (code) {
    case 'POS410':
      return 'The PIN pad is busy with another payment — finish or cancel it first';
    case 'POS430':
      return 'The PIN pad is not connected — check its cable, then try again';
    case 'POS431':
      return 'The terminal is restarting — try again in a moment';
    case 'POS420':
      return typeof details?.reason === 'string'
        ? cardNotReadText(details.reason)
        : 'The card could not be read — try again';
    case 'POS102':
      return 'The PIN pad was disconnected during the payment — reconnect it and try again';
    case 'POS120':
      return 'The PIN pad did not answer — check it, then try again';
    case 'POS409':
    case 'POS210':
      return 'This payment was already taken with other details — start a new payment';
    case 'POS212':
      return 'This payment cannot be canceled now';
    default:
      return undefined;
  }
}

/**
 * The cashier's sentence for a payment that the issuer reversed after an offline approval.
 *
 * @param declineCode — the issuer's late decline code, when the cloud sent one.
 */
export function reversedText(declineCode: string | undefined): string {
  if (declineCode === undefined) return 'Reversed — the card issuer declined this offline payment';
  const name = ISSUER_DECLINE_NAMES[declineCode];
  return `Reversed — the card issuer declined this offline payment (${name === undefined ? '' : `${name}, `}code ${declineCode})`;
}

/** What {@link outcomeText} needs of a payment (a subset of the store's `Payment`). */
export interface PaymentForText {
  state: string;
  amountMinor: number;
  currency: string;
  declineCode?: string | undefined;
  approval?: 'online' | 'offline' | undefined;
  reason?: string | undefined;
}

/**
 * The sentence for a payment's current state, as the API's `message` and the status page show it,
 * e.g. `Approved`, `Approved offline — payment stored`, `Declined by the card issuer (do not
 * honour, code 05)`.
 */
export function outcomeText(payment: PaymentForText, policy?: OfflinePolicy): string {
  switch (payment.state) {
    case 'awaiting_card':
      return PROMPT_TEXTS.present_card;
    case 'card_read':
      return 'Card read';
    case 'awaiting_pin':
      return PROMPT_TEXTS.enter_pin;
    case 'authorizing':
      return PROMPT_TEXTS.authorizing;
    case 'approved':
    case 'confirmed':
      return payment.approval === 'offline'
        ? 'Approved offline — confirmed by the card issuer'
        : PROMPT_TEXTS.approved_online;
    case 'stored':
    case 'forwarded':
      return PROMPT_TEXTS.approved_offline;
    case 'declined':
      return declineText(payment.declineCode ?? 'declined', {
        amountMinor: payment.amountMinor,
        currency: payment.currency,
        policy,
      });
    case 'reversed':
      return reversedText(reasonCode(payment.reason));
    case 'canceled':
      return PROMPT_TEXTS.canceled;
    case 'failed': {
      const reason = /^card not read: (\w+)/.exec(payment.reason ?? '')?.[1];
      return reason === undefined ? 'Not completed' : cardNotReadText(reason);
    }
    default:
      return payment.state;
  }
}

/**
 * The issuer code of a stored reversal reason: `declined by the issuer (code 05)`, or the
 * store's `… approved offline (decline code 05)`.
 */
function reasonCode(reason: string | undefined): string | undefined {
  const code = /\((?:decline )?code ([\w.-]+)\)/.exec(reason ?? '')?.[1];
  return code === undefined || code === 'none' ? undefined : code;
}

/**
 * Short lines for the PIN pad's own display (message 50): printable ASCII (0x20–0x7E), at most
 * 32 characters, as the pad's wire format requires (architecture.md §3.2; POS122 otherwise).
 */
export function toPadText(text: string): string {
  return text
    .replace(/[\u2013\u2014]/g, '-')
    .replace(/…/g, '...')
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, 32);
}
