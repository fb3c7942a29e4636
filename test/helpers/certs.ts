/**
 * Test certificates made with the openssl command line (a well-kept tool, STYLE §10): a CA, a
 * broker (server) certificate for 127.0.0.1/localhost, and client certificates whose CN is the
 * MQTT identity (Mosquitto's `use_identity_as_username true`).
 *
 * When openssl is missing, {@link opensslAvailable} is false and tests skip with
 * {@link OPENSSL_SKIP_REASON}.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

/** Why TLS tests were skipped. */
export const OPENSSL_SKIP_REASON =
  'openssl not found on PATH: install it (apt-get install openssl) to run the mutual TLS tests';

/** True when the openssl binary runs. */
export function opensslAvailable(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A certificate and its key, as file paths. */
export interface CertFiles {
  cert: string;
  key: string;
}

/** A test CA in `dir`. */
export interface TestCa extends CertFiles {
  dir: string;
  /**
   * Issues a certificate signed by this CA.
   *
   * @param name — file stem and CN.
   * @param options.days — validity in days from now (default 30); negative start via `expired`.
   * @param options.server — add subjectAltName 127.0.0.1 / localhost and serverAuth.
   * @param options.expired — valid from 2 days ago to 1 day ago.
   */
  issue(name: string, options?: { days?: number; server?: boolean; expired?: boolean }): CertFiles;
  /** Signs an existing CSR (PEM file) with CN taken from it. */
  signCsr(csrFile: string, name: string, days?: number): string;
}

/**
 * Creates a CA (P-256, self-signed, 30 days) in `dir`.
 *
 * @throws Error when openssl fails.
 */
export function createTestCa(dir: string, cn = 'pos-test-ca'): TestCa {
  const key = path.join(dir, 'ca.key');
  const cert = path.join(dir, 'ca.pem');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key], dir);
  openssl(
    ['req', '-x509', '-new', '-key', key, '-subj', `/CN=${cn}`, '-days', '30', '-out', cert],
    dir,
  );
  const sign = (
    csr: string,
    out: string,
    extFile: string,
    options: { days?: number; expired?: boolean },
  ): void => {
    if (options.expired === true) {
      // `openssl x509 -req` cannot set a start date; `openssl ca` can, with a throwaway database.
      const db = path.join(dir, `index-${path.basename(out)}.txt`);
      writeFileSync(db, '');
      const conf = path.join(dir, `ca-${path.basename(out)}.cnf`);
      writeFileSync(
        conf,
        [
          '[ca]',
          'default_ca = test',
          '[test]',
          `database = ${db}`,
          `new_certs_dir = ${dir}`,
          `certificate = ${cert}`,
          `private_key = ${key}`,
          'default_md = sha256',
          'policy = any',
          'rand_serial = yes',
          'copy_extensions = none',
          '[any]',
          'commonName = supplied',
          '',
        ].join('\n'),
      );
      const ymd = (offsetDays: number): string =>
        `${new Date(Date.now() + offsetDays * 86_400_000)
          .toISOString()
          .replace(/[-:T]/g, '')
          .slice(2, 14)}Z`;
      openssl(
        [
          'ca',
          '-batch',
          '-config',
          conf,
          '-in',
          csr,
          '-out',
          out,
          '-startdate',
          ymd(-2),
          '-enddate',
          ymd(-1),
          '-notext',
          '-extfile',
          extFile,
        ],
        dir,
      );
      return;
    }
    openssl(
      [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        cert,
        '-CAkey',
        key,
        '-CAcreateserial',
        '-days',
        String(options.days ?? 30),
        '-extfile',
        extFile,
        '-out',
        out,
      ],
      dir,
    );
  };
  return {
    dir,
    cert,
    key,
    issue(name, options = {}) {
      const k = path.join(dir, `${name}.key`);
      const csr = path.join(dir, `${name}.csr`);
      const c = path.join(dir, `${name}.pem`);
      const ext = path.join(dir, `${name}.ext`);
      writeFileSync(
        ext,
        options.server === true
          ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n'
          : 'extendedKeyUsage=clientAuth\n',
      );
      openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', k], dir);
      openssl(['req', '-new', '-key', k, '-subj', `/CN=${name}`, '-out', csr], dir);
      sign(csr, c, ext, options);
      return { cert: c, key: k };
    },
    signCsr(csrFile, name, days = 30) {
      const ext = path.join(dir, `${name}.ext`);
      writeFileSync(ext, 'extendedKeyUsage=clientAuth\n');
      const out = path.join(dir, `${name}.pem`);
      sign(csrFile, out, ext, { days });
      return out;
    },
  };
}
