/**
 * `npm run chaos`: the fault-injection suite of issue 10 (test/chaos/harness.ts) from the command
 * line. Bounded: 3 minutes of faults by default; `--long` runs 20 minutes (enough for 100+ agent
 * kills and 20+ partitions), `--seconds N` any other length. Exits 1 when a payment was lost or
 * charged twice, a process exited unplanned, verify failed, a damage case lost its files, or the
 * WAL or edited-event case was not refused (page damage is reported: start-up verifies from a
 * checkpoint and does not read every page; `pos-agent doctor` does).
 */
import { tmpdir } from 'node:os';
import { formatReport, runChaos } from './harness.js';

const args = process.argv.slice(2);
const secondsArg = args.indexOf('--seconds');
const seconds =
  secondsArg >= 0 ? Number(args[secondsArg + 1]) : args.includes('--long') ? 1200 : 180;
if (!Number.isFinite(seconds) || seconds <= 0) {
  process.stderr.write('usage: npm run chaos [-- --long | --seconds N]\n');
  process.exit(2);
}
const report = await runChaos({
  durationMs: seconds * 1000,
  out: (line) => process.stdout.write(`${line}\n`),
});
process.stdout.write(`${formatReport(report)}\n(logs of the run: ${tmpdir()}/pos-chaos-last/)\n`);
const failed =
  report.lost.length > 0 ||
  report.chargedTwice.length > 0 ||
  report.unplannedExits.length > 0 ||
  report.verifyOk === false ||
  report.damage.some((d) => !d.filesKept || (d.case !== 'page' && !d.refused));
process.exit(failed ? 1 : 0);
