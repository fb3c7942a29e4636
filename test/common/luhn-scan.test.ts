import { describe, expect, it } from 'vitest';
import { findPanShapedRuns, luhnValidDigits, redactPanShapedRuns } from '../../common/luhn-scan.js';

describe('luhn-scan', () => {
  it('accepts Luhn-valid numbers and refuses one changed digit', () => {
    expect(luhnValidDigits('4111111111111111')).toBe(true);
    expect(luhnValidDigits('4111111111111112')).toBe(false);
    expect(luhnValidDigits('79927398713')).toBe(true);
    expect(luhnValidDigits('')).toBe(false);
  });

  it('finds PAN-shaped runs of 13 to 19 digits only as whole runs', () => {
    const text = 'a 378282246310005 b 12345 c 41111111111111110000 d 6011111111111117';
    expect(findPanShapedRuns(text)).toEqual(['378282246310005', '6011111111111117']);
  });

  it('redacts to first 6 and last 4', () => {
    expect(redactPanShapedRuns('pan=5555555555554444;')).toBe('pan=555555******4444;');
    expect(redactPanShapedRuns('amount=1234567890123')).toBe('amount=1234567890123');
  });
});
