/**
 * The virtual serial reader's `garbage` fault is garbage every time (regression: its random bytes
 * sometimes held a `%` or `;`, which the reader took for the start of a track, so the card reader
 * test's expected `no_start_sentinel` failed now and then).
 */
import { describe, expect, it } from 'vitest';
import { VirtualSerialReader } from '../../simulator/virtual-serial-reader.js';

describe('VirtualSerialReader garbage fault', () => {
  it('never contains a sentinel or a line end before the final CR LF', () => {
    const reader = new VirtualSerialReader();
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const line = reader.lineFor('visa', { fault: 'garbage' });
      expect([...line.subarray(-2)]).toEqual([0x0d, 0x0a]);
      for (const b of line.subarray(0, -2)) seen.add(b);
    }
    for (const excluded of [0x0a, 0x0d, 0x25, 0x3b, 0x3f]) expect(seen.has(excluded)).toBe(false);
    // Still random bytes (control: 2000 lines of 24 bytes cover far more than a few values).
    expect(seen.size).toBeGreaterThan(200);
  });
});
