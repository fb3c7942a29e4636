/**
 * Online authorization over MQTT (architecture.md §5): a signed `AuthRequest` on `up/auth`, the
 * cloud's signed `AuthResponse` with the same idempotency key on `down/auth`. One pending request
 * per key; the sync worker routes verified responses here.
 *
 * A timeout is ambiguous (the cloud may have approved): the caller stores the payment under the
 * offline policy or declines it; the same idempotency key reaches the cloud later anyway.
 */
import type { AgentError } from '../common/agent-error.js';
import type { Clock, TimerHandle } from '../common/clock.js';
import { type EnvelopeSigner, signEnvelope } from './envelope.js';
import { syncError } from './errors.js';
import { type AuthRequest, AuthRequestSchema, type AuthResponse } from './schemas.js';

/** What {@link Authorizations} needs of the link. */
export interface AuthorizationLink {
  /** True when a publish can leave now. */
  readonly connected: boolean;
  /** QoS 1 publish on `up/auth`; rejects when the broker does not take it. */
  publish(payload: Buffer): Promise<unknown>;
}

interface Pending {
  resolve: (response: AuthResponse) => void;
  reject: (error: AgentError) => void;
  timer: TimerHandle;
}

/** The authorization requests waiting for their response, by idempotency key. */
export class Authorizations {
  readonly #pending = new Map<string, Pending>();
  readonly #clock: Clock;
  readonly #link: AuthorizationLink;

  constructor(clock: Clock, link: AuthorizationLink) {
    this.#clock = clock;
    this.#link = link;
  }

  /**
   * Publishes `request` signed by `signer` and waits up to `timeoutMs` for its response. A newer
   * request with the same key supersedes an older one (POS323 for the older).
   *
   * @throws AgentError POS325 not connected: nothing was sent, the cloud cannot have seen the
   *   request (not ambiguous: go offline without a void record); POS302 the connection closed
   *   after the request was handed to the broker (ambiguous); POS313 request fails the schema;
   *   POS323 no response within `timeoutMs` (ambiguous).
   */
  request(request: AuthRequest, signer: EnvelopeSigner, timeoutMs: number): Promise<AuthResponse> {
    const payload = signEnvelope(request, signer, AuthRequestSchema);
    if (!this.#link.connected) {
      // Checked synchronously right before the publish: nothing leaves the terminal.
      return Promise.reject(
        syncError(
          'POS325',
          `Authorization for key ${request.key} not sent: not connected to the broker; nothing reached the cloud, so the payment is not authorized online — apply the offline policy (no void record needed)`,
        ),
      );
    }
    this.#pending
      .get(request.key)
      ?.reject(
        syncError('POS323', `Authorization for key ${request.key} superseded by a new request`),
      );
    const response = new Promise<AuthResponse>((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        this.#pending.delete(request.key);
        reject(
          syncError(
            'POS323',
            `No authorization response for key ${request.key} within ${timeoutMs} ms: the outcome is unknown; store the payment under the offline policy or decline it (the cloud dedupes the key)`,
          ),
        );
      }, timeoutMs);
      this.#pending.set(request.key, {
        resolve: (r) => {
          this.#clock.clearTimeout(timer);
          this.#pending.delete(request.key);
          resolve(r);
        },
        reject: (e) => {
          this.#clock.clearTimeout(timer);
          this.#pending.delete(request.key);
          reject(e);
        },
        timer,
      });
    });
    // The publish is not awaited before the caller holds `response`: during a silent partition
    // the PUBACK never comes, the timer above rejects `response` first, and an await here left
    // that rejection without a handler (POS323 as an unhandled rejection ended the process,
    // issue 10). A failed publish rejects `response` early (POS302); a late one finds no entry.
    const entry = this.#pending.get(request.key);
    this.#link.publish(payload).catch((error: unknown) => {
      if (this.#pending.get(request.key) === entry) entry?.reject(error as AgentError);
    });
    return response;
  }

  /** A verified response: settles its request. False when none waits (it timed out). */
  resolve(response: AuthResponse): boolean {
    const pending = this.#pending.get(response.key);
    if (pending === undefined) return false;
    pending.resolve(response);
    return true;
  }

  /** Rejects every waiting request with `error` (the worker stopped). */
  rejectAll(error: AgentError): void {
    for (const pending of [...this.#pending.values()]) pending.reject(error);
  }
}
