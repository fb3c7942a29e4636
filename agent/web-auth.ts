/**
 * Browser sign-in for the status page (issue 13), keeping the bearer token out of URLs, pages
 * and scripts:
 *
 * ```
 * pos-agent open ──POST /v1/login-codes (bearer)──▶ agent: one-time code, 60 s
 *      prints http://127.0.0.1:7420/login?code=…
 * browser ──GET /login?code=…──▶ agent: code used up → Set-Cookie pos_agent_session=…;
 *      HttpOnly; SameSite=Strict; Path=/  → 303 to /
 * browser ──GET /, /v1/events, /v1/status (cookie)──▶ agent
 * ```
 *
 * A code works once and for {@link LOGIN_CODE_TTL_MS}; a session lasts {@link SESSION_TTL_MS}.
 * Both live in memory only: a restart of the agent signs every browser out. Codes and session
 * ids are 256 random bits (base64url), compared through a Map lookup of their SHA-256, so the
 * secret itself is never a key whose lookup time depends on it. The cookie alone never
 * authorizes a cross-origin request: agent/api-auth.ts refuses a foreign `Origin`/`Host` first.
 */
import { createHash, randomBytes } from 'node:crypto';

/** How long a login code from `pos-agent open` may wait to be used, ms. */
export const LOGIN_CODE_TTL_MS = 60_000;
/** How long a status page session lasts, ms (12 h: a shift). */
export const SESSION_TTL_MS = 12 * 3_600_000;
/** Name of the session cookie. */
export const SESSION_COOKIE = 'pos_agent_session';
/** Most sessions at once; the oldest is dropped beyond it. */
const MAX_SESSIONS = 32;

const digest = (secret: string): string => createHash('sha256').update(secret).digest('base64');

/** One-time login codes and the sessions they open. */
export class WebSessions {
  readonly #now: () => number;
  readonly #codes = new Map<string, number>();
  readonly #sessions = new Map<string, number>();

  /** @param options.now — clock, epoch ms (tests move it). */
  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** A new one-time login code and when it expires (epoch ms). */
  issueCode(): { code: string; expiresAt: number } {
    this.#sweep();
    const code = randomBytes(32).toString('base64url');
    const expiresAt = this.#now() + LOGIN_CODE_TTL_MS;
    this.#codes.set(digest(code), expiresAt);
    return { code, expiresAt };
  }

  /**
   * Uses up a login code.
   *
   * @returns a new session id, or undefined for an unknown, used or expired code.
   */
  redeem(code: string): { sessionId: string; maxAgeSeconds: number } | undefined {
    const key = digest(code);
    const expiresAt = this.#codes.get(key);
    this.#codes.delete(key);
    if (expiresAt === undefined || expiresAt <= this.#now()) return undefined;
    const sessionId = randomBytes(32).toString('base64url');
    this.#sessions.set(digest(sessionId), this.#now() + SESSION_TTL_MS);
    while (this.#sessions.size > MAX_SESSIONS) {
      const oldest = this.#sessions.keys().next().value as string;
      this.#sessions.delete(oldest);
    }
    return { sessionId, maxAgeSeconds: SESSION_TTL_MS / 1000 };
  }

  /** True when `sessionId` is a live session. */
  valid(sessionId: string): boolean {
    const key = digest(sessionId);
    const expiresAt = this.#sessions.get(key);
    if (expiresAt === undefined) return false;
    if (expiresAt <= this.#now()) {
      this.#sessions.delete(key);
      return false;
    }
    return true;
  }

  #sweep(): void {
    const now = this.#now();
    for (const [key, expiresAt] of this.#codes) if (expiresAt <= now) this.#codes.delete(key);
  }
}

/** The value of cookie `name` in a `Cookie` header (RFC 6265 §5.4), or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The `Set-Cookie` value that opens a session. */
export function sessionCookie(sessionId: string, maxAgeSeconds: number): string {
  return `${SESSION_COOKIE}=${sessionId}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeSeconds}`;
}

/** True for a `Host` header naming this machine: localhost, 127.x.x.x or [::1], any port. */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0];
  return (
    name === 'localhost' || name === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name ?? '')
  );
}
