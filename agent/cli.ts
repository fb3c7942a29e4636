#!/usr/bin/env node
/**
 * `pos-agent`: the command line of the agent, for field techs and developers (architecture.md §1, §7).
 *
 * | command | what |
 * |---------|------|
 * | `pos-agent demo` | the whole path on the built-in simulator; exit 0 only if nothing was lost |
 * | `pos-agent run [--config FILE]` | the agent as a service |
 * | `pos-agent open [--config FILE]` | a one-time login link for the status page |
 * | `pos-agent init-dev --dir DIR` | a development config and key set (and the simulator's cloud keys) |
 * | `pos-agent provision [--dir DIR] …` | provision a terminal (agent/commands/provision.ts) |
 * | `pos-agent doctor [--config FILE] [--json]` | check a terminal; numbered problems with codes and fixes (agent/commands/doctor.ts) |
 * | `pos-agent queue [--config FILE] [--retry] [--watch] [--json]` | the outbox (agent/commands/queue.ts) |
 * | `pos-agent verify [--config FILE] [--json]` | hash chain and projection (agent/commands/verify.ts) |
 * | `pos-agent devices [--json]` | what is plugged in and the path to configure (agent/commands/devices.ts) |
 * | `pos-agent batch show\|close\|exceptions\|resolve` | terminal batches and reconciliation (agent/commands/batch.ts) |
 * | `pos-agent sim pinpad --listen tcp://127.0.0.1:7421` | a virtual PIN pad on TCP (and a pty with `--pty`) |
 * | `pos-agent sim broker --port 1883` | the embedded MQTT broker |
 * | `pos-agent sim cloud --broker URL --keys DIR` | the cloud core simulator |
 * | `pos-agent sim reader --kind serial [--pty DIR] [--every N]` | a virtual serial card reader |
 * | `pos-agent sim … --fault F --control PORT` | fault switches and a control endpoint (agent/commands/sim-cli.ts) |
 * | `pos-agent sim fleet --terminals N [--broker URL,…]` | N simulated terminals against a broker list (agent/commands/sim-fleet.ts) |
 * | `pos-agent sim scenario FILE…` | scripted scenarios against an agent on the simulator |
 * | `pos-agent sim claim --keys DIR --ca-cert … --code …` | the claim service for provisioning by claim |
 *
 * The config file: `--config FILE`, else `$POS_AGENT_CONFIG`, else `/etc/pos-agent/config.json`
 * (agent/config-path.ts); when it was not given with `--config` the command says on stderr which
 * file it took. `provision` writes into the directory of that file unless `--dir` is given.
 *
 * Errors print as `error POSxxx: message` and exit with status 2 for bad usage or config, 1 for
 * a failed run.
 */
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { AgentError, isAgentError } from '../common/agent-error.js';
import { AGENT_VERSION } from './version.js';
import { registerBatchCommands } from './commands/batch.js';
import {
  CONFIG_ENV,
  DEFAULT_CONFIG_FILE,
  describeConfigPath,
  resolveConfigPath,
  type ConfigPath,
} from './config-path.js';

const program = new Command()
  .name('pos-agent')
  .description('POS edge agent: PIN pads and card readers, store-and-forward, MQTT sync')
  .version(AGENT_VERSION)
  .showHelpAfterError()
  // Bad usage (unknown option, missing or invalid value) exits 2 like a bad config; commander
  // has printed the message already. Set before the commands are added: they inherit it.
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));

const positiveInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new InvalidArgumentError('must be a positive integer (POS501)');
  return n;
};

program
  .command('demo')
  .description(
    'run the whole path on the built-in simulator: PIN pad, broker, cloud core, an outage',
  )
  .option('--payments <n>', 'payments before the outage', positiveInt, 6)
  .option('--outage-payments <n>', 'payments taken while the broker is down', positiveInt, 3)
  .option('--data-dir <dir>', 'data directory (default: a fresh temporary one)')
  .option(
    '--transport <kind>',
    'how the virtual PIN pad is connected: auto, pty, tcp or mock',
    'auto',
  )
  .action(
    async (options: {
      payments: number;
      outagePayments: number;
      dataDir?: string;
      transport: string;
    }) => {
      const { runDemo } = await import('./demo.js');
      const ok = await runDemo({
        payments: options.payments,
        outagePayments: options.outagePayments,
        dataDir: options.dataDir,
        transport: parseTransport(options.transport),
        out: process.stdout,
      });
      process.exitCode = ok ? 0 : 1;
    },
  );

const CONFIG_HELP = `config file (JSON); default: $${CONFIG_ENV}, else ${DEFAULT_CONFIG_FILE}`;

/** The config file of a command, said out loud on stderr when it was not given with --config. */
function configOf(flag: string | undefined): ConfigPath {
  const resolved = resolveConfigPath(flag);
  const said = describeConfigPath(resolved);
  if (said !== undefined) process.stderr.write(`pos-agent: ${said}\n`);
  return resolved;
}

program
  .command('run')
  .description('run the agent as a service')
  .option('--config <file>', CONFIG_HELP)
  .action(async (options: { config?: string }) => {
    const { runService } = await import('./service.js');
    try {
      await runService(configOf(options.config).file);
    } catch (error) {
      // A failed start must end the process with its code: a handle a dependency left open
      // (a socket, a timer) would otherwise keep Node alive after the error is printed.
      process.exit(reportError(error));
    }
  });

program
  .command('init-dev')
  .description(
    'write a development config, terminal keys and the simulator cloud keys into a directory',
  )
  .requiredOption('--dir <dir>', 'directory to create')
  .option('--device-id <id>', 'device id', 'dev-terminal-1')
  .option('--pinpad <path>', 'PIN pad path', 'tcp://127.0.0.1:7421')
  .option('--broker <url>', 'broker URL', 'mqtt://127.0.0.1:1883')
  .option(
    '--api-port <port>',
    "local API port (default: the config schema's api.port)",
    positiveInt,
  )
  .action(
    async (options: {
      dir: string;
      deviceId: string;
      pinpad: string;
      broker: string;
      apiPort?: number;
    }) => {
      const { initDev } = await import('./service.js');
      initDev(options, process.stdout);
    },
  );

program
  .command('open')
  .description('print a one-time login link for the terminal status page (served by the agent)')
  .option('--config <file>', CONFIG_HELP)
  .action(async (options: { config?: string }) => {
    const { runOpen } = await import('./commands/open.js');
    process.exitCode = await runOpen({
      config: configOf(options.config).file,
      out: process.stdout,
    });
  });

program
  .command('provision')
  .description(
    'provision this terminal: config, device key, pinned cloud keys, broker TLS files (prompts on a TTY)',
  )
  .option(
    '--dir <dir>',
    `directory for config.json and keys/ (default: the directory of $${CONFIG_ENV}, else /etc/pos-agent)`,
  )
  .option('--data-dir <dir>', 'directory of the database (default: DIR/data)')
  .option(
    '--owner <user>',
    'give the written config, keys and data folder to this user (the package: pos-agent); needs root',
  )
  .option('--device-id <id>', 'device id (MQTT client id, certificate CN)')
  .option('--tenant <id>', 'tenant id')
  .option('--store <id>', 'store id')
  .option('--broker <url>', 'broker URL, mqtts://host:8883')
  .option(
    '--pinpad <path>',
    'PIN pad path (/dev/…, tcp://host:port); default /dev/ttyUSB0, said when used',
  )
  .option('--ca <file>', 'broker CA certificate (PEM, pinned)')
  .option('--cert <file>', 'client certificate (PEM, CN = device id)')
  .option('--key <file>', 'client certificate private key (PEM)')
  .option('--generate-csr', 'generate the client key and a CSR for the cloud to sign')
  .option('--claim-cert <file>', 'register by claim: the fleet claim certificate (PEM)')
  .option('--claim-key <file>', 'register by claim: the claim certificate private key (PEM)')
  .option('--registration-code <code>', 'register by claim: the one-time registration code')
  .option('--cloud-key <file>', 'cloud signing public key file (base64, 32 bytes)')
  .option('--vault-key <file>', 'vault public key file (base64, 32 bytes)')
  .option('--token-key <file>', 'tenant token key file (base64, 32 bytes)')
  .option('--api-port <port>', 'local API port', positiveInt)
  .option('--development', 'allow plaintext mqtt:// (development setup)')
  .option('--force', 'replace existing keys and config')
  .option('--non-interactive', 'never prompt, even on a TTY')
  .action(async (options: Record<string, string | boolean | number | undefined>) => {
    const { runProvision } = await import('./commands/provision-command.js');
    if (typeof options.dir !== 'string') {
      const { file } = resolveConfigPath(undefined);
      options.dir = path.dirname(file);
      process.stderr.write(
        `pos-agent: provisioning into ${options.dir} (the directory of ${file}; --dir chooses another)\n`,
      );
    }
    await runProvision(options, process.stdin, process.stdout);
  });

program
  .command('verify')
  .description('rebuild the payments projection from the events and verify the hash chain')
  .option('--config <file>', CONFIG_HELP)
  .option('--json', 'print JSON (a stable shape, see docs/field-guide.md)')
  .action(async (options: { config?: string; json?: boolean }) => {
    const { runVerify } = await import('./commands/verify.js');
    process.exitCode = runVerify(configOf(options.config).file, process.stdout, {
      json: options.json === true,
    });
  });

program
  .command('queue')
  .description('outbox depth, oldest age, offline exposure and dead records; --retry requeues them')
  .option('--config <file>', CONFIG_HELP)
  .option('--retry', 'put every dead record back to pending')
  .option('--watch', 'show a progress bar (rate, time left) until the backlog has drained')
  .option('--json', 'print JSON (a stable shape, see docs/field-guide.md)')
  .action(
    async (options: { config?: string; retry?: boolean; watch?: boolean; json?: boolean }) => {
      const { runQueue } = await import('./commands/queue.js');
      process.exitCode = await runQueue({
        config: configOf(options.config).file,
        retry: options.retry === true,
        watch: options.watch === true,
        json: options.json === true,
        out: process.stdout,
      });
    },
  );

program
  .command('doctor')
  .description('check config, keys, database, disk, clock, broker TLS and devices; lists each fix')
  .option('--config <file>', CONFIG_HELP)
  .option('--json', 'print JSON (a stable shape, see docs/field-guide.md)')
  .action(async (options: { config?: string; json?: boolean }) => {
    const { runDoctor } = await import('./commands/doctor.js');
    process.exitCode = await runDoctor(configOf(options.config), process.stdout, {
      json: options.json === true,
    });
  });

program
  .command('devices')
  .description(
    'list serial ports and USB HID devices, recognise card readers and PIN pads, print the path to configure',
  )
  .option('--json', 'print JSON (a stable shape, see docs/field-guide.md)')
  .action(async (options: { json?: boolean }) => {
    const { runDevices } = await import('./commands/devices.js');
    process.exitCode = await runDevices({ json: options.json === true, out: process.stdout });
  });

program
  .command('decode')
  .description(
    'decode a captured hex trace (link frames, hid-msr report, wedge key codes, track text, tlv); PANs masked',
  )
  .requiredOption('--kind <kind>', 'link, hid-msr, wedge, track or tlv')
  .argument('[hex...]', 'hex bytes; none or "-" reads standard input')
  .action(async (hex: string[], options: { kind: string }) => {
    const { runDecode } = await import('./commands/decode.js');
    process.exitCode = await runDecode({
      kind: options.kind,
      hex,
      stdin: process.stdin,
      out: process.stdout,
      err: process.stderr,
    });
  });

// Issue 17: `pos-agent batch show|close|exceptions|resolve` (agent/commands/batch.ts).
registerBatchCommands(program, { configHelp: CONFIG_HELP, configOf, reportError });

const sim = program
  .command('sim')
  .description(
    "the simulator: virtual PIN pad, card reader, broker, cloud core; every fault switch (see each command's --help)",
  );

// The sim subcommands (their help lists the simulator's faults and test cards) are registered only
// when `sim` is the command: `--help`, `--version` and `run` do not load the simulator.
program.hook('preSubcommand', async (_program, command) => {
  if (command !== sim || sim.commands.length > 0) return;
  const { registerSimCommands } = await import('./commands/sim-cli.js');
  registerSimCommands(sim);
  const { registerSimFleet } = await import('./commands/sim-fleet.js');
  registerSimFleet(sim);
});

function parseTransport(value: string): 'auto' | 'pty' | 'tcp' | 'mock' {
  if (value === 'auto' || value === 'pty' || value === 'tcp' || value === 'mock') return value;
  throw new AgentError('POS501', `--transport must be auto, pty, tcp or mock, not "${value}"`);
}

/** Prints a command's error to stderr; returns the exit code (2 for POS5xx config errors, else 1). */
function reportError(error: unknown): number {
  if (isAgentError(error)) {
    process.stderr.write(`error ${error.code}: ${error.reason}\n`);
    return error.code.startsWith('POS5') ? 2 : 1;
  }
  // Not one of ours: a bug or an unexpected system error. The message, not a stack trace, unless
  // asked for (POS_AGENT_DEBUG=1).
  const detail =
    process.env.POS_AGENT_DEBUG === '1'
      ? ((error as Error).stack ?? String(error))
      : `${(error as Error).message ?? String(error)} (POS_AGENT_DEBUG=1 shows the stack trace)`;
  process.stderr.write(`error: ${detail}\n`);
  return 1;
}

program.parseAsync(process.argv).catch((error: unknown) => {
  // Exit now: a failed command may have left a handle open (a socket, a timer) that would keep
  // Node alive after the error is printed.
  process.exit(reportError(error));
});
