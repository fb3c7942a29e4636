/**
 * The one error base of the agent (architecture.md §8).
 *
 * Every error the agent raises on purpose is an `AgentError` with a stable `code`:
 * `POS1xx` drivers, `POS2xx` store-and-forward, `POS3xx` cloud sync, `POS4xx` local API,
 * `POS5xx` config and provisioning. The code is appended to the message (`… (POS101)`), as
 * zwave-js does, so a garbled stack trace or a screenshot of a log line still identifies it.
 *
 * Messages name the value, the limit and the fix. They never contain card data, PIN blocks or
 * key material: callers pass counts, lengths and masked values only.
 */
export class AgentError extends Error {
  /** Stable machine-readable code, e.g. `POS101`. */
  readonly code: string;
  /** Optional structured details safe to log and to return to the POS app (never card data). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  /**
   * @param code — stable code, `POS` + three digits.
   * @param message — what went wrong, the offending value or limit, and the fix.
   * @param options.cause — the lower-level error, kept for logs.
   * @param options.details — structured, card-data-free context.
   */
  constructor(
    code: string,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
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
export function isAgentError(error: unknown, code?: string): error is AgentError {
  return error instanceof AgentError && (code === undefined || error.code === code);
}
