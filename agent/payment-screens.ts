/**
 * What the screens show during a payment: the terminal's prompts and results (`GET /v1/events`),
 * and the lines sent to the PIN pad's screen (message 50, architecture.md §3.2) at the end of a
 * payment — the sentences of agent/texts.ts, for the pad made printable ASCII, at most 32
 * characters.
 */
import type { Payment } from '../store-forward/payment-store.js';
import type { PromptKind, TerminalPrompt } from './payment-types.js';
import { formatAmount, outcomeText, PROMPT_TEXTS, toPadText } from './texts.js';

/**
 * The prompt of `kind` with `text` for `payment` at `nowMs` (epoch ms). `code` is the decline
 * code or card-read failure behind the text; a `reversed` prompt takes the payment's decline code.
 */
export function terminalPrompt(
  kind: PromptKind,
  text: string,
  payment: Payment,
  nowMs: number,
  code?: string,
): TerminalPrompt {
  return {
    kind,
    text,
    ...(code !== undefined ? { code } : {}),
    ...(kind === 'reversed' && payment.declineCode !== undefined
      ? { code: payment.declineCode }
      : {}),
    amountMinor: payment.amountMinor,
    currency: payment.currency,
    amount: formatAmount(payment.amountMinor, payment.currency),
    idempotencyKey: payment.idempotencyKey,
    paymentId: payment.id,
    at: new Date(nowMs).toISOString(),
  };
}

/**
 * The result line sent to the PIN pad (message 50) for a final payment, e.g. `Approved offline -
 * stored`: the sentence of agent/texts.ts made printable ASCII (0x20–0x7E), at most 32
 * characters, as the pad's wire format requires (POS122 otherwise; architecture.md §3.2,
 * drivers/pinpad/messages.ts). A decline shows its code, which fits where the sentence would not.
 */
export function padResultText(payment: Payment): string {
  if (payment.state === 'approved') return toPadText(PROMPT_TEXTS.approved_online);
  if (payment.state === 'stored') return 'Approved offline - stored';
  if (payment.state === 'declined')
    return toPadText(`Declined ${payment.declineCode ?? ''}`.trim());
  return toPadText(outcomeText(payment));
}

/**
 * The line sent to the PIN pad (message 50) when the card could not be read, e.g.
 * `Card not read: timeout`; printable ASCII, at most 32 characters (see {@link padResultText}).
 */
export function padCardNotReadText(reason: string): string {
  return toPadText(`Card not read: ${reason}`);
}
