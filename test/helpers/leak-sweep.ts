/**
 * The leak sweep of DESIGN §2: scans what left the card boundary (database and WAL files, logs,
 * MQTT payloads, API responses) for the test PANs and for any Luhn-valid run of 13–19 digits.
 */
import { existsSync, readFileSync } from 'node:fs';
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
}

/** Reads the files that exist among `paths` (a database's `-wal` may be gone after a checkpoint). */
export function filesToSweep(paths: string[]): SweepItem[] {
  return paths.filter((p) => existsSync(p)).map((p) => ({ source: p, content: readFileSync(p) }));
}

/**
 * Scans every item. Binary content is read as latin1 so that every ASCII digit byte stays a digit
 * character; UTF-16 or BCD encodings are out of scope because the agent writes neither.
 */
export function sweepForPans(items: SweepItem[]): Leak[] {
  const leaks: Leak[] = [];
  const mask = (pan: string): string => `${pan.slice(0, 6)}…${pan.slice(-4)}`;
  for (const item of items) {
    const text = typeof item.content === 'string' ? item.content : item.content.toString('latin1');
    for (const pan of TEST_PANS) {
      if (text.includes(pan)) leaks.push({ source: item.source, found: `test PAN ${mask(pan)}` });
    }
    for (const run of findPanShapedRuns(text)) {
      leaks.push({
        source: item.source,
        found: `Luhn-valid run ${mask(run)} (${run.length} digits)`,
      });
    }
  }
  return leaks;
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
