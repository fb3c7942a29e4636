/**
 * `pos-agent doctor`: the broker check — plaintext or TLS, reachable, the handshake with the
 * pinned CA and the client certificate, and the certificates' validity.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { type AgentConfig } from '../config.js';
import type { DoctorFinding } from './doctor-finding.js';
import { tcpProbe } from './tcp-probe.js';

const DAY_MS = 86_400_000;

/**
 * Adds the findings of one certificate's validity window (X.509 `notBefore` / `notAfter`, as
 * node:crypto prints them): expired or not yet valid → a POS516 problem, expiring within 30 days
 * → a POS516 warning, else an ok line. `now` is epoch ms.
 */
export function certExpiry(
  what: string,
  validFrom: string,
  validTo: string,
  subject: string,
  now: number,
  add: (f: DoctorFinding) => void,
): void {
  const to = Date.parse(validTo);
  const from = Date.parse(validFrom);
  const days = Math.floor((to - now) / DAY_MS);
  if (to <= now)
    add({
      check: 'broker',
      level: 'problem',
      code: 'POS516',
      message: `${what} (${subject}) expired on ${new Date(to).toISOString()}`,
      fix:
        what === 'client certificate'
          ? 'get a new client certificate from the cloud team and provision again (pos-agent provision --force), or renew it with a new CSR'
          : 'the broker operator must renew the broker certificate',
    });
  else if (from > now)
    add({
      check: 'broker',
      level: 'problem',
      code: 'POS516',
      message: `${what} (${subject}) is not valid before ${new Date(from).toISOString()}`,
      fix: 'the terminal clock is probably behind: enable NTP (timedatectl set-ntp true)',
    });
  else if (days < 30)
    add({
      check: 'broker',
      level: 'warn',
      code: 'POS516',
      message: `${what} (${subject}) expires in ${days} day(s), on ${new Date(to).toISOString()}`,
      fix:
        what === 'client certificate'
          ? 'renew the client certificate before it expires'
          : 'ask the broker operator to renew',
    });
  else
    add({
      check: 'broker',
      level: 'ok',
      message: `${what} ${subject}, valid until ${new Date(to).toISOString()}`,
    });
}

/**
 * The broker check of `pos-agent doctor`: the URL's scheme (plaintext `mqtt://` is a POS514 warning), a
 * TCP connect within `timeoutMs` (POS301 when nothing answers), and for `mqtts://` the CA,
 * client certificate and key files (POS502 when one is unreadable) with their validity
 * ({@link certExpiry}). Findings go to `add`; never throws.
 */
export async function checkBroker(
  config: AgentConfig,
  now: number,
  timeoutMs: number,
  add: (f: DoctorFinding) => void,
): Promise<void> {
  const url = new URL(config.broker.url);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const tls = url.protocol === 'mqtts:';
  const port = Number(url.port || (tls ? 8883 : 1883));
  if (!tls) {
    add({
      check: 'broker',
      level: 'warn',
      code: 'POS514',
      message: `plaintext ${config.broker.url} (development setup)`,
      fix: 'production terminals use mqtts:// with mutual TLS (pos-agent provision)',
    });
    const error = await tcpProbe(host, port, timeoutMs);
    if (error !== undefined)
      add({
        check: 'broker',
        level: 'problem',
        code: 'POS301',
        message: `broker ${config.broker.url} unreachable: ${(error as NodeJS.ErrnoException).code ?? error.message}`,
        fix: 'check the network, the broker URL in the config, and that the broker runs',
      });
    else
      add({
        check: 'broker',
        level: 'ok',
        message: `broker ${config.broker.url} accepts connections`,
      });
    return;
  }
  let ca: Buffer, cert: Buffer, key: Buffer;
  try {
    ca = readFileSync(config.broker.caFile as string);
    cert = readFileSync(config.broker.certFile as string);
    key = readFileSync(config.broker.keyFile as string);
  } catch (error) {
    add({
      check: 'broker',
      level: 'problem',
      code: 'POS502',
      message: `a TLS file cannot be read: ${(error as NodeJS.ErrnoException).code ?? 'error'} (${(error as NodeJS.ErrnoException).path ?? ''})`,
      fix: 'provision again with --ca, --cert and --key, or correct the paths in the config',
    });
    return;
  }
  try {
    const own = new X509Certificate(cert);
    certExpiry(
      'client certificate',
      own.validFrom,
      own.validTo,
      own.subject.replace(/\n/g, ', '),
      now,
      add,
    );
  } catch {
    add({
      check: 'broker',
      level: 'problem',
      code: 'POS502',
      message: `${config.broker.certFile ?? ''} is not a PEM certificate`,
      fix: 'provision again with the right --cert',
    });
  }
  const result = await new Promise<{ peer?: PeerCertificate; error?: Error }>((resolve) => {
    const servername = /^[\d.]+$|:/.test(host) ? undefined : host;
    const socket = tlsConnect({
      host,
      port,
      ca,
      cert,
      key,
      ...(servername !== undefined ? { servername } : {}),
      timeout: timeoutMs,
    });
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate();
      socket.destroy();
      resolve({ peer });
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve({ error: new Error(`no answer within ${timeoutMs} ms`) });
    });
    socket.once('error', (error) => resolve({ error }));
  });
  if (result.error !== undefined) {
    const code = (result.error as NodeJS.ErrnoException).code ?? '';
    const network = [
      'ECONNREFUSED',
      'ENOTFOUND',
      'EHOSTUNREACH',
      'ETIMEDOUT',
      'ECONNRESET',
      '',
    ].includes(code);
    add({
      check: 'broker',
      level: 'problem',
      code: network ? 'POS301' : 'POS515',
      message: `${network ? 'broker unreachable' : 'TLS handshake failed'} at ${config.broker.url}: ${code || result.error.message}`,
      fix: network
        ? 'check the network, the broker URL in the config, and that the broker runs'
        : 'the broker certificate must be issued by the pinned CA (broker.caFile) for this host name; check both with the cloud team',
    });
    return;
  }
  const peer = result.peer;
  if (peer !== undefined && peer.valid_to !== undefined) {
    const subject = Object.entries(peer.subject ?? {})
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(', ');
    certExpiry('broker certificate', peer.valid_from, peer.valid_to, subject, now, add);
  }
  add({
    check: 'broker',
    level: 'ok',
    message: `TLS handshake with ${config.broker.url} succeeded (mutual TLS, pinned CA)`,
  });
}
