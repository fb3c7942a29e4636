/**
 * The cashier's words (issue 13): a decline over the offline limit used to read
 * "7500 USD is over the offline limit of 5000" and an issuer decline "declined: 05"; every
 * decline now has a sentence with money as money, and its code beside it.
 */
import { describe, expect, it } from 'vitest';
import {
  cardNotReadText,
  declineText,
  outcomeText,
  reversedText,
  toPadText,
} from '../../agent/texts.js';
import type { OfflinePolicy } from '../../store-forward/offline-policy.js';

const policy: OfflinePolicy = {
  perTransactionLimitMinor: { USD: 5000, JPY: 10_000, KWD: 20_000 },
  totalLimitMinor: { USD: 20_000 },
  maxCount: 50,
  forwardingDeadlineHours: 48,
  warningBeforeDeadlineHours: 12,
};

describe('declineText', () => {
  it('words the offline limits in money of the currency, not minor units', () => {
    expect(
      declineText('offline_amount_limit', { amountMinor: 7500, currency: 'USD', policy }),
    ).toBe('Declined — USD 75.00 is over the offline limit of USD 50.00 per payment');
    expect(
      declineText('offline_amount_limit', { amountMinor: 12_000, currency: 'JPY', policy }),
    ).toBe('Declined — JPY 12000 is over the offline limit of JPY 10000 per payment');
    expect(declineText('offline_amount_limit', { amountMinor: 1, currency: 'EUR', policy })).toBe(
      'Declined — EUR payments cannot be approved offline (no offline limit is set for EUR)',
    );
    // The total falls back to the per-payment limit when none is set, as the policy does.
    expect(
      declineText('offline_total_limit', { amountMinor: 25_000, currency: 'KWD', policy }),
    ).toBe('Declined — KWD 25.000 more would pass the total offline limit of KWD 20.000');
    expect(
      declineText('offline_count_limit', { amountMinor: 100, currency: 'USD', policy }),
    ).toMatch(/^Declined — 50 payments are stored offline/);
  });

  it('names the ISO 8583 issuer codes it knows and shows any other as a code', () => {
    const ctx = { amountMinor: 100, currency: 'EUR' };
    expect(declineText('05', ctx)).toBe('Declined by the card issuer (do not honour, code 05)');
    expect(declineText('51', ctx)).toBe(
      'Declined by the card issuer (insufficient funds, code 51)',
    );
    expect(declineText('Z9', ctx)).toBe('Declined by the card issuer (code Z9)');
  });

  it('has a sentence for every local decline code the store documents', () => {
    const ctx = { amountMinor: 100, currency: 'EUR', policy };
    for (const code of [
      'offline_not_allowed',
      'online_pin_required',
      'authorization_timeout',
      'authorization_interrupted',
      'pin_timeout',
      'pin_canceled',
      'pin_bypassed',
    ]) {
      const text = declineText(code, ctx);
      expect(text, code).toMatch(/^Declined — /);
      expect(text, code).not.toContain(code);
    }
  });
});

describe('outcomeText and the rest of the table', () => {
  it('gives each state its sentence; a reversal names the late issuer code', () => {
    const base = { amountMinor: 1250, currency: 'EUR' };
    expect(outcomeText({ ...base, state: 'approved', approval: 'online' })).toBe('Approved');
    expect(outcomeText({ ...base, state: 'stored' })).toBe('Approved offline — payment stored');
    expect(outcomeText({ ...base, state: 'declined', declineCode: '05' })).toBe(
      'Declined by the card issuer (do not honour, code 05)',
    );
    expect(
      outcomeText({
        ...base,
        state: 'reversed',
        reason: 'the issuer declined the payment after it was approved offline (decline code 05)',
      }),
    ).toBe(reversedText('05'));
    expect(reversedText('05')).toContain('do not honour, code 05');
    expect(outcomeText({ ...base, state: 'failed', reason: 'card not read: chip_required' })).toBe(
      cardNotReadText('chip_required'),
    );
    expect(cardNotReadText('weird')).toContain('weird');
  });

  it('toPadText keeps the PIN pad line printable ASCII within 32 characters', () => {
    const line = toPadText('Approving online… — très long text that goes on and on');
    expect(line).toMatch(/^[\x20-\x7e]{1,32}$/);
    expect(line.startsWith('Approving online... - tr?s')).toBe(true);
  });
});
