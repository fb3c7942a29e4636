/**
 * The leak sweep of architecture.md §2: scans what left the card boundary (database and WAL files, logs,
 * MQTT payloads, API responses) for the test PANs and for any Luhn-valid run of 13–19 digits.
 */
import { existsSync, readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { findPanShapedRuns } from '../../common/luhn-scan.js';
import { TEST_PANS } from './test-pans.js';

/** One place where card data was found. */
export interface Leak {
  /** Where: a file path or a label such as `mqtt pos/v1/dev/up/records`. */
  source: string;
  /** What was found, masked to first 6 / last 4 so that the test output itself does not leak. */
  found: string;
}

/** A named blob of bytes or text to scan. */
export interface SweepItem {
  source: string;
  content: Buffer | string;
  /**
   * `false` for a value known to be a hash or a ciphertext in hex (set by {@link cutOpaqueHex}
   * only): it is searched for the test PANs but not Luhn-scanned. Default: scanned.
   */
  luhnScan?: false;
}

/**
 * JSON string fields whose value is a hash or a ciphertext in hex, with the lengths their schema
 * allows (cloud-sync/envelope.ts, cloud-sync/schemas.ts). Random hex holds a run of 13–19
 * decimal digits that passes Luhn now and then (a 16-digit key id: about 1 in 2 000; seen in CI:
 * the cloud core's `kid` on every `down/acks` and `down/auth` envelope of one e2e run). Their
 * digits are not card data: a key id is SHA-256 of a public key and a receiver refuses any
 * other, and KSN, PIN block and SRED ciphertext come encrypted from the reader or PIN pad.
 */
const OPAQUE_HEX_FIELDS: Record<string, RegExp> = {
  kid: /^[0-9a-f]{16}$/,
  ksnHex: /^(?:[0-9A-Fa-f]{20}|[0-9A-Fa-f]{24})$/,
  pinBlockHex: /^(?:[0-9A-Fa-f]{16}|[0-9A-Fa-f]{32})$/,
  ciphertextHex: /^(?:[0-9A-Fa-f]{2})+$/,
};

/** `"name":"value"` in JSON text, or `\"name\":\"value\"` in JSON text held in a JSON string. */
const OPAQUE_HEX_FIELD =
  /(\\?")(kid|ksnHex|pinBlockHex|ciphertextHex)\1(\s*:\s*)\1([0-9A-Fa-f]+)\1/g;

/**
 * Splits JSON text (an MQTT envelope, whose body is JSON text in a string, or a stored JSON value)
 * into the rest, with each {@link OPAQUE_HEX_FIELDS} value that has its schema's shape replaced
 * by `opaque`, and one item per value cut out, marked `luhnScan: false`. A value of another
 * shape stays in the rest and is scanned. The rest keeps the form it came in (bytes or text).
 */
export function cutOpaqueHex(source: string, content: Buffer | string): SweepItem[] {
  const text = typeof content === 'string' ? content : content.toString('latin1');
  const opaque: SweepItem[] = [];
  const rest = text.replace(
    OPAQUE_HEX_FIELD,
    (whole, quote: string, name: string, colon: string, value: string) => {
      if (!(OPAQUE_HEX_FIELDS[name]?.test(value) ?? false)) return whole;
      opaque.push({ source: `${source} ${name} (opaque hex)`, content: value, luhnScan: false });
      return `${quote}${name}${quote}${colon}${quote}opaque${quote}`;
    },
  );
  if (opaque.length === 0) return [{ source, content }];
  return [
    { source, content: typeof content === 'string' ? rest : Buffer.from(rest, 'latin1') },
    ...opaque,
  ];
}

/** Reads the files that exist among `paths` (a database's `-wal` may be gone after a checkpoint). */
export function filesToSweep(paths: string[]): SweepItem[] {
  return paths.filter((p) => existsSync(p)).map((p) => ({ source: p, content: readFileSync(p) }));
}

const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/**
 * True for the bytes of an SQLite database, WAL or shared-memory file. In those, the text of
 * adjacent columns is stored back to back (a UUID's last digits, then a `2026-…` timestamp), so
 * a raw-byte Luhn scan finds digit runs that no value holds (seen: 1 run in ~10 e2e runs).
 */
function isSqliteFile(item: SweepItem): boolean {
  if (typeof item.content === 'string') return false;
  const magic = item.content.length >= 4 ? item.content.readUInt32BE(0) : 0;
  return (
    item.content.subarray(0, SQLITE_HEADER.length).equals(SQLITE_HEADER) ||
    magic === 0x377f0682 ||
    magic === 0x377f0683 ||
    item.source.endsWith('-shm')
  );
}

/** Columns that hold an {@link OPAQUE_HEX_FIELDS} value bare, by the field they hold. */
const SQLITE_OPAQUE_HEX_COLUMNS: Record<string, string> = {
  sred_ksn: 'ksnHex',
  sred_ciphertext: 'ciphertextHex',
};

/**
 * Every text and blob value of every table of an SQLite database, one item per table and column
 * (`agent.db payments.reference`), read through a read-only connection (the agent may be running:
 * WAL readers do not block it). With {@link sweepForPans} this is the value-level half of the
 * database sweep; the raw bytes of the database and its WAL are still scanned for the test PANs.
 */
export function sqliteValuesToSweep(dbPath: string): SweepItem[] {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const items: SweepItem[] = [];
    const tables = db
      .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
      .pluck()
      .all() as string[];
    for (const table of tables) {
      const rows = db.prepare(`SELECT * FROM "${table}"`).all() as Record<string, unknown>[];
      const columns = new Map<string, string[]>();
      for (const row of rows) {
        for (const [column, value] of Object.entries(row)) {
          const text =
            typeof value === 'string'
              ? value
              : Buffer.isBuffer(value)
                ? value.toString('latin1')
                : null;
          if (text === null) continue;
          const list = columns.get(column) ?? [];
          list.push(text);
          columns.set(column, list);
        }
      }
      for (const [column, values] of columns) {
        // One item per value keeps two values from forming a run across their boundary.
        values.forEach((content, i) => {
          const source = `${dbPath} ${table}.${column}[${i}]`;
          // The reader's SRED KSN and ciphertext are stored as bare hex (store-forward/rows.ts).
          const field = SQLITE_OPAQUE_HEX_COLUMNS[column];
          if (field !== undefined && OPAQUE_HEX_FIELDS[field]?.test(content) === true) {
            items.push({ source: `${source} (opaque hex)`, content, luhnScan: false });
          } else {
            items.push({ source, content });
          }
        });
      }
    }
    return items;
  } finally {
    db.close();
  }
}

/**
 * Scans every item. Binary content is read as latin1 so that every ASCII digit byte stays a digit
 * character, and gets the Luhn scan of whole ASCII digit runs (binary bytes between digits would
 * otherwise bridge as separators); text content gets the normalizing scan (`common/luhn-scan.ts`).
 * UTF-16 or BCD encodings are out of scope because the agent writes neither. SQLite
 * files get the exact test-PAN search only (see {@link isSqliteFile}); their values get the Luhn
 * scan through {@link sqliteValuesToSweep}. Hex hashes and ciphertexts in known JSON fields (a
 * key id, a KSN, a PIN block, an SRED ciphertext: {@link cutOpaqueHex}) and items marked
 * `luhnScan: false` get the exact test-PAN search only.
 */
export function sweepForPans(items: SweepItem[]): Leak[] {
  const leaks: Leak[] = [];
  const mask = (pan: string): string => `${pan.slice(0, 6)}…${pan.slice(-4)}`;
  for (const item of items) {
    const text = typeof item.content === 'string' ? item.content : item.content.toString('latin1');
    for (const pan of TEST_PANS) {
      if (text.includes(pan)) leaks.push({ source: item.source, found: `test PAN ${mask(pan)}` });
    }
    if (isSqliteFile(item) || item.luhnScan === false) continue;
    const asciiRunsOnly = typeof item.content !== 'string';
    for (const part of cutOpaqueHex(item.source, item.content)) {
      if (part.luhnScan === false) continue;
      const partText =
        typeof part.content === 'string' ? part.content : part.content.toString('latin1');
      for (const run of findPanShapedRuns(partText, { asciiRunsOnly })) {
        leaks.push({
          source: item.source,
          found: `Luhn-valid run ${mask(run)} (${run.length} digits)`,
        });
      }
    }
  }
  return leaks;
}

/** A sample value or timestamp; group 1 is the integer part. */
const PROMETHEUS_NUMBER = /^[+-]?(?:([0-9]*)(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|Inf|NaN)$/;

/**
 * The text of a Prometheus exposition (`GET /metrics`) split for {@link sweepForPans}: every
 * comment line and every sample's name and labels as they are, and of each sample value only its
 * integer part (the digits before `.` or `e`).
 *
 * A sample value is a number the agent computed (Prometheus text format 0.0.4: `name{labels}
 * value [timestamp]`), and a histogram sum in seconds prints as a double with up to 17
 * significant digits, so its fraction is a run of 13–19 digits that passes Luhn about one time in
 * ten (seen in CI: `…_sum{…} 0.0003530443678222592`). A PAN put in a label or written as an
 * integer value is still found; a fraction's digits are not card data.
 */
export function metricsTextToSweep(source: string, text: string): SweepItem[] {
  const items: SweepItem[] = [];
  text.split('\n').forEach((line, i) => {
    const label = `${source} line ${i + 1}`;
    if (line.startsWith('#') || line.trim() === '') {
      items.push({ source: label, content: line });
      return;
    }
    // The value follows the last space outside the label braces (a label value may hold spaces).
    const close = line.lastIndexOf('}');
    const rest = line
      .slice(close + 1)
      .trim()
      .split(/\s+/);
    const series = close >= 0 ? line.slice(0, close + 1) : (rest.shift() ?? '');
    items.push({ source: `${label} series`, content: series });
    for (const token of rest) {
      // A token that is not a number (the format allows none) is scanned whole.
      const number = PROMETHEUS_NUMBER.exec(token);
      items.push({
        source: `${label} value`,
        content: number === null ? token : (number[1] ?? ''),
      });
    }
  });
  return items;
}

/** A secret to look for: key bytes (found raw, as base64, base64url or hex) or a text token. */
export interface SweepSecret {
  /** What it is, for the report (never the value). */
  name: string;
  value: Uint8Array | string;
}

/**
 * Scans every item for private key material (issue 5): any PEM private-key block, and each
 * secret in every encoding the agent could have written it in. Returns `source: what` lines.
 */
export function sweepForSecrets(items: SweepItem[], secrets: SweepSecret[]): string[] {
  const needles: Array<{ name: string; bytes: Buffer }> = [];
  for (const secret of secrets) {
    if (typeof secret.value === 'string') {
      needles.push({ name: secret.name, bytes: Buffer.from(secret.value, 'utf8') });
      continue;
    }
    const raw = Buffer.from(secret.value);
    needles.push({ name: `${secret.name} (raw)`, bytes: raw });
    for (const encoding of ['base64', 'base64url', 'hex'] as const) {
      needles.push({
        name: `${secret.name} (${encoding})`,
        bytes: Buffer.from(raw.toString(encoding)),
      });
    }
  }
  const leaks: string[] = [];
  for (const item of items) {
    const bytes = typeof item.content === 'string' ? Buffer.from(item.content) : item.content;
    if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(bytes.toString('latin1'))) {
      leaks.push(`${item.source}: a PEM private key`);
    }
    for (const needle of needles) {
      if (needle.bytes.length >= 16 && bytes.includes(needle.bytes))
        leaks.push(`${item.source}: ${needle.name}`);
    }
  }
  return leaks;
}
