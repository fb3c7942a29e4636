import { describe, expect, it } from 'vitest';
import { sweepForPans } from '../helpers/leak-sweep.js';

describe('leak sweep', () => {
  it('finds a test PAN in binary content and a Luhn-valid run in text', () => {
    const db = Buffer.concat([
      Buffer.from([0, 1, 2]),
      Buffer.from('x5555555555554444y'),
      Buffer.from([255]),
    ]);
    const leaks = sweepForPans([
      { source: 'db', content: db },
      { source: 'log', content: '{"msg":"pan 6011000990139424"}' },
      {
        source: 'clean',
        content: '{"last4":"4444","first6":"555555","uuid":"0190f0a2-1234-7abc-8def-123456789012"}',
      },
    ]);
    expect(leaks.map((l) => l.source)).toEqual(['db', 'db', 'log']);
    expect(leaks.every((l) => !/\d{13}/.test(l.found))).toBe(true);
  });
});
