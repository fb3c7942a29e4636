/**
 * SQLite itself refuses invalid states: every test here writes through a plain second
 * connection on the store's file, bypassing the TypeScript checks, and expects the schema to say
 * no. Each starts with a control insert that succeeds, so a test cannot pass by a typo.
 */
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CARD_BRANDS,
  ENTRY_MODES,
  EVENT_TYPES,
  OUTBOX_STATES,
  PAYMENT_STATES,
} from '../../store-forward/model.js';
import { PAYMENT_TRANSITIONS } from '../../store-forward/payment-machine.js';
import { freshStore, newPayment, rawConnection, tokenFor } from './helpers.js';

let fx: ReturnType<typeof freshStore>;
let raw: Database.Database;
beforeEach(() => {
  fx = freshStore();
  raw = rawConnection(fx.path);
});
afterEach(() => {
  raw.close();
  fx.close();
});

let idCounter = 0;
function paymentRow(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  idCounter++;
  return {
    id: `pay_01890000-0000-7000-8000-${String(idCounter).padStart(12, '0')}`,
    idempotency_key: `raw-${idCounter}`,
    amount_minor: 100,
    currency: 'EUR',
    reference: null,
    state: 'stored',
    card_token: tokenFor(idCounter),
    card_first6: '411111',
    card_brand: 'visa',
    card_last4: '1111',
    card_expiry_month: 12,
    card_expiry_year: 2030,
    card_entry_mode: 'chip',
    cardholder_name: null,
    auth_code: null,
    decline_code: null,
    reason: null,
    created_at: '2026-11-21T09:00:00.000Z',
    updated_at: '2026-11-21T09:00:00.000Z',
    forwarding_deadline_at: '2026-11-24T09:00:00.000Z',
    ...overrides,
  };
}
function insertPayment(overrides: Record<string, unknown> = {}): string {
  const row = paymentRow(overrides);
  const columns = Object.keys(row);
  raw
    .prepare(
      `INSERT INTO payments (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')})`,
    )
    .run(row);
  return row.id as string;
}
/** Appends an event with the right seq and prev_hash, so only the field under test is wrong. */
function insertEvent(paymentId: string, overrides: Record<string, unknown> = {}): void {
  const head = raw.prepare('SELECT seq, hash FROM chain_head').get() as
    { seq: number; hash: Buffer } | undefined;
  raw
    .prepare(
      'INSERT INTO events (seq, payment_id, type, at, data, prev_hash, hash) VALUES (@seq, @payment_id, @type, @at, @data, @prev_hash, @hash)',
    )
    .run({
      seq: (head?.seq ?? 0) + 1,
      payment_id: paymentId,
      type: 'requeued',
      at: '2026-11-21T09:00:00.000Z',
      data: '{}',
      prev_hash: head?.hash ?? Buffer.alloc(32),
      hash: Buffer.alloc(32, idCounter++ % 256),
      ...overrides,
    });
}
const CHECK = /CHECK constraint failed/;

describe('payments', () => {
  it('accepts a valid row (control)', () => {
    expect(() => insertPayment()).not.toThrow();
  });

  it.each([
    ['a negative amount', { amount_minor: -1 }],
    ['a zero amount', { amount_minor: 0 }],
    ['currency usd', { currency: 'usd' }],
    ['currency US', { currency: 'US' }],
    ['currency USDX', { currency: 'USDX' }],
    ['currency U1D', { currency: 'U1D' }],
    ['an unknown state', { state: 'paid' }],
    ['a 5-digit first6', { card_first6: '41111' }],
    ['a 7-digit first6', { card_first6: '4111111' }],
    ['a non-digit first6', { card_first6: '41111a' }],
    ['a 3-digit last4', { card_last4: '111' }],
    ['an unknown brand', { card_brand: 'maestro' }],
    ['an unknown entry mode', { card_entry_mode: 'fallback' }],
    ['expiry month 13', { card_expiry_month: 13 }],
    ['expiry month 0', { card_expiry_month: 0 }],
    ['a PAN as token', { card_token: '4111111111111111' }],
    ['a token with digits 0/1/8/9', { card_token: `tok_${'1'.repeat(32)}` }],
    ['a cardholder name with digits', { cardholder_name: 'J 4111111111111111' }],
    ['a card half there', { card_last4: null }],
    [
      'a stored payment without card',
      Object.fromEntries(
        Object.keys(paymentRow())
          .filter((k) => k.startsWith('card_'))
          .map((k) => [k, null]),
      ),
    ],
    ['an auth code on a stored payment', { auth_code: 'A1B2C3' }],
    ['a decline code on an approved payment', { state: 'approved', decline_code: '51' }],
    ['a stored payment without forwarding deadline', { forwarding_deadline_at: null }],
    ['a local-time timestamp', { created_at: '2026-11-21 10:00:00' }],
    ['an id that is not pay_', { id: 'x'.repeat(40) }],
    ['an idempotency key with a space', { idempotency_key: 'a b' }],
  ])('refuses %s', (_name, overrides) => {
    expect(() => insertPayment(overrides)).toThrow(CHECK);
  });

  it('refuses a floating-point amount stored as REAL in a STRICT table', () => {
    expect(() => insertPayment({ amount_minor: 10.25 })).toThrow(
      /cannot store REAL value in INTEGER column/,
    );
  });

  it('refuses a duplicate idempotency key', () => {
    insertPayment({ idempotency_key: 'dup' });
    expect(() => insertPayment({ idempotency_key: 'dup' })).toThrow(/UNIQUE constraint failed/);
  });

  it('refuses an illegal state change and a change of amount; allows a listed one', () => {
    const id = insertPayment();
    expect(() =>
      raw.prepare("UPDATE payments SET state = 'awaiting_card' WHERE id = ?").run(id),
    ).toThrow(/POS212/);
    expect(() => raw.prepare('UPDATE payments SET amount_minor = 1 WHERE id = ?').run(id)).toThrow(
      /POS212/,
    );
    expect(() =>
      raw.prepare('UPDATE payments SET card_last4 = ? WHERE id = ?').run('4242', id),
    ).toThrow(/POS212/);
    expect(() => raw.prepare('DELETE FROM payments WHERE id = ?').run(id)).toThrow(/POS212/);
    expect(() =>
      raw.prepare("UPDATE payments SET state = 'forwarded' WHERE id = ?").run(id),
    ).not.toThrow();
  });

  it('mirrors model.ts: every listed state, brand and entry mode is accepted, the lists are the CHECK', () => {
    for (const state of PAYMENT_STATES) {
      expect(() => insertPayment({ state })).not.toThrow();
    }
    for (const card_brand of CARD_BRANDS) expect(() => insertPayment({ card_brand })).not.toThrow();
    for (const card_entry_mode of ENTRY_MODES) {
      expect(() => insertPayment({ card_entry_mode })).not.toThrow();
    }
  });

  it('mirrors model.ts: payment_transitions holds exactly PAYMENT_TRANSITIONS', () => {
    const rows = raw
      .prepare('SELECT from_state, to_state FROM payment_transitions ORDER BY from_state, to_state')
      .all() as { from_state: string; to_state: string }[];
    expect(rows.map((r) => `${r.from_state}>${r.to_state}`)).toEqual(
      PAYMENT_TRANSITIONS.map(([from, to]) => `${from}>${to}`).sort(),
    );
  });
});

describe('events', () => {
  it('accepts every listed event type (control and mirror of model.ts)', () => {
    const id = insertPayment();
    for (const type of EVENT_TYPES) expect(() => insertEvent(id, { type })).not.toThrow();
  });

  it.each([
    ['an unknown event type', { type: 'refunded' }],
    ['data that is not JSON', { data: 'not json' }],
    ['data that is a JSON array', { data: '[1]' }],
    ['a 31-byte hash', { hash: Buffer.alloc(31) }],
    ['a local-time timestamp', { at: '21.11.2026 10:00' }],
  ])('refuses %s', (_name, overrides) => {
    const id = insertPayment();
    expect(() => insertEvent(id, overrides)).toThrow(CHECK);
  });

  it('refuses an event of a payment that does not exist', () => {
    expect(() => insertEvent('pay_01890000-0000-7000-8000-999999999999')).toThrow(
      /FOREIGN KEY constraint failed/,
    );
  });

  it('refuses an event that does not link to the chain head', () => {
    const id = insertPayment();
    insertEvent(id);
    expect(() => insertEvent(id, { prev_hash: Buffer.alloc(32, 7) })).toThrow(/POS220/);
    const head = raw.prepare('SELECT seq FROM chain_head').get() as { seq: number };
    expect(() => insertEvent(id, { seq: head.seq + 2 })).toThrow(/POS220/);
  });

  it('refuses UPDATE and DELETE on events (append-only)', () => {
    fx.store.createPayment(newPayment('key-1'));
    expect(() => raw.prepare("UPDATE events SET data = '{}'").run()).toThrow(/append-only/);
    expect(() => raw.prepare("UPDATE events SET at = '2020-01-01T00:00:00.000Z'").run()).toThrow(
      /append-only/,
    );
    expect(() => raw.prepare('DELETE FROM events').run()).toThrow(/append-only/);
    expect(() => raw.prepare('DELETE FROM chain_head').run()).toThrow(/POS220/);
    expect(raw.prepare('SELECT count(*) AS n FROM events').get()).toEqual({ n: 1 });
  });
});

describe('outbox and sealed_cards', () => {
  function outboxOf(key: string) {
    return raw.prepare('SELECT * FROM outbox WHERE key = ?').get(key) as Record<string, unknown>;
  }

  it('accepts every listed outbox state through legal updates (mirror of model.ts)', () => {
    for (const [i, state] of OUTBOX_STATES.entries()) {
      fx.store.createPayment(newPayment(`k${i}`));
      const extra =
        state === 'dead'
          ? ", dead_reason = 'x'"
          : state === 'acked'
            ? ", acked_at = '2026-11-21T10:00:00.000Z', ack_status = 'accepted'"
            : state === 'in_flight'
              ? ", batch_id = 'b', attempts = 1"
              : '';
      expect(() =>
        raw.prepare(`UPDATE outbox SET state = ?${extra} WHERE key = ?`).run(state, `k${i}`),
      ).not.toThrow();
    }
  });

  it.each([
    ['an unknown state', "state = 'sent'"],
    ['dead without a reason', "state = 'dead'"],
    ['a reason without dead', "dead_reason = 'x'"],
    ['in_flight without a batch', "state = 'in_flight', attempts = 1"],
    ['acked without acked_at', "state = 'acked', ack_status = 'accepted'"],
    ['negative attempts', 'attempts = -1'],
  ])('refuses %s', (_name, set) => {
    fx.store.createPayment(newPayment('key-1'));
    expect(() => raw.prepare(`UPDATE outbox SET ${set} WHERE key = 'key-1'`).run()).toThrow(CHECK);
  });

  it('keeps acked final, never deletes, and never renumbers', () => {
    fx.store.createPayment(newPayment('key-1'));
    expect(() => raw.prepare("UPDATE outbox SET seq = 9 WHERE key = 'key-1'").run()).toThrow(
      /POS215/,
    );
    expect(() => raw.prepare("DELETE FROM outbox WHERE key = 'key-1'").run()).toThrow(/POS215/);
    fx.store.applyAcks([{ key: 'key-1', status: 'accepted' }]);
    expect(() =>
      raw
        .prepare(
          "UPDATE outbox SET state = 'pending', acked_at = NULL, ack_status = NULL WHERE key = 'key-1'",
        )
        .run(),
    ).toThrow(/acked record is final/);
    expect(outboxOf('key-1').state).toBe('acked');
  });

  it('an outbox row must carry its payment key and come after the others', () => {
    const { payment } = fx.store.createPayment(newPayment('key-1'));
    const eventSeq = outboxOf('key-1').event_seq;
    const insert = raw.prepare(
      "INSERT INTO outbox (key, seq, payment_id, event_seq, type, state, attempts, created_at, updated_at) VALUES (?, ?, ?, ?, 'payment', 'pending', 0, '2026-11-21T09:00:00.000Z', '2026-11-21T09:00:00.000Z')",
    );
    expect(() => insert.run('other-key', 5, payment.id, eventSeq)).toThrow(/POS215/);
  });

  it('acking the outbox row deletes the sealed card data; sealed data cannot come back', () => {
    const { payment } = fx.store.createPayment(newPayment('key-1'));
    expect(raw.prepare('SELECT count(*) AS n FROM sealed_cards').get()).toEqual({ n: 1 });
    raw
      .prepare(
        "UPDATE outbox SET state = 'acked', acked_at = '2026-11-21T10:00:00.000Z', ack_status = 'accepted' WHERE key = 'key-1'",
      )
      .run();
    expect(raw.prepare('SELECT count(*) AS n FROM sealed_cards').get()).toEqual({ n: 0 });
    expect(() =>
      raw
        .prepare(
          "INSERT INTO sealed_cards (payment_id, sealed, created_at) VALUES (?, ?, '2026-11-21T10:00:00.000Z')",
        )
        .run(payment.id, Buffer.alloc(80).toString('base64')),
    ).toThrow(/already acknowledged/);
  });

  it.each([
    ['sealed data that is not base64', { sealed: '#'.repeat(96) }],
    ['a sealed blob too short to be a nacl.box', { sealed: 'A'.repeat(92) }],
    ['neither sealed nor SRED', { sealed: null }],
    [
      'a KSN of 18 hex digits',
      { sealed: null, sred_ksn: 'F'.repeat(18), sred_ciphertext: 'AB'.repeat(8) },
    ],
    ['a KSN without ciphertext', { sealed: null, sred_ksn: 'F'.repeat(20), sred_ciphertext: null }],
  ])('sealed_cards refuses %s', (_name, overrides: Record<string, unknown>) => {
    const id = insertPayment();
    const row: Record<string, unknown> = {
      payment_id: id,
      sealed: Buffer.alloc(80).toString('base64'),
      sred_ksn: null,
      sred_ciphertext: null,
      created_at: '2026-11-21T09:00:00.000Z',
      ...overrides,
    };
    expect(() =>
      raw
        .prepare(
          'INSERT INTO sealed_cards (payment_id, sealed, sred_ksn, sred_ciphertext, created_at) VALUES (@payment_id, @sealed, @sred_ksn, @sred_ciphertext, @created_at)',
        )
        .run(row),
    ).toThrow(CHECK);
  });
});
