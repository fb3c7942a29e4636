/**
 * Regression: formatAmount used two decimals for every currency but a short zero-decimal list,
 * so KWD 1.250 (1250 fils) was shown as "KWD 12.50" on the PIN pad. The exponent now comes
 * from ISO 4217 (through the runtime's ICU data), with integer arithmetic only.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatAmount } from '../../agent/payment-service.js';

describe('formatAmount', () => {
  it('uses two decimals for EUR', () => {
    expect(formatAmount(1250, 'EUR')).toBe('EUR 12.50');
    expect(formatAmount(5, 'EUR')).toBe('EUR 0.05');
    expect(formatAmount(100, 'EUR')).toBe('EUR 1.00');
  });

  it('uses no decimals for JPY', () => {
    expect(formatAmount(1250, 'JPY')).toBe('JPY 1250');
    expect(formatAmount(0, 'JPY')).toBe('JPY 0');
  });

  it('uses three decimals for KWD, BHD, JOD, OMR and TND', () => {
    expect(formatAmount(1250, 'KWD')).toBe('KWD 1.250');
    expect(formatAmount(7, 'KWD')).toBe('KWD 0.007');
    for (const currency of ['BHD', 'JOD', 'OMR', 'TND']) {
      expect(formatAmount(123_456, currency)).toBe(`${currency} 123.456`);
    }
  });

  it('falls back to two decimals for a code the runtime refuses', () => {
    expect(formatAmount(1250, 'E1R')).toBe('E1R 12.50');
  });

  it('is exact for every amount the API accepts (no float rounding)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 99_999_999_999 }), (amount) => {
        const text = formatAmount(amount, 'KWD').slice(4);
        expect(text.replace('.', '').replace(/^0+(?=\d)/, '')).toBe(String(amount));
        expect(text).toMatch(/^\d+\.\d{3}$/);
      }),
    );
  });
});
