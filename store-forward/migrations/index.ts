/**
 * The schema of store-and-forward: forward-only migrations numbered in `PRAGMA user_version`
 * (architecture.md §4 — "the schema is the most important code in the project: it must make invalid
 * states impossible").
 *
 * Rules for these files (one migration per file, v1.ts … v7.ts):
 * - A migration, once released, never changes: fix forward with a new one. The SQL is literal
 *   text, not generated from the TypeScript constants, so editing `model.ts` cannot silently
 *   rewrite history; `test/store-forward/schema.test.ts` proves the two agree.
 * - Every table is `STRICT`; every enumerated column has a `CHECK`; every reference is a foreign
 *   key; money is `INTEGER` minor units; timestamps are ISO 8601 UTC text with milliseconds
 *   (`YYYY-MM-DDTHH:MM:SS.sssZ`, what `Date.prototype.toISOString` writes), chosen over epoch
 *   integers because they are what the wire carries (`at`, `oldestAt`), sort chronologically as
 *   text, and read plainly in the `sqlite3` shell a field tech has.
 * - Triggers carry the rules a `CHECK` cannot: events are append-only and chained, state changes
 *   follow `payment_transitions`, acked outbox rows are final, nothing is deleted except sealed
 *   card data, which goes when the cloud has acknowledged (PCI DSS 4.0.1 req. 3.3.1), and,
 *   from migration 3, settled payments purged by retention (their chain links stay).
 */

import type { Migration } from './migration.js';
import { V1 } from './v1.js';
import { V2 } from './v2.js';
import { V3 } from './v3.js';
import { V4 } from './v4.js';
import { V5 } from './v5.js';
import { V6 } from './v6.js';
import { V7 } from './v7.js';

export type { Migration } from './migration.js';

/**
 * All migrations, in order. `MIGRATIONS.at(-1).version` is the schema version this agent writes.
 *
 * 1 — payments projection, payment_transitions, events + chain_head, outbox, sealed_cards.
 * 2 — the payment state machine's transitions; `approval` and `offline_mode` columns.
 * 3 — retention: `purged_payments` tombstones and `purged_events` chain links.
 * 4 — store kernel: `ack_events` (one event per ack message), chain checkpoints, outbox counts,
 *     payment list indexes.
 * 5 — reconciliation: batches, payments.batch_id, batch events (hash-chained), exceptions, batch
 *     records for the cloud.
 * 6 — the offline exposure as a running total kept by triggers; the open offline approvals'
 *     partial index replaces `payments_by_approval`.
 * 7 — fewer b-trees per payment commit: `events` without its hash index, `outbox` keyed by `seq`
 *     without its event index, `sealed_cards` without rowid.
 */
export const MIGRATIONS: readonly Migration[] = [V1, V2, V3, V4, V5, V6, V7];

/** The schema version of this agent: the highest migration version. */
export const SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;
