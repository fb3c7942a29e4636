import { type Migration } from './migration.js';

/**
 * Migration 6 — the offline exposure as a running total (issue 9: a payment's store work at the
 * speed of the disk). The offline policy (offline-policy.ts) decides every offline approval on
 * the exposure it commits with; it used to be a GROUP BY over every unsettled offline approval,
 * ~0.6 ms per payment after 5,000 of them and growing with an outage's backlog.
 *
 * - `offline_exposure`: per currency, how many payments are approved offline and not settled
 *   (state `stored`, `forwarded` or `confirmed`: model.ts `OFFLINE_OPEN_STATES`) and their sum in
 *   minor units. Kept by triggers on `payments`, so every writer (the lifecycle, applied acks,
 *   recovery, retention) keeps it in the same transaction as the change; filled here from the
 *   payments as they are. Amount and currency never change (`payments_identity_immutable`), so
 *   only entering or leaving the open offline states moves it. The integrity pass compares it with
 *   the payments (offline-exposure.ts `checkOfflineExposure`).
 * - `payments_offline_open` replaces `payments_by_approval`: a partial index holding only the
 *   open offline approvals, by forwarding deadline, covering currency and amount. The earliest
 *   deadline and the deadline warnings read it in order, the check sums it without the table,
 *   and a payment approved online writes one index page less.
 *
 * Literal text like every migration; `test/store-forward/offline-exposure.test.ts` proves its
 * state list is `OFFLINE_OPEN_STATES`.
 */
const V6_SQL = `
CREATE TABLE offline_exposure (
  currency TEXT PRIMARY KEY CHECK (length(currency) = 3 AND currency GLOB '[A-Z][A-Z][A-Z]'),
  n INTEGER NOT NULL CHECK (n >= 0),
  total_minor INTEGER NOT NULL CHECK (total_minor >= 0)
) STRICT, WITHOUT ROWID;

INSERT INTO offline_exposure (currency, n, total_minor)
  SELECT currency, count(*), sum(amount_minor) FROM payments
  WHERE approval = 'offline' AND state IN ('stored', 'forwarded', 'confirmed')
  GROUP BY currency;

CREATE TRIGGER offline_exposure_insert AFTER INSERT ON payments
WHEN NEW.approval = 'offline' AND NEW.state IN ('stored', 'forwarded', 'confirmed')
BEGIN
  INSERT INTO offline_exposure (currency, n, total_minor) VALUES (NEW.currency, 1, NEW.amount_minor)
    ON CONFLICT (currency) DO UPDATE SET n = n + 1, total_minor = total_minor + excluded.total_minor;
END;

CREATE TRIGGER offline_exposure_enter AFTER UPDATE OF state, approval ON payments
WHEN NEW.approval = 'offline' AND NEW.state IN ('stored', 'forwarded', 'confirmed')
  AND NOT (OLD.approval IS 'offline' AND OLD.state IN ('stored', 'forwarded', 'confirmed'))
BEGIN
  INSERT INTO offline_exposure (currency, n, total_minor) VALUES (NEW.currency, 1, NEW.amount_minor)
    ON CONFLICT (currency) DO UPDATE SET n = n + 1, total_minor = total_minor + excluded.total_minor;
END;

CREATE TRIGGER offline_exposure_leave AFTER UPDATE OF state, approval ON payments
WHEN OLD.approval = 'offline' AND OLD.state IN ('stored', 'forwarded', 'confirmed')
  AND NOT (NEW.approval IS 'offline' AND NEW.state IN ('stored', 'forwarded', 'confirmed'))
BEGIN
  UPDATE offline_exposure SET n = n - 1, total_minor = total_minor - OLD.amount_minor
    WHERE currency = OLD.currency;
END;

CREATE TRIGGER offline_exposure_delete AFTER DELETE ON payments
WHEN OLD.approval = 'offline' AND OLD.state IN ('stored', 'forwarded', 'confirmed')
BEGIN
  UPDATE offline_exposure SET n = n - 1, total_minor = total_minor - OLD.amount_minor
    WHERE currency = OLD.currency;
END;

CREATE INDEX payments_offline_open ON payments (forwarding_deadline_at, currency, amount_minor,
  state, approval)
  WHERE approval = 'offline' AND state IN ('stored', 'forwarded', 'confirmed');
DROP INDEX payments_by_approval;
`;

/** Migration 6: `PRAGMA user_version` 6. */
export const V6: Migration = {
  version: 6,
  name: 'offline exposure as a running total',
  sql: V6_SQL,
};
