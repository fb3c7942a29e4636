/**
 * The short version of `npm run chaos` (issue 10) in `npm test`: real processes (the agent, the
 * PIN pad and cloud core simulators, Mosquitto when installed, otherwise the aedes broker as a
 * child process), a client posting without pause, two cycles — kill -9 of the agent during
 * start-up, and a silent partition — then the damage cases. Nothing lost, nothing charged twice,
 * no unplanned exit, and every damage case refused with the files kept.
 */
import { describe, expect, it } from 'vitest';
import { formatReport, runChaos } from './harness.js';

describe('chaos (short)', () => {
  it('two fault cycles and the damage cases: 0 lost, 0 charged twice, no unplanned exit', async () => {
    const lines: string[] = [];
    const report = await runChaos({
      durationMs: 120_000,
      maxCycles: 2,
      faults: ['kill-agent-startup', 'partition'],
      keepaliveSeconds: 1,
      out: (line) => lines.push(line),
    });
    const text = `${formatReport(report)}\n${lines.join('\n')}`;
    console.log(text);
    expect(report.cycles, text).toBe(2);
    expect(report.agentKills, text).toBe(2);
    expect(report.acknowledged, text).toBeGreaterThan(0);
    expect(report.lost, text).toEqual([]);
    expect(report.chargedTwice, text).toEqual([]);
    expect(report.unplannedExits, text).toEqual([]);
    expect(report.noticeMs, text).toHaveLength(1);
    expect(report.verifyOk, text).toBe(true);
    expect(report.damage.map((d) => d.case)).toEqual(['wal', 'page', 'event']);
    for (const d of report.damage) {
      expect(d.filesKept, text).toBe(true);
      if (d.case !== 'page') expect(d.refused, text).toBe(true);
      else expect(d.outcome, text).toContain('doctor reports the damage');
    }
  }, 120_000);
});
