/**
 * `pos-agent provision --claim-cert …`: registration by claim (issue 5, AWS IoT fleet provisioning
 * by claim). Writes everything as agent/commands/provision.ts does, with a generated client key
 * and CSR, then asks the cloud over MQTT for the client certificate.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { AgentError } from '../../common/agent-error.js';
import { keyId, openEnvelope, signEnvelope } from '../../cloud-sync/envelope.js';
import { MqttSession } from '../../cloud-sync/mqtt-session.js';
import {
  type ClaimRequest,
  type ClaimResponse,
  ClaimRequestSchema,
  ClaimResponseSchema,
  claimTopics,
  DEFAULT_TOPIC_PREFIX,
} from '../../cloud-sync/schemas.js';
import { loadTerminalKeys } from '../keys.js';
import { provision, type ProvisionOptions, type ProvisionResult } from './provision.js';

/** The claim certificate and registration code for {@link provisionByClaim}. */
export interface ClaimOptions {
  /** PEM file of the fleet's shared claim certificate. */
  certFile: string;
  /** PEM file of the claim certificate's private key. */
  keyFile: string;
  /** The one-time registration code of this terminal. */
  registrationCode: string;
  /** How long to wait for the cloud's answer, ms. Default 15000. */
  timeoutMs?: number;
}

/**
 * Provisions by claim (issue 5, AWS IoT fleet provisioning by claim): validates and writes
 * everything as {@link provision} with a generated client key and CSR, then connects to the
 * broker with the claim certificate (client id = device id), publishes the device's new
 * public key and the CSR signed by the new device key, and waits for the client certificate
 * signed by the fleet CA, in a response signed by the pinned cloud key. The certificate is
 * written to `keys/client.pem` (0600).
 *
 * @throws AgentError POS504 invalid values (nothing written); POS505 when the claim is refused,
 *   not answered within `timeoutMs`, or its answer does not verify — the terminal then holds
 *   its keys and CSR; run again with `--force`, or send the CSR to the cloud team.
 */
export async function provisionByClaim(
  options: ProvisionOptions,
  claim: ClaimOptions,
  now: number = Date.now(),
): Promise<ProvisionResult & { certificateFile: string }> {
  const problems: string[] = [];
  for (const [flag, file] of [
    ['--claim-cert', claim.certFile],
    ['--claim-key', claim.keyFile],
  ] as const)
    if (!existsSync(file)) problems.push(`${flag} ${file}: cannot read (ENOENT)`);
  if (!/^[A-Za-z0-9-]{6,64}$/.test(claim.registrationCode))
    problems.push('--registration-code: use the 6–64 character code from the cloud console');
  if (options.broker?.startsWith('mqtts://') !== true)
    problems.push(
      '--broker: registration by claim needs mqtts:// (mutual TLS with the claim certificate)',
    );
  if (problems.length > 0)
    throw new AgentError(
      'POS504',
      `provisioning refused, nothing was written; ${problems.length} problem(s):\n${problems.map((p, i) => `  ${i + 1}. ${p}`).join('\n')}\n`,
      { details: { problems } },
    );
  const { certFile: _c, keyFile: _k, ...rest } = options;
  const result = provision({ ...rest, generateCsr: true }, now);
  const keys = loadTerminalKeys(result.keysDir);
  const session = new MqttSession({
    url: options.broker as string,
    clientId: result.deviceId,
    clean: true,
    reconnectPeriodMs: 0,
    tls: {
      ca: readFileSync(options.caFile as string),
      cert: readFileSync(claim.certFile),
      key: readFileSync(claim.keyFile),
    },
  });
  const t = claimTopics(DEFAULT_TOPIC_PREFIX, result.deviceId);
  const timeoutMs = claim.timeoutMs ?? 15_000;
  const fail = (why: string, cause?: unknown): AgentError =>
    new AgentError(
      'POS505',
      `registration by claim failed: ${why}; the keys and the CSR ${result.csrFile ?? ''} are written: run provision again with --force, or send the CSR to the cloud team`,
      { cause },
    );
  try {
    const answer = new Promise<ClaimResponse>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(fail(`no answer from the cloud within ${timeoutMs} ms`)),
        timeoutMs,
      );
      session.on('message', (topic, payload) => {
        if (topic !== t.response) return;
        clearTimeout(timer);
        try {
          resolve(
            openEnvelope(
              payload,
              { keys: new Map([[keyId(keys.cloudPublicKey), keys.cloudPublicKey]]) },
              ClaimResponseSchema,
            ),
          );
        } catch (error) {
          reject(fail('the answer does not verify with the pinned cloud key', error));
        }
      });
    });
    answer.catch(() => undefined);
    await session.subscribe(t.response);
    session.connect();
    await session.whenConnected(timeoutMs).catch((error: unknown) => {
      throw fail('cannot connect with the claim certificate', error);
    });
    const request: ClaimRequest = {
      deviceId: result.deviceId,
      tenant: options.tenant as string,
      store: options.store as string,
      registrationCode: claim.registrationCode,
      publicKey: result.publicKey,
      csr: readFileSync(result.csrFile as string, 'utf8'),
      at: new Date(now).toISOString(),
    };
    await session.publish(
      t.request,
      signEnvelope(request, { secretKey: keys.deviceSecretKey }, ClaimRequestSchema),
    );
    const response = await answer;
    if (response.status !== 'accepted' || response.certificate === undefined)
      throw fail(`the cloud refused the claim (${response.reason ?? 'no reason given'})`);
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(response.certificate);
    } catch (error) {
      throw fail('the cloud sent something that is not a certificate', error);
    }
    if (
      !certificate.checkPrivateKey(
        createPrivateKey(readFileSync(path.join(result.keysDir, 'client.key'))),
      )
    )
      throw fail('the certificate does not belong to the generated client key');
    const certificateFile = path.join(result.keysDir, 'client.pem');
    writeFileSync(certificateFile, response.certificate, { mode: 0o600 });
    chmodSync(certificateFile, 0o600);
    return { ...result, certificateFile };
  } finally {
    keys.deviceSecretKey.fill(0);
    keys.tokenKey.fill(0);
    await session.end({ force: true });
  }
}
