/**
 * The shapes of the agent's payment flow (agent/payment-service.ts): what the POS app asks for,
 * what the terminal shows, and the online side the flow calls (architecture.md §5, §6).
 */
import type { AuthRequest, AuthResponse } from '../cloud-sync/schemas.js';
import type { CardToken } from '../drivers/boundary/card-token.js';
import type { OfflineMode } from '../store-forward/payment-store.js';

/** What the POS app asks for. */
export interface PaymentRequest {
  /** Amount in integer minor units of `currency` (e.g. 1250 = 12.50 EUR). */
  amountMinor: number;
  /** ISO 4217 alphabetic code, upper case. */
  currency: string;
  /** The POS app's own reference (receipt number), shown back, never interpreted. */
  reference?: string | undefined;
  /** The `Idempotency-Key` header; a UUIDv7 is made when absent. */
  idempotencyKey?: string | undefined;
  /** Offline mode of this payment; default `prefer_online`. */
  offlineMode?: OfflineMode | undefined;
}

/** Kinds of terminal prompts and results. */
export type PromptKind =
  | 'present_card'
  | 'enter_pin'
  | 'authorizing'
  | 'approved_online'
  | 'approved_offline'
  | 'declined'
  | 'canceled'
  | 'failed'
  | 'reversed'
  | 'warning';

/** A prompt or result for the terminal's screen, also sent to `GET /v1/events` subscribers. */
export interface TerminalPrompt {
  kind: PromptKind;
  /**
   * What the screen shows, a sentence from the table in agent/texts.ts, e.g. "Insert, tap or
   * swipe the card", "Approved offline — payment stored", "Declined — USD 75.00 is over the
   * offline limit of USD 50.00 per payment".
   */
  text: string;
  /**
   * The code behind `text` for the app: the decline code (`05`, `offline_amount_limit`, …) of a
   * `declined`/`reversed` prompt, the card-read failure (`timeout`, `bad_read`, …) of `failed`.
   */
  code?: string;
  /** The payment's amount: integer minor units, ISO 4217 code, and as the screen shows it. */
  amountMinor?: number;
  currency?: string;
  amount?: string;
  /** Correlation ids. */
  idempotencyKey: string;
  paymentId?: string;
  /** ISO 8601 UTC. */
  at: string;
}

/** The online side of the flow: the sync worker's authorize() and link state. */
export interface OnlineAuthorizer {
  /** True while the MQTT link is up. */
  online(): boolean;
  /**
   * `SyncWorker.authorize`: POS325 not sent (link down: not ambiguous), POS323 on timeout and
   * POS302 publish failed (both ambiguous), POS331 stopped.
   */
  authorize(request: AuthRequest, options: { timeoutMs: number }): Promise<AuthResponse>;
}

/** Online authorization settings (config `authorization`). */
export interface AuthorizationSettings {
  /** Wait for `down/auth`, ms. */
  timeoutMs: number;
  /** Entry modes whose cards need online PIN. */
  onlinePinEntryModes: readonly CardToken['entryMode'][];
  /** PIN entry time, seconds. */
  pinTimeoutSeconds: number;
}
