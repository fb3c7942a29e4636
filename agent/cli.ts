#!/usr/bin/env node
/**
 * `pos-agent`: the command line of the agent, for field techs and developers (DESIGN §1, §7).
 *
 * | command | what |
 * |---------|------|
 * | `pos-agent demo` | the whole path on the built-in simulator; exit 0 only if nothing was lost |
 * | `pos-agent run --config FILE` | the agent as a service |
 * | `pos-agent open --config FILE` | a one-time login link for the status page |
 * | `pos-agent init-dev --dir DIR` | a development config and key set (and the simulator's cloud keys) |
 * | `pos-agent provision --dir DIR …` | provision a terminal (agent/commands/provision.ts) |
 * | `pos-agent doctor --config FILE` | check a terminal; numbered problems with fixes (agent/commands/doctor.ts) |
 * | `pos-agent sim pinpad --listen tcp://127.0.0.1:7421` | a virtual PIN pad on TCP (and a pty with `--pty`) |
 * | `pos-agent sim broker --port 1883` | the embedded MQTT broker |
 * | `pos-agent sim cloud --broker URL --keys DIR` | the cloud core simulator |
 * | `pos-agent sim reader --kind serial [--pty DIR] [--every N]` | a virtual serial card reader |
 *
 * Errors print as `error POSxxx: message` and exit with status 2 for bad usage or config, 1 for
 * a failed run.
 */
import { Command, InvalidArgumentError } from 'commander';
import { isAgentError } from '../common/agent-error.js';
import { AGENT_VERSION } from './agent.js';

const program = new Command()
  .name('pos-agent')
  .description('POS edge agent: PIN pads and card readers, store-and-forward, MQTT sync')
  .version(AGENT_VERSION)
  .showHelpAfterError();

const positiveInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
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

program
  .command('run')
  .description('run the agent as a service')
  .requiredOption('--config <file>', 'config file (JSON)')
  .action(async (options: { config: string }) => {
    const { runService } = await import('./service.js');
    try {
      await runService(options.config);
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
  .option('--api-port <port>', 'local API port', positiveInt, 7420)
  .action(
    async (options: {
      dir: string;
      deviceId: string;
      pinpad: string;
      broker: string;
      apiPort: number;
    }) => {
      const { initDev } = await import('./service.js');
      initDev(options, process.stdout);
    },
  );

program
  .command('open')
  .description('print a one-time login link for the terminal status page (served by the agent)')
  .requiredOption('--config <file>', 'config file (JSON)')
  .action(async (options: { config: string }) => {
    const { runOpen } = await import('./commands/open.js');
    process.exitCode = await runOpen({ config: options.config, out: process.stdout });
  });

program
  .command('provision')
  .description(
    'provision this terminal: config, device key, pinned cloud keys, broker TLS files (prompts on a TTY)',
  )
  .requiredOption('--dir <dir>', 'directory for config.json, keys/ and data/')
  .option('--device-id <id>', 'device id (MQTT client id, certificate CN)')
  .option('--tenant <id>', 'tenant id')
  .option('--store <id>', 'store id')
  .option('--broker <url>', 'broker URL, mqtts://host:8883')
  .option('--pinpad <path>', 'PIN pad path (/dev/…, tcp://host:port)')
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
    const { runProvision } = await import('./commands/provision.js');
    await runProvision(options, process.stdin, process.stdout);
  });

program
  .command('verify')
  .description('rebuild the payments projection from the events and verify the hash chain')
  .requiredOption('--config <file>', 'config file (JSON)')
  .action(async (options: { config: string }) => {
    const { runVerify } = await import('./commands/verify.js');
    process.exitCode = runVerify(options.config, process.stdout);
  });

program
  .command('queue')
  .description('outbox depth, oldest age, offline exposure and dead records; --retry requeues them')
  .requiredOption('--config <file>', 'config file (JSON)')
  .option('--retry', 'put every dead record back to pending')
  .option('--watch', 'print progress until the backlog has drained')
  .action(async (options: { config: string; retry?: boolean; watch?: boolean }) => {
    const { runQueue } = await import('./commands/queue.js');
    process.exitCode = await runQueue({
      config: options.config,
      retry: options.retry === true,
      watch: options.watch === true,
      out: process.stdout,
    });
  });

program
  .command('doctor')
  .description('check config, keys, database, disk, clock, broker TLS and devices; lists each fix')
  .requiredOption('--config <file>', 'config file (JSON)')
  .action(async (options: { config: string }) => {
    const { runDoctor } = await import('./commands/doctor.js');
    process.exitCode = await runDoctor(options.config, process.stdout);
  });

program
  .command('devices')
  .description(
    'list serial ports and USB HID devices, recognise card readers and PIN pads, print the path to configure',
  )
  .option('--json', 'print JSON instead of a table')
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

const sim = program
  .command('sim')
  .description('the simulator: virtual PIN pad, broker, cloud core');

sim
  .command('pinpad')
  .description(
    'serve a virtual PIN pad; cards are presented automatically (test Visa) unless --card is given',
  )
  .option('--listen <url>', 'tcp://host:port to listen on', 'tcp://127.0.0.1:7421')
  .option('--pty <dir>', 'also expose it as a pseudo-terminal (socat) at DIR/pad')
  .option(
    '--card <name>',
    'test card presented for every read (see simulator/test-cards.ts)',
    'visa',
  )
  .action(async (options: { listen: string; pty?: string; card: string }) => {
    const { simPinPad } = await import('./sim-commands.js');
    await simPinPad(options, process.stdout);
  });

sim
  .command('broker')
  .description('run the embedded MQTT 3.1.1 broker (aedes) on loopback')
  .option('--port <port>', 'TCP port', positiveInt, 1883)
  .action(async (options: { port: number }) => {
    const { simBroker } = await import('./sim-commands.js');
    await simBroker(options, process.stdout);
  });

sim
  .command('cloud')
  .description('run the cloud core simulator against a broker')
  .requiredOption('--keys <dir>', 'the simulator keys directory written by init-dev (DIR/cloud)')
  .option('--broker <url>', 'broker URL', 'mqtt://127.0.0.1:1883')
  .option('--topic-prefix <prefix>', 'topic prefix', 'pos/v1')
  .action(async (options: { keys: string; broker: string; topicPrefix: string }) => {
    const { simCloud } = await import('./sim-commands.js');
    await simCloud(options, process.stdout);
  });

sim
  .command('reader')
  .description(
    'serve a virtual serial card reader on tcp:// (and a pty with --pty); swipes on Enter or every N s. HID kinds are explained (in-process only)',
  )
  .requiredOption(
    '--kind <kind>',
    'serial (hid-msr, wedge and sred exist only in-process, in tests)',
  )
  .option('--listen <url>', 'tcp://127.0.0.1:PORT to listen on', 'tcp://127.0.0.1:7431')
  .option('--pty <dir>', 'also expose it as a pseudo-terminal (socat) at DIR/reader')
  .option('--card <name>', 'test card to swipe (see simulator/test-cards.ts)', 'visa')
  .option('--every <seconds>', 'swipe every N seconds instead of on Enter', positiveInt)
  .option('--fault <fault>', 'bad_swipe, one_track, reversed, chip_card or garbage')
  .action(
    async (options: {
      kind: string;
      listen: string;
      pty?: string;
      card: string;
      every?: number;
      fault?: string;
    }) => {
      const { simReader } = await import('./commands/sim-reader.js');
      const { every, ...rest } = options;
      await simReader(every === undefined ? rest : { ...rest, everySeconds: every }, {
        out: process.stdout,
        input: process.stdin,
        stopped: new Promise<void>((resolve) => {
          process.once('SIGINT', () => resolve());
          process.once('SIGTERM', () => resolve());
        }),
      });
      process.stdin.pause();
    },
  );

function parseTransport(value: string): 'auto' | 'pty' | 'tcp' | 'mock' {
  if (value === 'auto' || value === 'pty' || value === 'tcp' || value === 'mock') return value;
  throw new InvalidArgumentError(`--transport must be auto, pty, tcp or mock, not "${value}"`);
}

/** Prints a command's error to stderr; returns the exit code (2 for POS5xx config errors, else 1). */
function reportError(error: unknown): number {
  if (isAgentError(error)) {
    process.stderr.write(`error ${error.code}: ${error.reason}\n`);
    return error.code.startsWith('POS5') ? 2 : 1;
  }
  process.stderr.write(`error: ${(error as Error).stack ?? String(error)}\n`);
  return 1;
}

program.parseAsync(process.argv).catch((error: unknown) => {
  process.exitCode = reportError(error);
});
