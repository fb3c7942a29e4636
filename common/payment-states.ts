/**
 * The payment states, one vocabulary for the store (store-forward/model.ts, where migrations.ts's
 * CHECK constraint is mirrored and tested) and the simulator's scenario files (issue 15: the
 * simulator may not import the store, so the list lives here).
 */

/**
 * Payment states, from creation to the end of life; store-forward/payment-machine.ts says which event moves
 * a payment from which state to which.
 */
export const PAYMENT_STATES = [
  'awaiting_card',
  'card_read',
  'awaiting_pin',
  'authorizing',
  'approved',
  'declined',
  'stored',
  'forwarded',
  'confirmed',
  'reversed',
  'canceled',
  'failed',
] as const;
/** One of {@link PAYMENT_STATES}. */
export type PaymentState = (typeof PAYMENT_STATES)[number];
