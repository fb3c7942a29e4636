/**
 * The wire contract between the agent and the cloud core (architecture.md §5), as zod schemas: the single
 * definition used by the agent's sync worker, by the simulator's cloud core, and by the generated
 * JSON Schema (contract-json-schema.ts).
 *
 * ```
 *  {p}/{d}/up/records     agent → cloud   RecordsBatch   { batch, records: (OutboxRecord | BatchRecord)[] }
 *  {p}/{d}/up/auth        agent → cloud   AuthRequest    { key, payment, card, sealed?, sred?, pinBlock? }
 *  {p}/{d}/status         agent → cloud   Status         retained; the last will says offline
 *  {p}/{d}/down/acks      cloud → agent   Acks           { batch, results: AckResult[] }
 *  {p}/{d}/down/auth      cloud → agent   AuthResponse   { key, outcome, authCode?, declineCode? }
 *  {p}/{d}/down/commands  cloud → agent   Command        { id, issuedAt, expiresAt, command }
 * ```
 * Every payload travels inside a signed envelope (envelope.ts).
 *
 * Strictness (decided here, docs/architecture.md is silent):
 * - **Uplinks are strict** (`z.strictObject`): an unknown key is refused. The agent validates
 *   every record with these schemas before it signs it, so a field carried along by an object
 *   spread (a raw PAN, a track, a PIN block in clear) can never reach a payload (architecture.md §2).
 * - **Downlinks strip unknown keys** (`z.object`): a newer cloud core may add optional fields
 *   without stalling the queues of agents already in the field; the signature already proves the
 *   sender, and stripped keys never reach the agent's code. Unknown *command types* are still
 *   refused (discriminated union), because an agent must not act on a command it does not know.
 */
import { CARD_BRANDS, ENTRY_MODES, FIRST6_PATTERN, LAST4_PATTERN } from '../common/card.js';
import { CLOUD_STATES, RECON_STATES } from '../common/reconciliation.js';
import { z } from 'zod';
import { DeviceIdSchema } from './topics.js';

export {
  DEFAULT_TOPIC_PREFIX,
  DeviceIdSchema,
  claimTopics,
  cloudTopicFilters,
  parseTopic,
  topics,
  type DeviceTopics,
  type TopicKind,
} from './topics.js';

// ---------------------------------------------------------------------------------------------
// Building blocks

/** ISO 8601 UTC date-time text (`2026-11-21T09:54:21.000Z`; an offset is accepted). */
export const IsoDateTimeSchema = z.iso.datetime({ offset: true });

/** {@link IdempotencyKeySchema}'s rule: 1–255 visible ASCII characters. */
export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7E]{1,255}$/;

/**
 * An idempotency key: from the POS app's `Idempotency-Key` header or a UUIDv7 made by the agent
 * (architecture.md §4). 1–255 visible ASCII characters.
 */
export const IdempotencyKeySchema = z
  .string()
  .regex(IDEMPOTENCY_KEY_PATTERN, 'idempotency key: 1–255 visible ASCII characters');

/** Lower- or upper-case hex with an even number of digits. */
const evenHex = (min: number, max: number): z.ZodString =>
  z
    .string()
    .min(min)
    .max(max)
    .regex(/^(?:[0-9A-Fa-f]{2})+$/, 'hex with an even number of digits');

/** A DUKPT key serial number: 10 bytes (TDES DUKPT, ANSI X9.24-1) or 12 bytes (AES DUKPT, X9.24-3). */
export const KsnHexSchema = z
  .string()
  .regex(/^(?:[0-9A-Fa-f]{20}|[0-9A-Fa-f]{24})$/, 'KSN: 20 or 24 hex digits');

/** An ISO 4217 alphabetic code: 3 upper-case letters. */
export const CURRENCY_PATTERN = /^[A-Z]{3}$/;

/** A card token: `tok_` + lower-case RFC 4648 base32. */
export const CARD_TOKEN_PATTERN = /^tok_[a-z2-7]+$/;

/** A SHA-256 as 43 characters of unpadded base64url (RFC 4648 §5): a record's `chain`. */
export const CHAIN_HASH_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** Money: integer minor units of an ISO 4217 alpha currency (architecture.md §4; no floats). */
export const PaymentSchema = z.strictObject({
  /** Payment id in the agent's store. */
  id: z.string().min(1).max(64),
  /** Integer minor units of `currency`, > 0. */
  amountMinor: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  /** ISO 4217 alphabetic code, e.g. `EUR`. */
  currency: z.string().regex(CURRENCY_PATTERN, 'ISO 4217 alpha code, 3 upper-case letters'),
  /** The POS app's reference (order number), free text. */
  reference: z.string().max(128).optional(),
  /** When the payment was created, ISO 8601 UTC. */
  createdAt: IsoDateTimeSchema,
});

/** Card brands of the BIN table (common/card.ts, architecture.md §2 step 3). */
export const CardBrandSchema = z.enum(CARD_BRANDS);

/** Entry modes (common/card.ts, architecture.md §2 step 3). */
export const EntryModeSchema = z.enum(ENTRY_MODES);

/**
 * What may be shown of a card: the token and the displayable fields (architecture.md §2). Strict: no
 * other key (PAN, track, CVV) can pass.
 */
export const WireCardSchema = z.strictObject({
  /** `tok_` + RFC 4648 base32, lower case, no padding, of HMAC-SHA-256(tokenKey, PAN)[0..20). */
  token: z.string().regex(CARD_TOKEN_PATTERN, 'tok_ + lower-case base32'),
  brand: CardBrandSchema,
  /** First 6 digits (BIN), PCI DSS 3.4.1 allows them to be shown. */
  first6: z.string().regex(FIRST6_PATTERN, '6 digits'),
  /** Last 4 digits. */
  last4: z.string().regex(LAST4_PATTERN, '4 digits'),
  /** 1–12. */
  expiryMonth: z.number().int().min(1).max(12),
  /** Four digits, e.g. 2028. */
  expiryYear: z.number().int().min(2000).max(2099),
  entryMode: EntryModeSchema,
  /** Only when the config allows it (ISO/IEC 7813 name field: 2–26 characters). */
  cardholderName: z.string().min(1).max(26).optional(),
});

/** `ephemeralPublicKey(32) ‖ nonce(24) ‖ nacl.box ciphertext` in base64 (architecture.md §2 step 4). */
export const SealedSchema = z.base64().min(96).max(8192);

/** Reader-encrypted card data (SRED / P2PE), passed through unopened (architecture.md §2). */
export const SredSchema = z.strictObject({
  ksnHex: KsnHexSchema,
  ciphertextHex: evenHex(2, 8192),
});

/**
 * An encrypted PIN block from the PIN pad: ISO 9564-1 format 0 (8 bytes, TDES DUKPT) or
 * format 4 (16 bytes, AES DUKPT), with its KSN (architecture.md §2, §3.2 message 31).
 */
export const PinBlockSchema = z.strictObject({
  format: z.union([z.literal(0), z.literal(4)]),
  ksnHex: KsnHexSchema,
  pinBlockHex: z
    .string()
    .regex(/^(?:[0-9A-Fa-f]{16}|[0-9A-Fa-f]{32})$/, 'PIN block: 16 or 32 hex digits'),
});

// ---------------------------------------------------------------------------------------------
// Uplinks

/**
 * One outbox record (architecture.md §4 transactional outbox, §5 `up/records`).
 *
 * - `key`: the payment's idempotency key; the cloud dedupes by it.
 * - `seq`: per-device sequence number, integer ≥ 1, strictly increasing in a batch.
 * - `type`: `payment` (authorize/store) or `void`.
 * - `at`: when the record was written, ISO 8601 UTC.
 * - `chain`: the event's hash in the store's hash chain: SHA-256 as 43 characters of unpadded
 *   base64url (RFC 4648 §5). Not hex: a 64-digit hex string holds a Luhn-valid run of 13–19
 *   decimal digits often enough that PAN scanners (ours, architecture.md §2, and a PCI DLP tool's) would
 *   flag real traffic; base64url makes such a run vanishingly rare.
 */
export const OutboxRecordSchema = z.strictObject({
  key: IdempotencyKeySchema,
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  type: z.enum(['payment', 'void']),
  at: IsoDateTimeSchema,
  payment: PaymentSchema,
  card: WireCardSchema,
  sealed: SealedSchema.optional(),
  sred: SredSchema.optional(),
  pinBlock: PinBlockSchema.optional(),
  chain: z.string().regex(CHAIN_HASH_PATTERN, 'SHA-256 as 43 characters of unpadded base64url'),
});
/** {@link OutboxRecordSchema}; the record type of {@link OutboxSource} (sync-worker.ts). */
export type OutboxRecord = z.infer<typeof OutboxRecordSchema>;

/** Integer count and amount (integer minor units) of payments. */
const AmountsSchema = z.strictObject({
  count: z.number().int().min(0),
  amountMinor: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});
const CurrencyKey = z.string().regex(/^[A-Z]{3}$/, 'ISO 4217 alpha code, 3 upper-case letters');
const ByCurrencySchema = z.record(CurrencyKey, AmountsSchema);

/**
 * The totals of a terminal batch (issue 17): `count` payments; `byCurrency` the charged ones per
 * ISO 4217 currency; `byBrand` the charged ones per card brand and currency; `byState` every
 * payment per state and currency (the agent's states in a report, `charged`/`declined`/`voided`
 * in the cloud's answer). Amounts in integer minor units.
 */
export const BatchTotalsSchema = z.strictObject({
  count: z.number().int().min(0),
  byCurrency: ByCurrencySchema,
  // Not z.record(CardBrandSchema, …): a record with enum keys requires every key in zod 4.
  byBrand: z.record(z.string().regex(/^[a-z]{1,16}$/), ByCurrencySchema),
  byState: z.record(z.string().regex(/^[a-z_]{1,32}$/), ByCurrencySchema),
});

/** A terminal batch id: `bat_` + a UUID. */
export const TerminalBatchIdSchema = z
  .string()
  .regex(/^bat_[0-9a-z-]{1,60}$/, 'terminal batch id: bat_ + 1–60 of 0–9 a–z -');

/**
 * How the agent counts a payment in a batch report (issue 17, docs/reconciliation.md):
 * approved online, approved offline, pending forward (stored, not yet acknowledged), declined,
 * reversed (an offline approval the issuer declined), voided (canceled after an approval), not
 * completed (canceled before an approval, failed).
 */
export const ReconStateSchema = z.enum(RECON_STATES);

/**
 * A batch record (issue 17): the report of a terminal batch at its close (`kind: close`) or
 * between closes (`kind: check`, the drift check), sent in the outbox's `seq` order with the
 * payment records. The cloud answers in the record's ack result with `batch`: its own totals and
 * its view of each payment from its ledger.
 * - `key`: `<batch id>.close.<n>` / `<batch id>.check.<n>`; the cloud dedupes by it.
 * - `chain`: the hash of the batch's close event (of the chain head, for a check), unpadded
 *   base64url; `batch.chainHead` the chain head before it, `firstEventSeq`/`lastEventSeq` the
 *   events the batch covers.
 */
export const BatchRecordSchema = z.strictObject({
  key: IdempotencyKeySchema,
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  type: z.literal('batch'),
  at: IsoDateTimeSchema,
  batch: z.strictObject({
    id: TerminalBatchIdSchema,
    kind: z.enum(['close', 'check']),
    terminal: z.string().regex(/^[\x21-\x7E]{1,128}$/),
    openedAt: IsoDateTimeSchema,
    closedAt: IsoDateTimeSchema.optional(),
    asOf: IsoDateTimeSchema,
    firstEventSeq: z.number().int().min(1).nullable(),
    lastEventSeq: z.number().int().min(0),
    chainHead: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
    totals: BatchTotalsSchema,
    payments: z.array(
      z.strictObject({
        key: IdempotencyKeySchema,
        amountMinor: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
        currency: CurrencyKey,
        brand: CardBrandSchema.optional(),
        state: ReconStateSchema,
      }),
    ),
  }),
  chain: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'SHA-256 as 43 characters of unpadded base64url'),
});
/** {@link BatchRecordSchema}. */
export type BatchRecord = z.infer<typeof BatchRecordSchema>;

/** Any record of `up/records`: a payment or void record, or a batch record. */
export const UplinkRecordSchema = z.union([OutboxRecordSchema, BatchRecordSchema]);
/** {@link UplinkRecordSchema}. */
export type UplinkRecord = z.infer<typeof UplinkRecordSchema>;

/** {@link BatchIdSchema}'s rule: 1–64 visible ASCII characters. */
export const BATCH_ID_PATTERN = /^[\x21-\x7E]{1,64}$/;

/** A batch id: a UUID (the agent makes UUIDv7) or any 1–64 visible ASCII characters. */
export const BatchIdSchema = z
  .string()
  .regex(BATCH_ID_PATTERN, 'batch id: 1–64 visible ASCII characters');

/** `up/records`: a batch of records in strictly increasing `seq` order (architecture.md §5). */
export const RecordsBatchSchema = z
  .strictObject({
    batch: BatchIdSchema,
    records: z.array(UplinkRecordSchema).min(1),
  })
  .refine((b) => b.records.every((r, i) => i === 0 || r.seq > (b.records[i - 1]?.seq ?? 0)), {
    message: 'records must be in strictly increasing seq order',
    path: ['records'],
  });
/** {@link RecordsBatchSchema}. */
export type RecordsBatch = z.infer<typeof RecordsBatchSchema>;

/** `up/auth`: an online authorization request for one payment (architecture.md §5). */
export const AuthRequestSchema = z.strictObject({
  key: IdempotencyKeySchema,
  payment: PaymentSchema,
  card: WireCardSchema,
  sealed: SealedSchema.optional(),
  sred: SredSchema.optional(),
  pinBlock: PinBlockSchema.optional(),
});
/** {@link AuthRequestSchema}. */
export type AuthRequest = z.infer<typeof AuthRequestSchema>;

/** `status` (retained): link state and queue stats; the last will carries `offline` (architecture.md §5). */
export const StatusSchema = z.strictObject({
  state: z.enum(['online', 'offline']),
  at: IsoDateTimeSchema,
  /** Agent version (semver text). */
  version: z.string().min(1).max(64),
  queue: z.strictObject({
    /** Records not yet acknowledged (pending + in flight). */
    depth: z.number().int().min(0),
    /** When the oldest unacknowledged record was written, or null when the queue is empty. */
    oldestAt: IsoDateTimeSchema.nullable(),
    /** Records in `dead`. */
    dead: z.number().int().min(0),
  }),
});
/** {@link StatusSchema}. */
export type Status = z.infer<typeof StatusSchema>;

// ---------------------------------------------------------------------------------------------
// Downlinks

/** Authorization outcome of the issuer/acquirer as relayed by the cloud core. */
export const OutcomeSchema = z.enum(['approved', 'declined']);

/**
 * One record's acknowledgement. architecture.md §5 defines `{ key, status, code?, reason? }`; our
 * extension adds `outcome`, `authCode`, `declineCode` so the cloud's authorization result of a
 * stored payment reaches the agent (and, for `duplicate`, the ORIGINAL outcome).
 * - `accepted`: first time the cloud sees the key; applied.
 * - `duplicate`: already applied earlier; nothing done again.
 * - `rejected`: refused for good (the agent moves the record to `dead` with `code`/`reason`).
 */
export const AckResultSchema = z.object({
  key: IdempotencyKeySchema,
  status: z.enum(['accepted', 'duplicate', 'rejected']),
  code: z.string().max(64).optional(),
  reason: z.string().max(512).optional(),
  outcome: OutcomeSchema.optional(),
  authCode: z.string().max(16).optional(),
  declineCode: z.string().max(32).optional(),
  /**
   * The answer to a batch record (issue 17), signed with the rest: the cloud's totals for the
   * same batch from its ledger, and its view of each payment the report named plus those of this
   * terminal it has and the report did not name.
   */
  batch: z
    .object({
      id: TerminalBatchIdSchema,
      kind: z.enum(['close', 'check']),
      asOf: IsoDateTimeSchema,
      totals: z.object({
        count: z.number().int().min(0),
        byCurrency: z.record(z.string(), AmountsSchema),
        byBrand: z.record(z.string(), z.record(z.string(), AmountsSchema)),
        byState: z.record(z.string(), z.record(z.string(), AmountsSchema)),
      }),
      payments: z.array(
        z.object({
          key: IdempotencyKeySchema,
          amountMinor: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
          currency: z.string().max(3),
          brand: z.string().max(16).optional(),
          state: z.enum(CLOUD_STATES),
        }),
      ),
    })
    .optional(),
});
/** {@link AckResultSchema}. */
export type AckResult = z.infer<typeof AckResultSchema>;

/** `down/acks`: the results of one batch (architecture.md §5). */
export const AcksSchema = z.object({
  batch: BatchIdSchema,
  results: z.array(AckResultSchema),
});
/** {@link AcksSchema}. */
export type Acks = z.infer<typeof AcksSchema>;

/** `down/auth`: the answer to an {@link AuthRequest} (architecture.md §5). */
export const AuthResponseSchema = z.object({
  key: IdempotencyKeySchema,
  outcome: OutcomeSchema,
  authCode: z.string().max(16).optional(),
  declineCode: z.string().max(32).optional(),
});
/** {@link AuthResponseSchema}. */
export type AuthResponse = z.infer<typeof AuthResponseSchema>;

/** Log levels a `set_log_level` command may set (pino's names). */
export const LogLevelSchema = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']);

/** The command itself: a discriminated union on `type`; an unknown type is refused. */
export const CommandBodySchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('set_log_level'), level: LogLevelSchema }),
  z.object({ type: z.literal('request_diagnostics') }),
  /**
   * Offline limits (architecture.md §4 offline policy) set by the cloud, with the names and ranges of the
   * agent config's `offline` section; stored by the agent in an overrides file merged over the
   * config. Amounts in integer minor units per ISO 4217 currency; an omitted field (or currency)
   * keeps the configured value.
   */
  z.object({
    type: z.literal('set_offline_limits'),
    limits: z
      .strictObject({
        perTransactionLimitMinor: z
          .record(z.string().regex(/^[A-Z]{3}$/), z.number().int().min(0))
          .optional(),
        totalLimitMinor: z
          .record(z.string().regex(/^[A-Z]{3}$/), z.number().int().min(0))
          .optional(),
        maxCount: z.number().int().min(0).max(100_000).optional(),
        forwardingDeadlineHours: z.number().int().min(1).max(720).optional(),
      })
      .refine((l) => Object.keys(l).length > 0, { message: 'at least one limit' }),
  }),
  /**
   * Rotate the device signing key: the agent makes a new Ed25519 key pair, announces the new
   * public key in the command result signed by the OLD key, then signs with the new one.
   */
  z.object({ type: z.literal('rotate_signing_key') }),
  /**
   * Close the terminal's open batch now (issue 17), as `pos-agent batch close` would; `force`
   * closes although payments are not yet forwarded (they are listed in the result).
   */
  z.object({ type: z.literal('close_batch'), force: z.boolean().optional() }),
]);
/** {@link CommandBodySchema}. */
export type CommandBody = z.infer<typeof CommandBodySchema>;

/** `down/commands`: a command with a unique id and an expiry (architecture.md §5: replayed or expired → refused). */
export const CommandSchema = z
  .object({
    id: z.string().regex(/^[\x21-\x7E]{1,64}$/, 'command id: 1–64 visible ASCII characters'),
    /**
     * The device the command is for (`{d}`, signed with the rest): the agent refuses a command
     * for another device or for none (POS326), so a command cannot be replayed to another
     * terminal's topic. Optional in the schema only so that the refusal has its own code.
     */
    deviceId: z.string().min(1).max(128).optional(),
    issuedAt: IsoDateTimeSchema,
    expiresAt: IsoDateTimeSchema,
    command: CommandBodySchema,
  })
  .refine((c) => Date.parse(c.expiresAt) > Date.parse(c.issuedAt), {
    message: 'expiresAt must be after issuedAt',
    path: ['expiresAt'],
  });
/** {@link CommandSchema}. */
export type Command = z.infer<typeof CommandSchema>;

/**
 * `up/command-results`: what the agent did with a cloud command (issue 5). Strict (an uplink).
 * - `applied`: done; `data` holds the answer (diagnostics, the new public key of a rotation).
 * - `refused`: verified but expired, replayed or not yet valid (`code` POS320–POS322).
 * - `failed`: verified and fresh, but could not be applied (`code`, `reason`).
 * `data` never holds card data: diagnostics are counts, states and times.
 */
export const CommandResultSchema = z.strictObject({
  id: z.string().regex(/^[\x21-\x7E]{1,64}$/, 'command id: 1–64 visible ASCII characters'),
  type: z.string().regex(/^[a-z_]{1,64}$/),
  status: z.enum(['applied', 'refused', 'failed']),
  at: IsoDateTimeSchema,
  code: z
    .string()
    .regex(/^POS\d{3}$/)
    .optional(),
  reason: z.string().max(512).optional(),
  data: z
    .record(
      z.string(),
      z.union([
        z.string().max(4096),
        z.number(),
        z.boolean(),
        z.null(),
        z.record(z.string(), z.unknown()),
      ]),
    )
    .optional(),
});
/** {@link CommandResultSchema}. */
export type CommandResult = z.infer<typeof CommandResultSchema>;

const TenantOrStoreId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, '1–64 of a–z 0–9 -');

/** `claims/{d}/request`: the device's identity, its new public key and its CSR. Strict. */
export const ClaimRequestSchema = z.strictObject({
  deviceId: DeviceIdSchema,
  tenant: TenantOrStoreId,
  store: TenantOrStoreId,
  /** One-time code the tenant got when registering the terminal (Stripe's registration code). */
  registrationCode: z.string().regex(/^[A-Za-z0-9-]{6,64}$/, '6–64 of A–Z a–z 0–9 -'),
  /** The device's NEW Ed25519 public key, base64 of 32 bytes; it also signs this request. */
  publicKey: z.base64().length(44),
  /** PEM certificate signing request for the client certificate (CN = deviceId). */
  csr: z
    .string()
    .max(8192)
    .regex(/^-----BEGIN CERTIFICATE REQUEST-----/, 'a PEM certificate signing request'),
  at: IsoDateTimeSchema,
});
/** {@link ClaimRequestSchema}. */
export type ClaimRequest = z.infer<typeof ClaimRequestSchema>;

/** `claims/{d}/response`: the signed client certificate, or why the claim was refused. */
export const ClaimResponseSchema = z.object({
  deviceId: DeviceIdSchema,
  status: z.enum(['accepted', 'rejected']),
  /** PEM client certificate issued by the fleet CA (accepted only). */
  certificate: z.string().max(16_384).optional(),
  /** Why it was refused (rejected only); never secret. */
  reason: z.string().max(512).optional(),
});
/** {@link ClaimResponseSchema}. */
export type ClaimResponse = z.infer<typeof ClaimResponseSchema>;

/** Every message schema of the contract, by name (used for the generated description). */
export const WIRE_SCHEMAS = {
  RecordsBatch: RecordsBatchSchema,
  OutboxRecord: OutboxRecordSchema,
  BatchRecord: BatchRecordSchema,
  AuthRequest: AuthRequestSchema,
  Status: StatusSchema,
  Acks: AcksSchema,
  AckResult: AckResultSchema,
  AuthResponse: AuthResponseSchema,
  Command: CommandSchema,
  CommandResult: CommandResultSchema,
  ClaimRequest: ClaimRequestSchema,
  ClaimResponse: ClaimResponseSchema,
} as const;
