/**
 * Every design reference in the code points into the repository (issue 14): each `§N` or `§N.M`
 * that a `.ts` file attributes to the design (`architecture.md §…`, `architecture.md §…`, `architecture.md §…`,
 * also lists such as `architecture.md §1, §7` or `architecture.md §3.1/§3.2`) must be a heading of
 * docs/architecture.md. References to other documents (`MQTT 3.1.1 §4.6`, `ISO/IEC 7813 §10`)
 * are not the design's and are left alone.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SKIP = new Set(['node_modules', 'dist', '.git']);

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...tsFiles(full));
    else if (entry.name.endsWith('.ts')) out.push(full);
  }
  return out;
}

/** Section numbers of the `## N.` and `### N.M` headings of a markdown text. */
function headingSections(markdown: string): Set<string> {
  const sections = new Set<string>();
  for (const m of markdown.matchAll(/^#{2,4} (\d+(?:\.\d+)*)[.\s]/gm)) sections.add(m[1] as string);
  return sections;
}

/** The design sections a source text cites, with their line numbers. */
function designReferences(source: string): Array<{ section: string; line: number }> {
  const refs: Array<{ section: string; line: number }> = [];
  // A design name, then one or more §N(.M) joined by `,`, `/`, `and`, `&` or spaces.
  const pattern =
    /(?:DESIGN(?:\.md)?|architecture\.md)\s*(§\s?\d+(?:\.\d+)*(?:\s*(?:,|\/|and|&)?\s*§\s?\d+(?:\.\d+)*)*)/g;
  for (const m of source.matchAll(pattern)) {
    const line = source.slice(0, m.index).split('\n').length;
    for (const s of (m[1] as string).matchAll(/§\s?(\d+(?:\.\d+)*)/g))
      refs.push({ section: s[1] as string, line });
  }
  return refs;
}

const architecture = readFileSync(path.join(ROOT, 'docs/architecture.md'), 'utf8');
const sections = headingSections(architecture);

describe('docs/architecture.md sections cited by the code', () => {
  it('finds references of every form it claims to understand (control)', () => {
    const sample = [
      'see architecture.md §7 and (architecture.md §3.1)',
      'layers (architecture.md §1, §7); the link (architecture.md §3.1/§3.2)',
      'docs/architecture.md §4 — not MQTT 3.1.1 §4.6 nor ISO/IEC 7813 §10.3.9',
    ].join('\n');
    expect(designReferences(sample).map((r) => r.section)).toEqual([
      '7',
      '3.1',
      '1',
      '7',
      '3.1',
      '3.2',
      '4',
    ]);
    expect(headingSections('## 3. Devices\n### 3.1 Link\n#### 3.1.2 x\n# 9 title\n')).toEqual(
      new Set(['3', '3.1', '3.1.2']),
    );
  });

  it('has the sections 1–9 of the design, with 3.1–3.3', () => {
    for (const s of ['1', '2', '3', '3.1', '3.2', '3.3', '4', '5', '6', '7', '8', '9'])
      expect(sections, `docs/architecture.md lacks a heading for §${s}`).toContain(s);
  });

  it('every §-reference to the design in a .ts file is a heading of docs/architecture.md', () => {
    const files = tsFiles(ROOT);
    const missing: string[] = [];
    let count = 0;
    for (const file of files) {
      for (const ref of designReferences(readFileSync(file, 'utf8'))) {
        count += 1;
        if (!sections.has(ref.section))
          missing.push(`${path.relative(ROOT, file)}:${ref.line} cites §${ref.section}`);
      }
    }
    // The code cites the design hundreds of times; finding none would mean the scan is broken.
    expect(count).toBeGreaterThan(100);
    expect(missing, `sections missing from docs/architecture.md:\n${missing.join('\n')}`).toEqual(
      [],
    );
  });
});
