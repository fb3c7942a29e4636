/**
 * The example scenarios of simulator/scenarios/ pass against a real agent on the simulator
 * (issue 14: "the example scenarios pass in npm test"), a wrong expectation fails its scenario,
 * and a malformed file is refused with every problem named by step and field.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runScenario } from '../../agent/commands/sim-scenario.js';
import { parseScenario, ScenarioError } from '../../simulator/scenario.js';

const DIR = path.resolve(import.meta.dirname, '../../simulator/scenarios');
const files = readdirSync(DIR).filter((f) => /\.(ya?ml|json)$/.test(f));

describe('example scenarios', () => {
  it('the folder has the scenarios the issue names', () => {
    expect(files.sort()).toEqual(
      [
        'cancel-at-pad.yaml',
        'deadline-warning.yaml',
        'issuer-decline.yaml',
        'offline-caps.yaml',
        'online-approve.yaml',
        'outage-recovery.yaml',
        'pin-timeout.json',
        'reader-swipe.yaml',
      ].sort(),
    );
  });

  // Seconds each; more on a loaded machine.
  it.each(files)('%s passes', { timeout: 90_000 }, async (file) => {
    const scenario = parseScenario(readFileSync(path.join(DIR, file), 'utf8'), file);
    const result = await runScenario(scenario);
    const report = result.steps
      .map(
        (s) =>
          `${s.ok ? 'ok' : 'FAIL'} ${s.step}. ${s.what}${s.problems.map((p) => `\n   ${p}`).join('')}`,
      )
      .join('\n');
    expect(result.passed, report).toBe(true);
    expect(result.steps).toHaveLength(scenario.steps.length);
  });
});

describe('the scenario runner', () => {
  it('fails a scenario whose expectation does not hold, and stops there', async () => {
    const scenario = parseScenario(
      [
        'name: wrong on purpose',
        'steps:',
        '  - pay: { amount: 1051, card: visa }',
        '    expect: { state: approved }',
        '  - pay: { amount: 1250, card: visa }',
      ].join('\n'),
      'wrong.yaml',
    );
    const result = await runScenario(scenario);
    expect(result.passed).toBe(false);
    expect(result.steps).toHaveLength(1);
    expect(result.steps[0]).toMatchObject({
      ok: false,
      problems: ['state: expected "approved", got "declined"'],
    });
  });

  it('refuses a malformed file with each problem by step and field', () => {
    const text = [
      'name: broken',
      'steps:',
      '  - pay: { amount: 12.5, card: vsa }',
      '  - pad: { do: fault }',
      '  - broker: pause',
      '  - frobnicate: 1',
    ].join('\n');
    let message = '';
    try {
      parseScenario(text, 'broken.yaml');
    } catch (error) {
      expect(error).toBeInstanceOf(ScenarioError);
      message = (error as Error).message;
    }
    expect(message).toContain('broken.yaml does not fit the scenario schema');
    expect(message).toMatch(/step 1 \(pay\.amount\): .*integer/i);
    expect(message).toMatch(/step 1 \(pay\.card\): unknown test card; one of: visa,/);
    expect(message).toMatch(/step 2 \(pad\.fault\): /);
    expect(message).toMatch(/step 3 \(broker\): .*"stop"\|"start"/);
    expect(message).toContain('step 4: a step is one of pay (with expect), pad, cloud');
  });

  it('refuses text that is not YAML or JSON, naming the file', () => {
    expect(() => parseScenario('name: [x\n', 'a.yaml')).toThrow(/^a\.yaml: not valid YAML: /);
    expect(() => parseScenario('{"name":', 'a.json')).toThrow(/^a\.json: not valid JSON: /);
  });
});
