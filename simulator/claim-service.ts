/**
 * The cloud side of registration by claim (issue 5), for tests and the simulator. AWS IoT fleet
 * provisioning by claim and Stripe's reader registration codes are the models.
 *
 * ```
 * terminal (claim certificate, client id = device id)          ClaimService (cloud identity)
 *   ── {p}/claims/{d}/request  ClaimRequest, signed by the NEW device key ──►
 *        checks: topic device id = body device id; signature by the key in the body
 *        (proof of possession); registration code known, unused, issued for this tenant/store;
 *        CSR subject CN = device id
 *        signs the CSR with the fleet CA (openssl x509 -req), registers the public key
 *   ◄── {p}/claims/{d}/response ClaimResponse (certificate), signed by the cloud key ──
 * ```
 * A registration code is spent by its first successful claim, so a replayed request (or a
 * second terminal with the same code) is refused.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isAgentError } from '../common/agent-error.js';
import { type EnvelopeSigner, keyId, openEnvelope, signEnvelope } from '../cloud-sync/envelope.js';
import { MqttSession } from '../cloud-sync/mqtt-session.js';
import {
  type ClaimRequest,
  type ClaimResponse,
  ClaimRequestSchema,
  ClaimResponseSchema,
  DEFAULT_TOPIC_PREFIX,
  claimTopics,
} from '../cloud-sync/schemas.js';

/** A registration code the tenant got for one terminal. */
export interface RegistrationCode {
  tenant: string;
  store: string;
}

/** Options of {@link ClaimService.start}. */
export interface ClaimServiceOptions {
  /** Broker URL of the cloud's identity (may carry user:password). */
  brokerUrl: string;
  topicPrefix?: string;
  clientId?: string;
  /** The cloud key that signs responses (terminals pin its public key). */
  signer: EnvelopeSigner;
  /** Fleet CA certificate and key (PEM files) that sign the client certificates. */
  ca: { cert: string; key: string };
  /** Validity of issued certificates, days. Default 365. */
  certificateDays?: number;
  /** Registration codes → where the terminal belongs. */
  codes: Map<string, RegistrationCode>;
  /** Called for each accepted claim, e.g. CloudCore.registerDevice. */
  onRegistered?: (deviceId: string, publicKey: Uint8Array) => void;
  /** Called for each refused claim with the reason sent back (`pos-agent sim claim` prints it). */
  onRejected?: (deviceId: string, reason: string) => void;
}

/** The claim service; see the file header. */
export class ClaimService {
  #session: MqttSession;
  #o: ClaimServiceOptions;
  #prefix: string;
  readonly accepted: string[] = [];
  readonly rejected: Array<{ deviceId: string; reason: string }> = [];

  private constructor(options: ClaimServiceOptions) {
    this.#o = options;
    this.#prefix = options.topicPrefix ?? DEFAULT_TOPIC_PREFIX;
    this.#session = new MqttSession({
      url: options.brokerUrl,
      clientId: options.clientId ?? 'claim-service-sim',
      clean: true,
      reconnectPeriodMs: 500,
    });
    this.#session.on('message', (topic, payload) => void this.#handle(topic, payload));
  }

  /**
   * Connects, subscribes `{p}/claims/+/request` and waits for the first CONNACK.
   *
   * @throws AgentError POS301 when the broker is not reachable.
   */
  static async start(options: ClaimServiceOptions): Promise<ClaimService> {
    const service = new ClaimService(options);
    await service.#session.subscribe(`${service.#prefix}/claims/+/request`);
    service.#session.connect();
    await service.#session.whenConnected();
    return service;
  }

  /** Disconnects from the broker; claims arriving afterwards are not answered. */
  async stop(): Promise<void> {
    await this.#session.end();
  }

  async #handle(topic: string, payload: Buffer): Promise<void> {
    const deviceId = topic.slice(this.#prefix.length + '/claims/'.length).split('/')[0] ?? '';
    let response: ClaimResponse;
    try {
      const request = this.#verify(deviceId, payload);
      const certificate = this.#sign(request);
      this.#o.codes.delete(request.registrationCode);
      const publicKey = new Uint8Array(Buffer.from(request.publicKey, 'base64'));
      this.#o.onRegistered?.(request.deviceId, publicKey);
      this.accepted.push(request.deviceId);
      response = { deviceId, status: 'accepted', certificate };
    } catch (error) {
      const reason = isAgentError(error) ? error.reason : (error as Error).message;
      this.rejected.push({ deviceId, reason });
      this.#o.onRejected?.(deviceId, reason);
      response = { deviceId, status: 'rejected', reason: reason.slice(0, 512) };
    }
    let responseTopic: string;
    try {
      responseTopic = claimTopics(this.#prefix, deviceId).response;
    } catch {
      return;
    }
    await this.#session
      .publish(responseTopic, signEnvelope(response, this.#o.signer, ClaimResponseSchema))
      .catch(() => undefined);
  }

  #verify(deviceId: string, payload: Buffer): ClaimRequest {
    // Proof of possession: the request is signed by the key it announces, so the key in the body
    // selects the verifying key; the signature is still checked before the body is trusted.
    let announced: Uint8Array | undefined;
    try {
      const outer = JSON.parse(payload.toString('utf8')) as { body?: unknown };
      const body = JSON.parse(String(outer.body)) as { publicKey?: unknown };
      if (typeof body.publicKey === 'string')
        announced = new Uint8Array(Buffer.from(body.publicKey, 'base64'));
    } catch {
      // openEnvelope below names the problem
    }
    const keys = new Map<string, Uint8Array>();
    if (announced !== undefined && announced.length === 32) keys.set(keyId(announced), announced);
    const request = openEnvelope(payload, { keys, maxBytes: 32_768 }, ClaimRequestSchema);
    if (request.deviceId !== deviceId)
      throw new Error(`the request names ${request.deviceId} but came on the topic of ${deviceId}`);
    const code = this.#o.codes.get(request.registrationCode);
    if (code === undefined)
      throw new Error('unknown or already used registration code; ask for a new one');
    if (code.tenant !== request.tenant || code.store !== request.store)
      throw new Error('the registration code was issued for another tenant or store');
    return request;
  }

  #sign(request: ClaimRequest): string {
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-claim-'));
    try {
      const csr = path.join(dir, 'device.csr');
      const out = path.join(dir, 'device.pem');
      const ext = path.join(dir, 'device.ext');
      writeFileSync(csr, request.csr);
      writeFileSync(ext, 'extendedKeyUsage=clientAuth\n');
      const subject = execFileSync(
        'openssl',
        ['req', '-in', csr, '-noout', '-subject', '-verify'],
        {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        },
      );
      const cn = /CN\s*=\s*([^,/\n]+)/.exec(subject)?.[1]?.trim();
      if (cn !== request.deviceId)
        throw new Error(
          `the CSR is for CN=${cn ?? '?'}, not for the device id ${request.deviceId}`,
        );
      execFileSync(
        'openssl',
        [
          'x509',
          '-req',
          '-in',
          csr,
          '-CA',
          this.#o.ca.cert,
          '-CAkey',
          this.#o.ca.key,
          '-CAcreateserial',
          '-CAserial',
          path.join(dir, 'ca.srl'),
          '-days',
          String(this.#o.certificateDays ?? 365),
          '-extfile',
          ext,
          '-out',
          out,
        ],
        { stdio: 'ignore' },
      );
      return readFileSync(out, 'utf8');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
