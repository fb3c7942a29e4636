import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  findPanShapedRuns,
  findPanShapedSpans,
  luhnValidDigits,
  redactPanShapedRuns,
} from '../../common/luhn-scan.js';
import { refusePanShaped } from '../../store-forward/validate.js';

/** Digits 0–9 in several scripts: ASCII, full-width, Arabic-Indic, Devanagari, math bold. */
const DIGIT_SCRIPTS = [0x30, 0xff10, 0x0660, 0x0966, 0x1d7ce];
const spell = (d: number, script: number): string => String.fromCodePoint(script + d);
/** Separators a person or a copy-paste puts between digit groups. */
const SEPARATORS = [
  ' ',
  '-',
  '.',
  '_',
  '\u00a0',
  '\u2013',
  '\u2014',
  '\u3000',
  '\uff0d',
  '\uff0e',
  '\u200b',
  '\u00ad',
  '\t',
];

function withCheckDigit(body: string): string {
  for (let d = 0; d <= 9; d++) if (luhnValidDigits(body + String(d))) return body + String(d);
  throw new Error('unreachable');
}

const panArb = fc
  .tuple(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 13, max: 19 }), fc.integer())
  .chain(([first, length]) =>
    fc
      .array(fc.integer({ min: 0, max: 9 }), { minLength: length - 2, maxLength: length - 2 })
      .map((rest) => withCheckDigit(String(first) + rest.join(''))),
  );

/** A PAN spelled with groups, separators (runs of 1–3) and digits of mixed scripts. */
const spelledPanArb = panArb.chain((pan) =>
  fc
    .record({
      cuts: fc.uniqueArray(fc.integer({ min: 1, max: pan.length - 1 }), { maxLength: 6 }),
      seps: fc.array(fc.array(fc.constantFrom(...SEPARATORS), { minLength: 1, maxLength: 3 }), {
        minLength: 6,
        maxLength: 6,
      }),
      scripts: fc.array(fc.constantFrom(...DIGIT_SCRIPTS), {
        minLength: pan.length,
        maxLength: pan.length,
      }),
      prefix: fc.constantFrom('', 'ref ', 'card:', 'Order A/', 'x,'),
      suffix: fc.constantFrom('', ' thanks', ';', ' x'),
    })
    .map(({ cuts, seps, scripts, prefix, suffix }) => {
      const sorted = [...cuts].sort((a, b) => a - b);
      let text = '';
      let cut = 0;
      for (let i = 0; i < pan.length; i++) {
        if (sorted[cut] === i) text += (seps[cut++] ?? [' ']).join('');
        text += spell(Number(pan[i]), scripts[i] ?? 0x30);
      }
      return { pan, text: prefix + text + suffix };
    }),
);

describe('PAN detection normalizes before it checks', () => {
  it('finds a PAN written in any mix of groups, separators and digit scripts', () => {
    fc.assert(
      fc.property(spelledPanArb, ({ pan, text }) => {
        expect(findPanShapedRuns(text)).toContain(pan);
        const redacted = redactPanShapedRuns(text);
        expect(findPanShapedRuns(redacted)).toEqual([]);
        expect(redacted).toContain(
          `${pan.slice(0, 6)}${'*'.repeat(pan.length - 10)}${pan.slice(-4)}`,
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('finds nothing in text with fewer than 13 digits, however it is spelled', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.constantFrom(...SEPARATORS, 'a', 'Z', ':', '#'),
            fc
              .tuple(fc.integer({ min: 0, max: 9 }), fc.constantFrom(...DIGIT_SCRIPTS))
              .map(([d, s]) => spell(d, s)),
          ),
          { maxLength: 60 },
        ),
        (chars) => {
          const text = chars.join('');
          fc.pre(findDigitCount(text) < 13);
          expect(findPanShapedRuns(text)).toEqual([]);
        },
      ),
      { numRuns: 2000 },
    );
  });

  // Regression: issue 11 — these spellings were accepted, stored and published as a reference.
  it.each([
    ['hyphens', '4111-1111-1111-1111'],
    ['spaces', '4111 1111 1111 1111'],
    ['dots', '4111.1111.1111.1111'],
    ['full-width digits', '４１１１１１１１１１１１１１１１'],
    ['full-width digits and hyphens', '４１１１－１１１１－１１１１－１１１１'],
    ['Amex 4-6-5 with " - "', '3782 - 822463 - 10005'],
    ['a zero-width space', '4111\u200b1111\u200b1111\u200b1111'],
    ['Arabic-Indic digits', '٤١١١١١١١١١١١١١١١'],
    ['a date in front', 'order 2024-05-17 4111 1111 1111 1111'],
  ])('finds 4111… / 3782… written with %s', (_name, text) => {
    const runs = findPanShapedRuns(text);
    expect(runs.length).toBe(1);
    expect(['4111111111111111', '378282246310005']).toContain(runs[0]);
    expect(() => refusePanShaped('reference', text)).toThrow(/POS214/);
  });

  it('keeps judging an unseparated run whole and letters as a break', () => {
    expect(findPanShapedRuns('41111111111111110000')).toEqual([]);
    expect(findPanShapedRuns('4111x1111x1111x1111')).toEqual([]);
    expect(findPanShapedRuns('INV-2024-000123')).toEqual([]);
    // "," and "/" join numbers in JSON arrays and paths, not the groups of a card number.
    expect(findPanShapedRuns('[4111,1111,1111,1111]')).toEqual([]);
    expect(findPanShapedRuns('4111/1111/1111/1111')).toEqual([]);
    // A separator run longer than MAX_SEPARATOR_RUN ends the chain.
    expect(findPanShapedRuns('4111    1111    1111    1111')).toEqual([]);
  });

  it('reports spans on the original text so the redaction keeps the rest', () => {
    const text = 'pay ４１１１-1111-1111-1111 now';
    const [span] = findPanShapedSpans(text);
    expect(span).toBeDefined();
    expect(text.slice(span?.start, span?.end)).toBe('４１１１-1111-1111-1111');
    expect(redactPanShapedRuns(text)).toBe('pay 411111******1111 now');
  });
});

function findDigitCount(text: string): number {
  return [...text].filter((c) => /\p{Nd}/u.test(c)).length;
}

describe('PAN detection and UUIDs', () => {
  // Regression: with separators bridged, 1.5 % of the agent's own UUIDv7 idempotency keys
  // (timestamp groups are mostly digits) were refused as PAN-shaped (POS214).
  it('reads no UUID as digit groups, but still finds a PAN written next to one', () => {
    fc.assert(
      fc.property(fc.uuid({ version: [4, 7] }), (uuid) => {
        expect(findPanShapedRuns(uuid)).toEqual([]);
        expect(findPanShapedRuns(`${uuid} 4111 1111 1111 1111`)).toEqual(['4111111111111111']);
      }),
      { numRuns: 3000 },
    );
    expect(findPanShapedRuns('018f3a2c-0000-7000-8000-000000000012')).toEqual([]);
  });
});
