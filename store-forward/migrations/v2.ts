import type { Migration } from './migration.js';

/**
 * Migration 2 — the payment state machine (issue 3, `payment-machine.ts`): every state change the
 * machine makes becomes a `payment_transitions` row (the rows of migration 1 stay), and the
 * projection gains how a payment was approved and which offline mode the POS app asked for.
 * Literal text like migration 1; `test/store-forward/schema.test.ts` compares it with
 * `machineTransitions()`.
 */
const V2_SQL = `
INSERT OR IGNORE INTO payment_transitions (from_state, to_state) VALUES
  ('approved', 'canceled'), ('approved', 'reversed'), ('authorizing', 'approved'),
  ('authorizing', 'declined'), ('authorizing', 'failed'), ('authorizing', 'stored'),
  ('awaiting_card', 'canceled'), ('awaiting_card', 'card_read'), ('awaiting_card', 'failed'),
  ('awaiting_pin', 'authorizing'), ('awaiting_pin', 'canceled'), ('awaiting_pin', 'declined'),
  ('awaiting_pin', 'failed'), ('card_read', 'authorizing'), ('card_read', 'awaiting_pin'),
  ('card_read', 'canceled'), ('card_read', 'declined'), ('card_read', 'failed'),
  ('card_read', 'stored'), ('confirmed', 'approved'), ('confirmed', 'canceled'),
  ('confirmed', 'declined'), ('confirmed', 'reversed'), ('forwarded', 'approved'),
  ('forwarded', 'canceled'), ('forwarded', 'confirmed'), ('forwarded', 'declined'),
  ('forwarded', 'reversed'), ('stored', 'approved'), ('stored', 'canceled'),
  ('stored', 'confirmed'), ('stored', 'declined'), ('stored', 'forwarded'), ('stored', 'reversed');

-- How the payment was approved: by the cloud while the customer waited, or offline by policy.
ALTER TABLE payments ADD COLUMN approval TEXT
  CHECK (approval IS NULL OR approval IN ('online', 'offline'));
-- What the POS app asked for; NULL for payments of the walking skeleton.
ALTER TABLE payments ADD COLUMN offline_mode TEXT
  CHECK (offline_mode IS NULL OR offline_mode IN ('prefer_online', 'require_online', 'force_offline'));

CREATE INDEX payments_by_approval ON payments (approval, state, currency);
`;

/** Migration 2: `PRAGMA user_version` 2. */
export const V2: Migration = {
  version: 2,
  name: 'payment state machine: transitions, approval, offline mode',
  sql: V2_SQL,
};
