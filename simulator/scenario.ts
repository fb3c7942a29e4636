/**
 * Scripted scenarios (issue 14): a story told to the agent through the simulator — present this
 * card, time out at the PIN prompt, stop the broker, make the cloud decline — with what each
 * payment must end as. `pos-agent sim scenario FILE` runs one (agent/commands/sim-scenario.ts);
 * the examples in simulator/scenarios/ run in `npm test`.
 *
 * ```yaml
 * name: issuer declines                    # shown in the report
 * agent:                                   # optional config overrides of the agent under test
 *   onlinePinEntryModes: [chip]
 *   offline: { perTransactionLimitMinor: { EUR: 5000 }, maxCount: 2 }
 *   cardReader: true                       # a serial card reader next to the pad
 * steps:
 *   - pay: { amount: 1051, card: visa }    # POST /v1/payments; the pad presents the card
 *     expect: { state: declined, declineCode: "51" }
 *   - pad: { do: fault, fault: pin-timeout }        # the control endpoint's command set
 *   - cloud: { do: fault, fault: "drop-acks:2" }
 *   - reader: { do: unplug }
 *   - broker: stop                                  # or start
 *   - clock: { advanceHours: 61 }                   # the agent's wall clock moves on
 *   - wait: synced                                  # until the outbox is empty
 *   - check: { queueDepth: 0, cloudCharges: 3 }
 * ```
 *
 * The file is JSON or YAML (by extension; `.json` is JSON, anything else YAML, which also reads
 * JSON). {@link parseScenario} checks it against {@link ScenarioSchema} and names every problem
 * with its step number and field.
 */
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { PAYMENT_STATES } from '../common/payment-states.js';
import { CloudControlSchema, PadControlSchema, ReaderControlSchema } from './control.js';
import { findTestCard, TEST_CARDS } from './test-cards.js';

const cardName = z.string().refine((c) => findTestCard(c) !== undefined, {
  message: `unknown test card; one of: ${TEST_CARDS.map((c) => c.name).join(', ')} (docs/test-cards.md)`,
});

/** What a payment must end as; every field given is compared, the others are not. */
export const PaymentExpectationSchema = z.strictObject({
  /** HTTP status of `POST /v1/payments`, e.g. 201, or 422 for a card that could not be read. */
  status: z.number().int().min(100).max(599).optional(),
  /** Error code of a refused payment, e.g. `POS420`. */
  error: z
    .string()
    .regex(/^POS\d{3}$/, 'an error code such as POS420')
    .optional(),
  /** The payment's state afterwards (read back from the API for a refused payment). */
  state: z.enum(PAYMENT_STATES).optional(),
  /** `online`, `offline`, or `null` for none. */
  approval: z.enum(['online', 'offline']).nullable().optional(),
  /** Issuer code (`"51"`) or the agent's local reason (`offline_amount_limit`, `pin_timeout`). */
  declineCode: z.string().nullable().optional(),
  /** `details.reason` of a refused payment, e.g. `expired`, `chip_required`. */
  reason: z.string().optional(),
  /** The card brand the agent recorded. */
  brand: z.string().optional(),
  /** The entry mode the agent recorded: `chip`, `swipe`, `contactless`. */
  entryMode: z.enum(['chip', 'swipe', 'contactless']).optional(),
});
/** See {@link PaymentExpectationSchema}. */
export type PaymentExpectation = z.infer<typeof PaymentExpectationSchema>;

/** One payment asked for by the POS app, and how the customer behaves at the pad. */
export const PayStepSchema = z.strictObject({
  /** Integer minor units, e.g. 1250 = 12.50. */
  amount: z
    .number()
    .int('amount is an integer count of minor units, e.g. 1250 for 12.50')
    .positive('amount must be greater than 0'),
  /** ISO 4217 alpha-3. @default EUR */
  currency: z
    .string()
    .regex(/^[A-Z]{3}$/, 'an ISO 4217 code in upper case, e.g. EUR')
    .default('EUR'),
  /** Test card the pad presents; `none` presents nothing (a reader or a timeout decides). */
  card: z
    .string()
    .refine((c) => c === 'none' || findTestCard(c) !== undefined, {
      message: `unknown test card; one of: ${TEST_CARDS.map((c) => c.name).join(', ')}, or none (docs/test-cards.md)`,
    })
    .default('visa'),
  /** How the pad presents it (default: the card's own, usually chip). */
  entry: z.enum(['chip', 'swipe', 'tap']).optional(),
  /** Swipe this test card on the scenario's serial card reader instead (needs `agent.cardReader`). */
  swipe: cardName.optional(),
  /** What the customer does at the PIN prompt (when the agent asks for one). @default ok */
  pin: z.enum(['ok', 'timeout', 'cancel', 'bypass']).default('ok'),
  /** The customer presses Cancel on the pad instead of presenting a card. */
  cancelAtPad: z.boolean().default(false),
  /** The POS app's offline mode. @default prefer_online */
  offline: z.enum(['prefer_online', 'require_online', 'force_offline']).optional(),
  /** The Idempotency-Key; default a fresh one per step (the same key twice is a retry). */
  key: z.string().min(8).max(128).optional(),
});

/** One step of a scenario: exactly one action. */
export const StepSchema = z.union([
  z.strictObject({ pay: PayStepSchema, expect: PaymentExpectationSchema.default({}) }),
  z.strictObject({ pad: PadControlSchema }),
  z.strictObject({ cloud: CloudControlSchema }),
  z.strictObject({ reader: ReaderControlSchema }),
  z.strictObject({ broker: z.enum(['stop', 'start']) }),
  z.strictObject({
    clock: z.strictObject({
      advanceHours: z
        .number()
        .positive()
        .max(24 * 365),
    }),
  }),
  z.strictObject({
    wait: z.union([
      z.literal('synced'),
      z.strictObject({ synced: z.literal(true), timeoutMs: z.number().int().positive() }),
    ]),
  }),
  z.strictObject({
    check: z.strictObject({
      /** Outbox records not acknowledged yet. */
      queueDepth: z.number().int().min(0).optional(),
      /** Dead outbox records. */
      dead: z.number().int().min(0).optional(),
      /** Payments approved offline and not yet settled. */
      offlineCount: z.number().int().min(0).optional(),
      /** Stored payments within the warning window of their forwarding deadline. */
      deadlineWarnings: z.number().int().min(0).optional(),
      /** Idempotency keys the cloud would charge (approved, not voided). */
      cloudCharges: z.number().int().min(0).optional(),
      /** The agent's MQTT link. */
      link: z.enum(['online', 'offline']).optional(),
    }),
  }),
]);
/** One step (see {@link StepSchema}). */
export type ScenarioStep = z.infer<typeof StepSchema>;

/** A whole scenario file. */
export const ScenarioSchema = z.strictObject({
  name: z.string().min(1),
  description: z.string().optional(),
  /** Config of the agent under test (a few sections of agent/config.ts). */
  agent: z
    .strictObject({
      /** `authorization.onlinePinEntryModes`: entry modes that need online PIN. */
      onlinePinEntryModes: z.array(z.enum(['swipe', 'chip', 'contactless'])).optional(),
      /** `authorization.timeoutMs`. */
      authorizationTimeoutMs: z.number().int().min(500).max(120_000).optional(),
      /** The `offline` section as in the config file (caps, deadline hours). */
      offline: z.record(z.string(), z.unknown()).optional(),
      /** Add a serial card reader (served on mock://) next to the pad. */
      cardReader: z.boolean().optional(),
    })
    .default({}),
  steps: z.array(StepSchema).min(1, 'a scenario needs at least one step'),
});
/** A parsed scenario. */
export type Scenario = z.infer<typeof ScenarioSchema>;

/** A scenario file that cannot be read or does not fit {@link ScenarioSchema}. */
export class ScenarioError extends Error {
  override get name(): string {
    return 'ScenarioError';
  }
}

/** `steps.2.pay.card` → `step 3 (pay.card)`, the way a person counts steps. */
function where(path: readonly PropertyKey[]): string {
  if (path[0] === 'steps' && typeof path[1] === 'number') {
    const rest = path.slice(2).map(String).join('.');
    return `step ${path[1] + 1}${rest === '' ? '' : ` (${rest})`}`;
  }
  return path.length === 0 ? 'the file' : path.map(String).join('.');
}

/** Messages of a union: the branch whose key the step uses, not all seven alternatives. */
function describeIssues(error: z.ZodError, input: unknown): string[] {
  const lines: string[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'invalid_union' && issue.path[0] === 'steps') {
      const step = (input as { steps?: unknown[] }).steps?.[issue.path[1] as number];
      const keys = step !== null && typeof step === 'object' ? Object.keys(step) : [];
      const action = keys.find((k) => k !== 'expect');
      const branch = issue.errors.find((errs) =>
        errs.every((e) => action !== undefined && e.path[0] === action),
      );
      if (action === undefined || branch === undefined) {
        lines.push(
          `${where(issue.path)}: a step is one of pay (with expect), pad, cloud, reader, broker, clock, wait, check; got ${keys.length === 0 ? 'nothing' : keys.join(', ')}`,
        );
        continue;
      }
      for (const e of branch) lines.push(`${where([...issue.path, ...e.path])}: ${e.message}`);
      continue;
    }
    lines.push(`${where(issue.path)}: ${issue.message}`);
  }
  return lines;
}

/**
 * Parses a scenario from its text.
 *
 * @param fileName — decides the format (`.json` JSON, else YAML) and names the file in errors.
 * @throws ScenarioError with one line per problem: the step number, the field, what was expected.
 */
export function parseScenario(text: string, fileName: string): Scenario {
  let data: unknown;
  try {
    data = fileName.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    const detail =
      error instanceof YAMLParseError ? error.message.split('\n')[0] : (error as Error).message;
    throw new ScenarioError(
      `${fileName}: not valid ${fileName.endsWith('.json') ? 'JSON' : 'YAML'}: ${detail}`,
    );
  }
  const parsed = ScenarioSchema.safeParse(data);
  if (!parsed.success)
    throw new ScenarioError(
      `${fileName} does not fit the scenario schema (simulator/scenario.ts):\n${describeIssues(
        parsed.error,
        data,
      )
        .map((l) => `  - ${l}`)
        .join('\n')}`,
    );
  return parsed.data;
}
