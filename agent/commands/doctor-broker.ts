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

/** The TLS files of a terminal's broker login, read once for every node. */
interface TlsFiles {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/**
 * The broker check of `pos-agent doctor`, for every node of `broker.urls` (a cluster; one node when
 * the config gives `broker.url`):
 *
 * - plaintext `mqtt://` nodes → one POS514 warning naming them;
 * - for `mqtts://`: the CA, client certificate and key files are read once (POS502 when one is
 *   unreadable) and the client certificate's validity is checked once ({@link certExpiry});
 * - each node: a TCP connect (plaintext) or a mutual-TLS handshake with the pinned CA (`mqtts://`)
 *   within `timeoutMs`, and the node's own certificate validity.
 *
 * A node that does not answer is a POS301 **problem** when no node answers (the terminal cannot
 * forward), and a POS301 **warning** when another node answers (the agent fails over to it, but
 * the cluster has lost redundancy). A failed TLS handshake (POS515) is always a problem: that node
 * would refuse the terminal after a failover. Findings go to `add`; never throws.
 */
export async function checkBroker(
  config: AgentConfig,
  now: number,
  timeoutMs: number,
  add: (f: DoctorFinding) => void,
): Promise<void> {
  const urls =
    config.broker.urls !== undefined && config.broker.urls.length > 0
      ? config.broker.urls
      : [config.broker.url];
  const plaintext = urls.filter((u) => new URL(u).protocol !== 'mqtts:');
  if (plaintext.length > 0)
    add({
      check: 'broker',
      level: 'warn',
      code: 'POS514',
      message: `plaintext ${plaintext.join(', ')} (development setup)`,
      fix: 'production terminals use mqtts:// with mutual TLS (pos-agent provision)',
    });
  let files: TlsFiles | undefined;
  if (plaintext.length < urls.length) {
    files = readTlsFiles(config, add);
    if (files !== undefined) checkClientCertificate(config, files.cert, now, add);
  }
  const nodes = await Promise.all(
    urls.map((url) => checkNode(url, files, now, timeoutMs, urls.length)),
  );
  const anyUp = nodes.some((n) => n.reachable);
  for (const node of nodes)
    for (const finding of node.findings)
      add(
        finding.code === 'POS301' && anyUp
          ? {
              ...finding,
              level: 'warn',
              fix: 'the agent fails over to the nodes that answer, but the cluster has lost a node: check that node, the network to it, and its URL in broker.urls',
            }
          : finding,
      );
}

/** Reads the CA, client certificate and key (POS502 problem when one cannot be read). */
function readTlsFiles(config: AgentConfig, add: (f: DoctorFinding) => void): TlsFiles | undefined {
  try {
    return {
      ca: readFileSync(config.broker.caFile as string),
      cert: readFileSync(config.broker.certFile as string),
      key: readFileSync(config.broker.keyFile as string),
    };
  } catch (error) {
    add({
      check: 'broker',
      level: 'problem',
      code: 'POS502',
      message: `a TLS file cannot be read: ${(error as NodeJS.ErrnoException).code ?? 'error'} (${(error as NodeJS.ErrnoException).path ?? ''})`,
      fix: 'provision again with --ca, --cert and --key, or correct the paths in the config',
    });
    return undefined;
  }
}

/** The client certificate's validity (POS516) or POS502 when it is not a PEM certificate. */
function checkClientCertificate(
  config: AgentConfig,
  cert: Buffer,
  now: number,
  add: (f: DoctorFinding) => void,
): void {
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
}

/**
 * One node: reachable (plaintext TCP connect, or the mutual-TLS handshake) and its findings. A
 * `mqtts://` node is skipped (no findings, not reachable) when the TLS files could not be read.
 */
async function checkNode(
  url: string,
  files: TlsFiles | undefined,
  now: number,
  timeoutMs: number,
  nodeCount: number,
): Promise<{ reachable: boolean; findings: DoctorFinding[] }> {
  const findings: DoctorFinding[] = [];
  const add = (f: DoctorFinding): void => void findings.push(f);
  const parsed = new URL(url);
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  const tls = parsed.protocol === 'mqtts:';
  const port = Number(parsed.port || (tls ? 8883 : 1883));
  const name = nodeCount > 1 ? 'broker node' : 'broker';
  const unreachable = (detail: string): void =>
    add({
      check: 'broker',
      level: 'problem',
      code: 'POS301',
      message: `${name} unreachable at ${url}: ${detail}`,
      fix: 'check the network, the broker URL in the config, and that the broker runs',
    });
  if (!tls) {
    const error = await tcpProbe(host, port, timeoutMs);
    if (error !== undefined) {
      unreachable((error as NodeJS.ErrnoException).code ?? error.message);
      return { reachable: false, findings };
    }
    add({ check: 'broker', level: 'ok', message: `${name} ${url} accepts connections` });
    return { reachable: true, findings };
  }
  if (files === undefined) return { reachable: false, findings };
  const result = await new Promise<{ peer?: PeerCertificate; error?: Error }>((resolve) => {
    const servername = /^[\d.]+$|:/.test(host) ? undefined : host;
    const socket = tlsConnect({
      host,
      port,
      ca: files.ca,
      cert: files.cert,
      key: files.key,
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
    if (network) unreachable(code || result.error.message);
    else
      add({
        check: 'broker',
        level: 'problem',
        code: 'POS515',
        message: `TLS handshake failed at ${url}: ${code || result.error.message}`,
        fix: 'the broker certificate must be issued by the pinned CA (broker.caFile) for this host name; check both with the cloud team',
      });
    return { reachable: false, findings };
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
    message: `TLS handshake with ${url} succeeded (mutual TLS, pinned CA)`,
  });
  return { reachable: true, findings };
}
