/**
 * What a migration is, and the one constant migration 1 and 3 share. See index.ts for the rules
 * every migration follows.
 */

/** One forward-only migration. */
export interface Migration {
  /** `PRAGMA user_version` after this migration: 1, 2, 3, … without gaps. */
  readonly version: number;
  /** Short description, shown in POS202. */
  readonly name: string;
  /** SQL run with `db.exec` inside the start-up transaction. */
  readonly sql: string;
}

/** GLOB of an ISO 8601 UTC timestamp with milliseconds. Frozen: part of migration 1. */
export const ISO = `'[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9].[0-9][0-9][0-9]Z'`;
