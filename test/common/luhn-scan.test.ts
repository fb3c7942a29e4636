import { describe, expect, it } from 'vitest';
import {
  findPanShapedRuns,
  luhnValidDigits,
  redactPanShapedRuns,
  redactPanShapedRunsInJson,
} from '../../common/luhn-scan.js';

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

describe('redactPanShapedRunsInJson (the log guard)', () => {
  it('keeps a log line valid JSON when a bare number is PAN-shaped', () => {
    // Before: `"ms":0.000353*********2592`, a line no log reader could parse.
    const line =
      '{"ms":0.0003530443678222592,"n":4111111111111111,"neg":-5555555555554444,"ok":12.5,' +
      '"msg":"card 4111 1111 1111 1111 read, \\"quoted\\" 6011000990139424"}';
    const out = redactPanShapedRunsInJson(line);
    expect(JSON.parse(out)).toEqual({
      ms: '0.000353*********2592',
      n: '411111******1111',
      neg: '-555555******4444',
      ok: 12.5,
      msg: 'card 411111******1111 read, "quoted" 601100******9424',
    });
    expect(findPanShapedRuns(out)).toEqual([]);
  });

  it('leaves a line without PAN-shaped runs as it is, and still redacts text that is not JSON', () => {
    const clean = '{"level":30,"time":"2026-12-04T15:05:13.833Z","amount":1234567890123}';
    expect(redactPanShapedRunsInJson(clean)).toBe(clean);
    expect(findPanShapedRuns(redactPanShapedRunsInJson('plain 4111111111111111 text'))).toEqual([]);
  });
});
