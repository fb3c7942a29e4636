/**
 * `pos-agent batch show|close|exceptions|resolve` (issue 17, docs/reconciliation.md): terminal
 * batches and reconciliation for a field tech. Works beside a running agent (WAL): `close` and
 * `resolve` write to the database, and the agent sends the records they queue (its sync worker
 * polls the outbox) and matches the cloud's answers.
 *
 * | command | what |
 * |---------|------|
 * | `batch show [ID] [--all] [--json]` | the open batch (or batch ID) with its totals and exceptions; `--all` the last 20 batches |
 * | `batch close [--force] [--json]` | close the open batch; refused (POS601) while payments are unforwarded unless `--force`, which lists them |
 * | `batch exceptions [--all] [--json]` | the open exceptions (`--all`: resolved ones too) with the resolutions each allows |
 * | `batch resolve ID --requeue\|--void\|--accept [--note TEXT] [--json]` | resolve one exception; each is an event |
 *
 * `--json` prints one object, version 1 of a stable shape ({@link BatchShowReport} for `show`;
 * `{ version: 1, batch, next, unforwarded, record }` for `close`; `{ version: 1, exceptions }`;
 * `{ version: 1, exception, records }` for `resolve`). Exit code 0, or 1 when the command was
 * refused (the `error POSxxx` line says why) — and `show` exits 1 while the batch has open
 * exceptions, so a script can alert on it.
 *
 * The database is opened read-only for `show` and `exceptions` (never created; POS201 on a
 * terminal without one).
 */
import type { Command } from 'commander';
import type { Batch, BatchException, Resolution } from '../../store-forward/batch-types.js';

/** What `pos-agent batch show --json` prints (version 1; fields are only ever added). */
export interface BatchShowReport {
  version: 1;
  /** The config file used. */
  config: string;
  batch: Batch;
  /** The batch's exceptions, open and resolved. */
  exceptions: BatchException[];
}

type Out = NodeJS.WritableStream;

/** How cli.ts hands over the config file and the error printer. */
export interface BatchCliContext {
  /** `--config` help text. */
  configHelp: string;
  /** The config file for a `--config` flag (said on stderr when not given). */
  configOf(flag: string | undefined): { file: string };
  /** Prints an error and returns the exit code. */
  reportError(error: unknown): number;
}

/** Registers `pos-agent batch …` on the program; the store is loaded when a command runs. */
export function registerBatchCommands(program: Command, ctx: BatchCliContext): void {
  const batch = program
    .command('batch')
    .description(
      'terminal batches: totals, close, reconciliation with the cloud and its exceptions (docs/reconciliation.md)',
    );
  const run = async (fn: () => Promise<number> | number): Promise<void> => {
    try {
      process.exitCode = await fn();
    } catch (error) {
      process.exitCode = ctx.reportError(error);
    }
  };
  batch
    .command('show')
    .description('the open batch (or batch ID): totals, chain position, reconciliation, exceptions')
    .argument('[id]', 'a batch id (bat_…); default the open batch')
    .option('--all', 'list the last 20 batches instead')
    .option('--config <file>', ctx.configHelp)
    .option('--json', 'print JSON (a stable shape, see docs/reconciliation.md)')
    .action((id: string | undefined, o: { all?: boolean; config?: string; json?: boolean }) =>
      run(() =>
        runBatchShow({ config: ctx.configOf(o.config).file, id, ...flags(o) }, process.stdout),
      ),
    );
  batch
    .command('close')
    .description('close the open batch; refused while payments are unforwarded unless --force')
    .option('--force', 'close although payments are not yet forwarded (they are listed)')
    .option('--config <file>', ctx.configHelp)
    .option('--json', 'print JSON')
    .action((o: { force?: boolean; config?: string; json?: boolean }) =>
      run(() =>
        runBatchClose(
          { config: ctx.configOf(o.config).file, force: o.force === true, ...flags(o) },
          process.stdout,
        ),
      ),
    );
  batch
    .command('exceptions')
    .description('reconciliation exceptions waiting for a tech, with the resolutions each allows')
    .option('--all', 'resolved ones too')
    .option('--config <file>', ctx.configHelp)
    .option('--json', 'print JSON')
    .action((o: { all?: boolean; config?: string; json?: boolean }) =>
      run(() =>
        runBatchExceptions({ config: ctx.configOf(o.config).file, ...flags(o) }, process.stdout),
      ),
    );
  batch
    .command('resolve')
    .description(
      'resolve one exception: --requeue, --void or --accept (with --note); an event each',
    )
    .argument('<id>', 'the exception id (pos-agent batch exceptions)')
    .option('--requeue', 'send the payment record again (missing at the cloud) and match again')
    .option('--void', 'undo the charge (here, or the one the cloud made) and match again')
    .option('--accept', 'accept the difference; --note says why')
    .option('--note <text>', 'why (required with --accept; 1–500 characters)')
    .option('--config <file>', ctx.configHelp)
    .option('--json', 'print JSON')
    .action(
      (
        id: string,
        o: {
          requeue?: boolean;
          void?: boolean;
          accept?: boolean;
          note?: string;
          config?: string;
          json?: boolean;
        },
      ) =>
        run(() => {
          const chosen = (['requeue', 'void', 'accept'] as const).filter((r) => o[r] === true);
          if (chosen.length !== 1 || !/^[1-9][0-9]{0,15}$/.test(id)) {
            process.stderr.write(
              'error POS501: give one exception id and exactly one of --requeue, --void, --accept (POS501)\n',
            );
            return 2;
          }
          return runBatchResolve(
            {
              config: ctx.configOf(o.config).file,
              id: Number(id),
              resolution: chosen[0] as Resolution,
              note: o.note,
              json: o.json === true,
            },
            process.stdout,
          );
        }),
    );
}

function flags(o: { all?: boolean; json?: boolean }): { all: boolean; json: boolean } {
  return { all: o.all === true, json: o.json === true };
}

async function openStore(config: string, readonly: boolean) {
  const path = await import('node:path');
  const { loadConfig } = await import('../config.js');
  const { PaymentStore } = await import('../../store-forward/payment-store.js');
  const c = loadConfig(config);
  return PaymentStore.open({ path: path.join(c.dataDir, 'agent.db'), readonly });
}

function money(amounts: Record<string, { count: number; amountMinor: number }>): string {
  const parts = Object.entries(amounts).map(
    ([currency, a]) => `${currency} ${(a.amountMinor / 100).toFixed(2)} (${a.count})`,
  );
  return parts.length === 0 ? 'nothing' : parts.join(', ');
}

function line(out: Out, text: string): void {
  out.write(`${text}\n`);
}

function printBatch(out: Out, b: Batch): void {
  line(out, `batch ${b.id} (${b.state}${b.forced ? ', forced' : ''}) terminal ${b.terminal}`);
  line(out, `  opened ${b.openedAt}${b.closedAt === null ? '' : `, closed ${b.closedAt}`}`);
  line(out, `  payments: ${b.totals.count}; charged: ${money(b.totals.byCurrency)}`);
  line(out, '  by state:');
  for (const [state, amounts] of Object.entries(b.totals.byState)) {
    line(out, `    ${state.replace(/_/g, ' ')}: ${money(amounts)}`);
  }
  line(out, '  charged by brand:');
  for (const [brand, amounts] of Object.entries(b.totals.byBrand)) {
    line(out, `    ${brand}: ${money(amounts)}`);
  }
  if (b.state === 'closed') {
    line(
      out,
      `  events ${b.firstEventSeq ?? '–'}…${b.lastEventSeq ?? '–'}, chain head ${b.chainHead}`,
    );
    line(
      out,
      `  reconciliation: ${b.reconciliation.replace('_', ' ')}${b.reconciledAt === null ? '' : ` at ${b.reconciledAt}`}`,
    );
  }
  if (b.openExceptions > 0)
    line(out, `  OPEN EXCEPTIONS: ${b.openExceptions} (pos-agent batch exceptions)`);
}

function printException(out: Out, e: BatchException): void {
  const who = e.idempotencyKey === null ? '' : ` key ${e.idempotencyKey}`;
  line(
    out,
    `#${e.id} ${e.kind.replace(/_/g, ' ')}${who} (batch ${e.batchId}, found by ${e.foundBy} at ${e.raisedAt})`,
  );
  for (const side of ['here', 'cloud'] as const) {
    const v = e.detail[side] as
      { amountMinor?: number; currency?: string; state?: string } | undefined;
    if (v?.amountMinor !== undefined) {
      line(out, `    ${side}: ${v.currency} ${(v.amountMinor / 100).toFixed(2)} ${v.state ?? ''}`);
    }
  }
  line(
    out,
    e.state === 'open'
      ? `    resolve with: ${e.allowed.map((r) => `pos-agent batch resolve ${e.id} --${r}`).join(' | ')}`
      : `    resolved: ${e.resolution}${e.note === null ? '' : ` (${e.note})`} at ${e.resolvedAt}`,
  );
}

/** `batch show`. @returns the exit code (1 while the batch has open exceptions). */
export async function runBatchShow(
  o: { config: string; id?: string | undefined; all: boolean; json: boolean },
  out: Out,
): Promise<number> {
  const store = await openStore(o.config, true);
  try {
    if (o.all) {
      const list = store.batches.list(20);
      if (o.json)
        line(out, JSON.stringify({ version: 1, config: o.config, batches: list }, null, 2));
      else for (const b of list) printBatch(out, b);
      return 0;
    }
    const b = store.batches.get(o.id);
    const exceptions = store.batches.exceptions({ batchId: b.id });
    if (o.json) {
      const report: BatchShowReport = { version: 1, config: o.config, batch: b, exceptions };
      line(out, JSON.stringify(report, null, 2));
    } else {
      printBatch(out, b);
      for (const e of exceptions) printException(out, e);
    }
    return b.openExceptions > 0 ? 1 : 0;
  } finally {
    store.close();
  }
}

/** `batch close`. @throws AgentError POS601 / POS602 (printed by the CLI). */
export async function runBatchClose(
  o: { config: string; force: boolean; json: boolean },
  out: Out,
): Promise<number> {
  const store = await openStore(o.config, false);
  try {
    const { loadConfig } = await import('../config.js');
    const result = store.batches.close({ force: o.force, terminal: loadConfig(o.config).deviceId });
    if (o.json) {
      line(
        out,
        JSON.stringify(
          {
            version: 1,
            batch: result.batch,
            next: result.next,
            unforwarded: result.unforwarded,
            record: result.recordKey,
          },
          null,
          2,
        ),
      );
      return 0;
    }
    printBatch(out, result.batch);
    if (result.unforwarded.length > 0) {
      line(out, `  closed with ${result.unforwarded.length} unforwarded record(s):`);
      for (const u of result.unforwarded) line(out, `    ${u.key} (${u.record})`);
    }
    line(out, `report ${result.recordKey} queued for the cloud; next batch ${result.next.id}`);
    line(out, 'the running agent sends it; `pos-agent batch show ID` shows the match');
    return 0;
  } finally {
    store.close();
  }
}

/** `batch exceptions`. */
export async function runBatchExceptions(
  o: { config: string; all: boolean; json: boolean },
  out: Out,
): Promise<number> {
  const store = await openStore(o.config, true);
  try {
    const list = store.batches.exceptions({ all: o.all });
    if (o.json) {
      line(out, JSON.stringify({ version: 1, exceptions: list }, null, 2));
      return 0;
    }
    if (list.length === 0) line(out, o.all ? 'no exceptions' : 'no open exceptions');
    for (const e of list) printException(out, e);
    return 0;
  } finally {
    store.close();
  }
}

/** `batch resolve`. @throws AgentError POS604 / POS605 / POS606 (printed by the CLI). */
export async function runBatchResolve(
  o: {
    config: string;
    id: number;
    resolution: Resolution;
    note?: string | undefined;
    json: boolean;
  },
  out: Out,
): Promise<number> {
  const store = await openStore(o.config, false);
  try {
    const result = store.batches.resolve(o.id, o.resolution, o.note);
    if (o.json) {
      line(out, JSON.stringify({ version: 1, ...result }, null, 2));
      return 0;
    }
    printException(out, result.exception);
    if (result.records.length > 0) {
      line(
        out,
        `  queued for the cloud: ${result.records.join(', ')} (the running agent sends them)`,
      );
    }
    return 0;
  } finally {
    store.close();
  }
}
