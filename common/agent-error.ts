/**
 * The one error base of the agent (architecture.md §8).
 *
 * Every error the agent raises on purpose is an `AgentError` with a stable `code`:
 * `POS1xx` drivers, `POS2xx` store-and-forward, `POS3xx` cloud sync, `POS4xx` local API,
 * `POS5xx` config and provisioning. The code is appended to the message (`… (POS101)`), as
 * zwave-js does, so a garbled stack trace or a screenshot of a log line still identifies it.
 *
 * The codes are a closed union ({@link ErrorCode}): each folder lists its own in one table of
 * {@link ErrorSpec}s (`drivers/errors.ts`, `store-forward/errors.ts`, `cloud-sync/errors.ts`,
 * `agent/errors.ts`) and adds them to {@link ErrorFamilies} by declaration merging, so `common/`
 * imports nothing upward and yet `new AgentError(…)` with a code in no table fails to compile.
 *
 * Messages name the value, the limit and the fix. They never contain card data, PIN blocks or
 * key material: callers pass counts, lengths and masked values only.
 */

/** What an error table says about one code (one entry per code, docs/error-codes.md is made from it). */
export interface ErrorSpec {
  /** Short name, as the docs and logs call the error (`transport cannot open`). */
  readonly name: string;
  /** What the operator or the POS app developer does about it, in one sentence. */
  readonly fix: string;
  /**
   * HTTP status the local API answers with this code (`httpStatus` in agent/errors.ts): 4xx when
   * the request was the POS app's mistake, 503/504 when it may retry later; absent for codes the
   * API never returns, which answer 500 should one reach it.
   */
  readonly status?: number;
  /** Set on a code that is kept but not raised anywhere: why (a code is never reused). */
  readonly reserved?: string;
}

/** One folder's table: code → spec. Each folder checks its own with `satisfies`. */
export type ErrorTable = Readonly<Record<`POS${number}`, ErrorSpec>>;

/**
 * The code families, one member per folder table, each the union of that table's codes. Empty
 * here: `drivers/errors.ts`, `store-forward/errors.ts`, `cloud-sync/errors.ts` and
 * `agent/errors.ts` each add their member with `declare module '../common/agent-error.js'`.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled by declaration merging
export interface ErrorFamilies {}

/** Every error code of the agent: the closed union of all folder tables. */
export type ErrorCode = ErrorFamilies[keyof ErrorFamilies];

/** Options of an {@link AgentError}. */
export interface AgentErrorOptions {
  /** The lower-level error, kept for logs. */
  cause?: unknown;
  /** Structured, card-data-free context, safe to log and to return to the POS app. */
  details?: Record<string, unknown>;
}

/** An error the agent raises on purpose, with a code `C` of {@link ErrorCode}. */
export class AgentError<C extends ErrorCode = ErrorCode> extends Error {
  /** Stable machine-readable code, e.g. `POS101`. */
  readonly code: C;
  /** Optional structured details safe to log and to return to the POS app (never card data). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  /**
   * @param code — a code of one of the folder tables.
   * @param message — what went wrong, the offending value or limit, and the fix.
   * @param options.cause — the lower-level error, kept for logs.
   * @param options.details — structured, card-data-free context.
   */
  constructor(code: C, message: string, options: AgentErrorOptions = {}) {
    super(
      `${message} (${code})`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = code;
    this.details = options.details;
  }

  override get name(): string {
    return 'AgentError';
  }

  /** The message without the trailing ` (POSxxx)`, for JSON error bodies that carry the code apart. */
  get reason(): string {
    const suffix = ` (${this.code})`;
    return this.message.endsWith(suffix) ? this.message.slice(0, -suffix.length) : this.message;
  }
}

/** True when `error` is an {@link AgentError}, optionally with the given code. */
export function isAgentError<C extends ErrorCode = ErrorCode>(
  error: unknown,
  code?: C,
): error is AgentError<C> {
  return error instanceof AgentError && (code === undefined || error.code === code);
}

/**
 * A family predicate, as zwave-js has (`isTransportError`, `isStoreError`, …): true when `error`
 * is an {@link AgentError} whose code starts with `prefix`; the type narrows `code` to the codes
 * of the union that do.
 *
 * @param prefix — `POS1` for every driver code, `POS11` for the link's POS110–POS119, and so on.
 */
export function errorRange<P extends `POS${number}`>(
  prefix: P,
): (error: unknown) => error is AgentError<Extract<ErrorCode, `${P}${string}`>> {
  return (error: unknown): error is AgentError<Extract<ErrorCode, `${P}${string}`>> =>
    error instanceof AgentError && error.code.startsWith(prefix);
}
