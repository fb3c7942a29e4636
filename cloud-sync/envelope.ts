/**
 * Signed envelopes: every MQTT payload of the contract (architecture.md §5).
 *
 * ```
 * { "v": 1, "kid": "<16 hex>", "body": "<JSON text of the message>", "sig": "<base64, 64 bytes>" }
 *                                  └──────────── UTF-8 bytes ───────────┘
 *                                  sig = Ed25519(secretKey, those bytes)   (nacl.sign.detached)
 * ```
 * The body travels as text so the signature covers exactly the bytes that are parsed: no
 * canonical-JSON step, no ambiguity about key order or number formatting.
 *
 * `kid` = the first 16 hex digits (8 bytes) of SHA-256 of the 32-byte Ed25519 public key. It only
 * selects a key; security comes from the signature, so 64 bits are plenty to keep a device's few
 * keys (rotation) apart.
 *
 * Signing and verification run on Node's native Ed25519 (OpenSSL, RFC 8032), which gives the
 * same bytes as `nacl.sign.detached` (Ed25519 signatures are deterministic; a test checks both
 * ways) about a hundred times faster than tweetnacl's pure-JS code — the drain rate of architecture.md §9
 * depends on it. Keys stay in tweetnacl's formats (64-byte secret = seed ‖ public key).
 *
 * The receiver verifies FIRST (key id → pinned/registered key → signature), and only then parses
 * the body as JSON and with the zod schema: nothing unauthenticated reaches JSON.parse of the body.
 */
import {
  type KeyObject,
  createHash,
  createPrivateKey,
  createPublicKey,
  sign,
  verify,
} from 'node:crypto';
import nacl from 'tweetnacl';
import { z } from 'zod';
import { syncError } from './errors.js';
import { fastEnvelope, fastPathOf } from './fast-parse.js';

/** Envelope format version. */
export const ENVELOPE_VERSION = 1;

/** The outer shape of an envelope (strict: unknown keys are refused). */
export const EnvelopeSchema = z.strictObject({
  v: z.literal(ENVELOPE_VERSION),
  kid: z.string().regex(/^[0-9a-f]{16}$/, 'key id: 16 lower-case hex digits'),
  body: z.string(),
  sig: z.base64().length(88),
});
/** {@link EnvelopeSchema}. */
export type Envelope = z.infer<typeof EnvelopeSchema>;

/** Who signs: an Ed25519 secret key (64 bytes, `nacl.sign.keyPair()`), its key id optional. */
export interface EnvelopeSigner {
  /** 16 hex digits; default {@link keyId} of the public half of `secretKey`. */
  kid?: string;
  /** 64-byte Ed25519 secret key as made by tweetnacl (seed ‖ public key). */
  secretKey: Uint8Array;
}

/**
 * The pinned/registered public keys a receiver accepts: a map key id → 32-byte Ed25519 public
 * key, or a lookup function (the cloud core uses one that only answers for the device of the
 * topic, so one device cannot sign for another).
 */
export type PublicKeyLookup =
  ReadonlyMap<string, Uint8Array> | ((kid: string) => Uint8Array | undefined);

/**
 * Key id of an Ed25519 public key: the first 16 hex digits of SHA-256(publicKey).
 *
 * @param publicKey — 32 bytes.
 * @throws AgentError POS315 when the key is not 32 bytes.
 */
export function keyId(publicKey: Uint8Array): string {
  if (publicKey.length !== nacl.sign.publicKeyLength) {
    throw syncError(
      'POS315',
      `Ed25519 public key is ${publicKey.length} bytes, expected ${nacl.sign.publicKeyLength}: pass the publicKey of nacl.sign.keyPair(), not the secret key or a base64 string`,
    );
  }
  return createHash('sha256').update(publicKey).digest('hex').slice(0, 16);
}

/** Key id of the signer (its own `kid`, or derived from the public half of the secret key). */
export function signerKeyId(signer: EnvelopeSigner): string {
  if (signer.kid !== undefined) return signer.kid;
  checkSecretKey(signer.secretKey);
  return keyId(signer.secretKey.subarray(32));
}

function checkSecretKey(secretKey: Uint8Array): void {
  if (secretKey.length !== nacl.sign.secretKeyLength) {
    throw syncError(
      'POS315',
      `Ed25519 secret key is ${secretKey.length} bytes, expected ${nacl.sign.secretKeyLength}: pass the secretKey of nacl.sign.keyPair() (seed ‖ public key)`,
    );
  }
}

const privateKeys = new WeakMap<Uint8Array, KeyObject>();
const publicKeys = new WeakMap<Uint8Array, KeyObject>();

/** Ed25519 signature (64 bytes) of `message` with a tweetnacl-format secret key. */
function ed25519Sign(message: Buffer, secretKey: Uint8Array): Buffer {
  let key = privateKeys.get(secretKey);
  if (key === undefined) {
    key = createPrivateKey({
      format: 'jwk',
      key: {
        kty: 'OKP',
        crv: 'Ed25519',
        d: Buffer.from(secretKey.subarray(0, 32)).toString('base64url'),
        x: Buffer.from(secretKey.subarray(32)).toString('base64url'),
      },
    });
    privateKeys.set(secretKey, key);
  }
  return sign(null, message, key);
}

/** True when `signature` is a valid Ed25519 signature of `message` by the 32-byte `publicKey`. */
function ed25519Verify(message: Buffer, signature: Buffer, publicKey: Uint8Array): boolean {
  let key = publicKeys.get(publicKey);
  if (key === undefined) {
    try {
      key = createPublicKey({
        format: 'jwk',
        key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') },
      });
    } catch {
      return false;
    }
    publicKeys.set(publicKey, key);
  }
  return verify(null, message, key, signature);
}

/**
 * Signs `value` into an envelope and returns its bytes (UTF-8 JSON), ready to publish.
 *
 * When `schema` is given the value is validated first, so a sender can never sign something the
 * receiver will refuse (and an uplink with an unknown key, e.g. a stray PAN, is stopped here).
 *
 * @throws AgentError POS313 when `schema` refuses the value (issues listed); POS315 for a bad key.
 */
export function signEnvelope(value: unknown, signer: EnvelopeSigner, schema?: z.ZodType): Buffer {
  checkSecretKey(signer.secretKey);
  let checked = value;
  if (schema !== undefined) {
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw schemaError(parsed.error, 'outgoing message');
    checked = parsed.data;
  }
  return signBody(JSON.stringify(checked), signer);
}

/**
 * Signs an already serialized body (JSON text) into envelope bytes. The sync worker uses it to
 * pack batches whose exact byte length it computes itself.
 *
 * @throws AgentError POS315 for a bad key.
 */
export function signBody(body: string, signer: EnvelopeSigner): Buffer {
  checkSecretKey(signer.secretKey);
  const sig = ed25519Sign(Buffer.from(body, 'utf8'), signer.secretKey);
  const envelope: Envelope = {
    v: ENVELOPE_VERSION,
    kid: signerKeyId(signer),
    body,
    sig: Buffer.from(sig).toString('base64'),
  };
  return Buffer.from(JSON.stringify(envelope), 'utf8');
}

/**
 * {@link signBody} for a body whose JSON-escaped text (the inside of a JSON string, without the
 * quotes: `JSON.stringify(body).slice(1, -1)`) the caller already has: the same bytes, without
 * escaping the body again. The sync worker packs 128 KiB batches from records it escaped one by
 * one to measure them; escaping is per character, so the pieces joined are the escaped body.
 *
 * @param escapedBody — exactly `JSON.stringify(body).slice(1, -1)`; anything else makes an
 *   envelope whose signature does not verify (the receiver refuses it, POS311).
 * @throws AgentError POS315 for a bad key.
 */
export function signBodyEscaped(body: string, escapedBody: string, signer: EnvelopeSigner): Buffer {
  checkSecretKey(signer.secretKey);
  const sig = ed25519Sign(Buffer.from(body, 'utf8'), signer.secretKey);
  // JSON.stringify of { v, kid, body, sig } writes these bytes, in this order (see signBody).
  const kid = signerKeyId(signer);
  return Buffer.from(
    `{"v":${ENVELOPE_VERSION},"kid":${JSON.stringify(kid)},"body":"${escapedBody}",` +
      `"sig":"${Buffer.from(sig).toString('base64')}"}`,
    'utf8',
  );
}

/**
 * Byte length of the envelope that {@link signBody} makes for a body whose JSON-escaped UTF-8
 * length is `escapedBodyBytes` (see {@link escapedJsonBytes}); exact, without signing.
 */
export function envelopeBytesFor(escapedBodyBytes: number, kid: string): number {
  // {"v":1,"kid":"…","body":"","sig":"<88>"} plus the escaped body inside the quotes.
  return (
    Buffer.byteLength(JSON.stringify({ v: ENVELOPE_VERSION, kid, body: '', sig: 'A'.repeat(88) })) +
    escapedBodyBytes
  );
}

/**
 * UTF-8 byte length of `text` once escaped as the inside of a JSON string (without the quotes).
 * Escaping is per character, so the escaped length of a concatenation is the sum of the parts'.
 */
export function escapedJsonBytes(text: string): number {
  return Buffer.byteLength(JSON.stringify(text), 'utf8') - 2;
}

/**
 * Verifies and parses an envelope.
 *
 * Order: outer JSON and shape → key id lookup → Ed25519 verification over the body's UTF-8
 * bytes → JSON.parse(body) → `schema` (or its fast path, fast-parse.ts, for the shapes it knows).
 *
 * @param payload — the MQTT payload (Buffer or text).
 * @param options.keys — the accepted public keys ({@link PublicKeyLookup}).
 * @param options.maxBytes — refuse larger payloads before parsing (POS314); default no limit.
 * @param schema — the zod schema of the body.
 * @returns the parsed body (zod output: downlink schemas strip unknown keys).
 * @throws AgentError POS310 bad envelope JSON/shape or body not JSON; POS311 bad signature;
 *   POS312 unknown key id; POS313 body fails the schema (issues in the message and in
 *   `details.issues`); POS314 payload larger than `maxBytes`.
 */
export function openEnvelope<S extends z.ZodType>(
  payload: Buffer | Uint8Array | string,
  options: { keys: PublicKeyLookup; maxBytes?: number },
  schema: S,
): z.output<S> {
  const bytes = typeof payload === 'string' ? Buffer.byteLength(payload, 'utf8') : payload.length;
  if (options.maxBytes !== undefined && bytes > options.maxBytes) {
    throw syncError(
      'POS314',
      `Envelope is ${bytes} bytes, over the limit of ${options.maxBytes} bytes: the sender must split it`,
      { details: { bytes, maxBytes: options.maxBytes } },
    );
  }
  const text = typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8');
  let outer: unknown;
  try {
    outer = JSON.parse(text);
  } catch (cause) {
    throw syncError(
      'POS310',
      `Payload of ${bytes} bytes is not JSON: expected a signed envelope { v: 1, kid, body, sig }`,
      { cause },
    );
  }
  const fast = fastEnvelope(outer);
  const envelope =
    fast === undefined ? EnvelopeSchema.safeParse(outer) : { success: true as const, data: fast };
  if (!envelope.success) {
    throw syncError(
      'POS310',
      `Payload is not a signed envelope { v: 1, kid, body, sig }: ${issuesText(envelope.error)}`,
      { details: { issues: envelope.error.issues } },
    );
  }
  const { kid, body, sig } = envelope.data;
  const publicKey = typeof options.keys === 'function' ? options.keys(kid) : options.keys.get(kid);
  if (publicKey === undefined) {
    throw syncError(
      'POS312',
      `Envelope signed with key id ${kid}, which is not pinned for this sender: provision the sender's public key (or check the key rotation)`,
      { details: { kid } },
    );
  }
  if (publicKey.length !== nacl.sign.publicKeyLength) {
    throw syncError(
      'POS315',
      `Pinned public key for key id ${kid} is ${publicKey.length} bytes, expected ${nacl.sign.publicKeyLength}`,
    );
  }
  const sigBytes = Buffer.from(sig, 'base64');
  if (
    sigBytes.length !== nacl.sign.signatureLength ||
    !ed25519Verify(Buffer.from(body, 'utf8'), sigBytes, publicKey)
  ) {
    throw syncError(
      'POS311',
      `Envelope signature does not verify with key id ${kid}: the body was altered or signed with another key; the message is refused`,
      { details: { kid } },
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (cause) {
    throw syncError(
      'POS310',
      `Envelope body (${Buffer.byteLength(body)} bytes, signed by ${kid}) is not JSON text`,
      { cause, details: { kid } },
    );
  }
  // The schema's fast path (fast-parse.ts) answers for the common shape, zod for the rest.
  const quick = fastPathOf(schema)?.(value);
  if (quick !== undefined) return quick as z.output<S>;
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw schemaError(parsed.error, `body signed by ${kid}`);
  return parsed.data;
}

/** One line per zod issue: `path: message`. Never includes input values (they may be card data). */
export function issuesText(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}`)
    .join('; ');
}

function schemaError(error: z.ZodError, what: string) {
  // Issues only carry paths and messages; zod does not put input values in them by default.
  const issues = error.issues.map((i) => ({
    path: i.path.map(String),
    message: i.message,
    code: i.code,
  }));
  return syncError(
    'POS313',
    `The ${what} fails the wire schema (${issues.length} issue${issues.length === 1 ? '' : 's'}): ${issuesText(error)}`,
    { details: { issues } },
  );
}
