/**
 * The `pos-agent sim …` subcommands as the command line shows them: options, and help that lists
 * every fault and test card (issue 14). Kept apart from agent/sim-commands.ts so that starting
 * `pos-agent run` does not load the simulator (aedes, the cloud core): the actions import it when
 * a sim command runs.
 */
import { type Command, Option } from 'commander';
import {
  CLOUD_FAULT_NAMES,
  PAD_FAULT_NAMES,
  cloudFaultHelpEntries,
  faultHelp,
  padFaultHelpEntries,
  swipeFaultHelpEntries,
} from '../../simulator/faults.js';
import { TEST_CARDS } from '../../simulator/test-cards.js';
import { SWIPE_FAULTS } from '../../simulator/virtual-hid-reader.js';
import type { SimClaimOptions, SimCloudOptions, SimIo } from '../sim-commands.js';

/** Resolves on SIGINT or SIGTERM. */
function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

const portNumber = (value: string): number => {
  const n = Number(value);
  // Checked again by the command, which answers POS501; NaN reaches it as NaN.
  return /^\d+$/.test(value) ? n : Number.NaN;
};

function stdio(): SimIo {
  return { out: process.stdout, stopped: untilSignal() };
}

/** Help text after the options: the faults and test cards of a command. */
function epilog(title: string, body: string): string {
  return `\n${title}:\n${body}\n`;
}

const cardList = (): string =>
  TEST_CARDS.map((c) => `  ${c.name.padEnd(13)} ${c.description}`).join('\n');

/**
 * Registers the `sim` subcommands on the `pos-agent sim` command of agent/cli.ts. Actions throw
 * AgentError for bad options; the CLI's error handler prints `error POSxxx: …` and exits 2.
 */
export function registerSimCommands(sim: Command): void {
  sim.addHelpText(
    'after',
    epilog(
      "Fault switches (details in each command's --help)",
      [
        `  sim pinpad --fault  ${PAD_FAULT_NAMES.join(', ')}`,
        `  sim reader --fault  ${SWIPE_FAULTS.join(', ')}`,
        `  sim cloud  --fault  ${CLOUD_FAULT_NAMES.join(', ')}`,
        '  --control PORT on each: change cards and faults while it runs (simulator/control.ts)',
      ].join('\n'),
    ),
  );
  sim
    .command('pinpad')
    .description(
      'serve a virtual PIN pad on tcp:// (and a pty with --pty); presents --card to every read, or waits with --card none',
    )
    .option('--listen <url>', 'tcp://host:port to listen on', 'tcp://127.0.0.1:7421')
    .option('--pty <dir>', 'also expose it as a pseudo-terminal (socat) at DIR/pad')
    .option('--card <name>', 'test card presented for every read, or none to wait', 'visa')
    .addOption(new Option('--no-card', 'same as --card none: wait, so card readers can be shown'))
    .option('--fault <fault>', 'a fault armed for every payment (repeatable; list below)', collect)
    .option('--control <port>', 'HTTP control endpoint on 127.0.0.1:PORT (0 = free)', portNumber)
    .addHelpText(
      'after',
      epilog('Faults (--fault NAME[:ARG], once per payment)', faultHelp(padFaultHelpEntries())) +
        epilog('Test cards (docs/test-cards.md)', cardList()),
    )
    .action(
      async (options: {
        listen: string;
        pty?: string;
        card: string | false;
        fault?: string[];
        control?: number;
      }) => {
        const { simPinPad } = await import('../sim-commands.js');
        await simPinPad(
          { ...options, card: options.card === false ? 'none' : options.card },
          stdio(),
        );
      },
    );

  sim
    .command('broker')
    .description('run the embedded MQTT 3.1.1 broker (aedes) on loopback')
    .option('--port <port>', 'TCP port', portNumber, 1883)
    .action(async (options: { port: number }) => {
      const { simBroker } = await import('../sim-commands.js');
      await simBroker(options, stdio());
    });

  sim
    .command('cloud')
    .description('run the cloud core simulator against a broker (it waits for the broker)')
    .requiredOption('--keys <dir>', 'the simulator keys directory written by init-dev (DIR/cloud)')
    .option('--broker <url>', 'broker URL', 'mqtt://127.0.0.1:1883')
    .option('--topic-prefix <prefix>', 'topic prefix', 'pos/v1')
    .option('--fault <fault>', 'a fault switch (repeatable; list below)', collect)
    .option('--control <port>', 'HTTP control endpoint on 127.0.0.1:PORT (0 = free)', portNumber)
    .addHelpText(
      'after',
      epilog('Faults (--fault NAME[:ARG])', faultHelp(cloudFaultHelpEntries())) +
        epilog(
          'Decisions without faults',
          '  card "declined" → 05; an amount ending in 51 (e.g. 1051) → 51; anything else approved',
        ),
    )
    .action(async (options: SimCloudOptions) => {
      const { simCloud } = await import('../sim-commands.js');
      await simCloud(options, stdio());
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
    .option('--card <name>', 'test card to swipe', 'visa')
    .option('--every <seconds>', 'swipe every N seconds instead of on Enter', portNumber)
    .option('--fault <fault>', 'a swipe fault (list below)')
    .option('--control <port>', 'HTTP control endpoint on 127.0.0.1:PORT (0 = free)', portNumber)
    .addHelpText(
      'after',
      epilog('Faults (--fault NAME)', faultHelp(swipeFaultHelpEntries())) +
        epilog('Test cards (docs/test-cards.md)', cardList()),
    )
    .action(
      async (options: {
        kind: string;
        listen: string;
        pty?: string;
        card: string;
        every?: number;
        fault?: string;
        control?: number;
      }) => {
        const { simReader } = await import('./sim-reader.js');
        const { every, ...rest } = options;
        await simReader(every === undefined ? rest : { ...rest, everySeconds: every }, {
          out: process.stdout,
          input: process.stdin,
          stopped: untilSignal(),
        });
        process.stdin.pause();
      },
    );

  sim
    .command('scenario')
    .description(
      'run scripted scenarios (JSON or YAML) against an agent on the simulator; exit 0 when all pass',
    )
    .argument('<files...>', 'scenario files, e.g. simulator/scenarios/*.yaml')
    .addHelpText(
      'after',
      epilog(
        'Steps (simulator/scenario.ts has the schema)',
        [
          '  pay: { amount, currency?, card?|swipe?, entry?, pin?, cancelAtPad?, offline?, key? }',
          '       with expect: { status?, error?, state?, approval?, declineCode?, reason?, brand?, entryMode? }',
          '  pad: { do: present|card|fault|faults|clear-faults|unplug|replug|event, … }',
          '  cloud: { do: fault|clear-faults, fault? }      reader: { do: swipe|unplug|replug }',
          '  broker: stop|start    clock: { advanceHours }    wait: synced',
          '  check: { queueDepth?, dead?, offlineCount?, deadlineWarnings?, cloudCharges?, link? }',
        ].join('\n'),
      ),
    )
    .action(async (files: string[]) => {
      const { simScenario } = await import('./sim-scenario.js');
      process.exitCode = await simScenario(files, process.stdout);
    });

  sim
    .command('claim')
    .description(
      'run the claim service: terminals provisioned by claim (provision --claim-cert … --registration-code) get a client certificate',
    )
    .requiredOption('--keys <dir>', 'the simulator keys directory written by init-dev (DIR/cloud)')
    .requiredOption('--ca-cert <file>', 'fleet CA certificate (PEM) that signs client certificates')
    .requiredOption('--ca-key <file>', 'fleet CA private key (PEM)')
    .option('--code <code:tenant:store>', 'a one-time registration code (repeatable)', collect)
    .option('--broker <url>', 'broker URL of the cloud side', 'mqtt://127.0.0.1:1883')
    .option('--topic-prefix <prefix>', 'topic prefix', 'pos/v1')
    .option('--days <n>', 'validity of issued certificates, days', portNumber, 365)
    .action(async (options: Omit<SimClaimOptions, 'code'> & { code?: string[] }) => {
      const { simClaim } = await import('../sim-commands.js');
      await simClaim({ ...options, code: options.code ?? [] }, stdio());
    });
}
