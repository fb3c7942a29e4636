/**
 * docs/test-cards.md says what the simulator does (issue 14): its card table is the simulator's
 * TEST_CARDS row for row, its amount table follows the cloud core's decision rules, and the card
 * decline codes are the cloud core's.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_DECISION_RULES } from '../../simulator/cloud-core.js';
import { TEST_CARDS, type TestCard } from '../../simulator/test-cards.js';

const doc = readFileSync(path.resolve(import.meta.dirname, '../../docs/test-cards.md'), 'utf8');

/** The rows of the markdown table under `## heading`, as arrays of trimmed cells. */
function tableRows(markdown: string, heading: string): string[][] {
  const section = markdown.split(/^## /m).find((s) => s.startsWith(`${heading}\n`)) ?? '';
  return section
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .slice(2) // header and separator
    .map((line) =>
      line
        .slice(1, -1)
        .split('|')
        .map((cell) => cell.trim()),
    );
}

const ENTRY: Record<string, NonNullable<TestCard['entryMode']>> = {
  chip: 'C',
  swipe: 'S',
  tap: 'T',
};

/** What the doc's row says, in the shape of a TestCard. */
function rowAsCard(row: string[]): Partial<TestCard> {
  const [name, brand, pan, presented, outcome] = row as [string, string, string, string, string];
  const [mode, ...details] = presented.split(',').map((s) => s.trim());
  const card: Partial<TestCard> = {
    name: name.replace(/`/g, ''),
    brand: brand as TestCard['brand'],
    pan,
    outcome: outcome.split(' ')[0] as TestCard['outcome'],
  };
  const code = outcome.split(' ')[1];
  if (code !== undefined) card.declineCode = code;
  if (mode !== 'chip') {
    const code = ENTRY[mode as string];
    if (code === undefined) throw new Error(`unknown entry mode "${mode}" in docs/test-cards.md`);
    card.entryMode = code;
  }
  for (const d of details) {
    const expiry = /^expiry (\d{4})$/.exec(d);
    const svc = /^service code (\d{3})$/.exec(d);
    if (expiry !== null) card.expiry = expiry[1] as string;
    else if (svc !== null) card.serviceCode = svc[1] as string;
    else throw new Error(`unknown presentation detail "${d}" in docs/test-cards.md`);
  }
  return card;
}

/** The same fields of the simulator's card. */
function cardFields(card: TestCard): Partial<TestCard> {
  const { description: _ignored, entryMode, ...rest } = card;
  return { ...rest, ...(entryMode === undefined || entryMode === 'C' ? {} : { entryMode }) };
}

describe('docs/test-cards.md', () => {
  const rows = tableRows(doc, 'Cards');

  it('reads the card table (control: a changed row would be seen)', () => {
    expect(rows.length).toBeGreaterThan(5);
    const visa = rowAsCard(rows[0] as string[]);
    expect(visa).toEqual({
      name: 'visa',
      brand: 'visa',
      pan: '4111111111111111',
      outcome: 'approve',
    });
    expect(cardFields({ ...TEST_CARDS[0]!, pan: '4012888888881881' })).not.toEqual(visa);
  });

  it('lists every test card of the simulator, row for row, in the same order', () => {
    expect(rows.map(rowAsCard)).toEqual(TEST_CARDS.map(cardFields));
  });

  it('names the decline code the cloud core uses for each declined card', () => {
    for (const card of TEST_CARDS.filter((c) => c.outcome === 'decline'))
      expect(DEFAULT_DECISION_RULES.declinedPans.get(card.pan)).toBe(card.declineCode);
    // …and the cloud declines no other test card by PAN.
    for (const card of TEST_CARDS.filter((c) => c.outcome !== 'decline'))
      expect(DEFAULT_DECISION_RULES.declinedPans.has(card.pan)).toBe(false);
  });

  it('every amount in the amount table gets the outcome it says from the decision rules', () => {
    const amountRows = tableRows(doc, 'Amounts');
    expect(amountRows.length).toBeGreaterThan(0);
    let checked = 0;
    for (const [amounts, rule, outcome] of amountRows as [string, string, string][]) {
      const expected = /declined `?(\w+)`?/.exec(outcome)?.[1];
      for (const m of amounts.matchAll(/`(\d+)`/g)) {
        const amount = Number(m[1]);
        const hit = DEFAULT_DECISION_RULES.amountRules.find((r) => r.matches(amount, 'EUR'));
        expect(hit?.declineCode, `amount ${amount}`).toBe(expected);
        if (expected !== undefined) expect(hit?.name).toBe(rule.replace(/`/g, ''));
        checked += 1;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(4);
    // Every rule of the simulator is in the table.
    for (const rule of DEFAULT_DECISION_RULES.amountRules)
      expect(doc).toContain(`\`${rule.name}\``);
  });
});
