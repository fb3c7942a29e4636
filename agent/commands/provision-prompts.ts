/**
 * Interactive `pos-agent provision` (stdin is a TTY and `--non-interactive` is not given): every
 * value not given as a flag is asked for, with a default where one makes sense, and each answer is
 * checked as it is typed (@inquirer/input), by the same checks as agent/commands/provision.ts.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import input from '@inquirer/input';
import { AgentConfigSchema } from '../config.js';
import { DEFAULT_PIN_PAD, ID, readCert, readKeyFile, type ProvisionOptions } from './provision.js';

/** One question of interactive mode. */
export interface ProvisionQuestion {
  /** The option it fills. */
  key: keyof ProvisionOptions;
  /** The prompt text. */
  text: string;
  default?: string;
  /**
   * Checks one typed answer against the answers so far: `true`, or the reason it is refused
   * (shown under the prompt; the answer is typed again). An empty answer for the client
   * certificate means "generate a CSR".
   */
  validate: (value: string, answers: ProvisionOptions) => true | string;
}

/** The first problem a check pushed, or `true`. */
const firstProblem = (check: (problems: string[]) => void): true | string => {
  const problems: string[] = [];
  check(problems);
  return problems[0]?.replace(/^--[\w-]+ /, '') ?? true;
};
const fileThere = (value: string): true | string =>
  value === '' ? 'give a file path' : existsSync(value) ? true : `${value}: no such file`;

/** The prompts of interactive mode, in order, with defaults and the check of each answer. */
export const PROVISION_QUESTIONS: readonly ProvisionQuestion[] = [
  {
    key: 'deviceId',
    text: 'Device id (e.g. store-0042-lane-3)',
    validate: (v) =>
      /^[a-z0-9][a-z0-9-]{2,63}$/.test(v) ||
      'use 3–64 characters of a–z, 0–9 and -, e.g. store-0042-lane-3',
  },
  {
    key: 'tenant',
    text: 'Tenant id',
    validate: (v) => ID.test(v) || 'use 1–64 characters of a–z, 0–9 and -',
  },
  {
    key: 'store',
    text: 'Store id',
    validate: (v) => ID.test(v) || 'use 1–64 characters of a–z, 0–9 and -',
  },
  {
    key: 'broker',
    text: 'Broker URL',
    default: 'mqtts://broker.example:8883',
    validate: (v, a) =>
      !/^mqtts?:\/\/[^/\s]+(:\d{1,5})?\/?$/.test(v)
        ? 'not a broker URL: give mqtts://host:8883'
        : v.startsWith('mqtt://') && a.development !== true
          ? 'plaintext mqtt:// is refused: use mqtts:// (mutual TLS), or start again with --development'
          : true,
  },
  {
    key: 'pinPad',
    text: 'PIN pad path (pos-agent devices lists them)',
    default: DEFAULT_PIN_PAD,
    validate: (v) =>
      AgentConfigSchema.shape.pinPad.safeParse({ path: v }).success ||
      'must be a serial device path (/dev/pos/pinpad, /dev/serial/by-id/…), tcp://host:port or mock://name',
  },
  {
    key: 'caFile',
    text: 'Broker CA certificate file (PEM)',
    default: 'broker-ca.pem',
    validate: (v) => {
      const there = fileThere(v);
      return there === true ? firstProblem((p) => readCert(v, '--ca', p)) : there;
    },
  },
  {
    key: 'certFile',
    text: 'Client certificate file (PEM; empty = generate a key and a CSR)',
    validate: (v, a) => {
      if (v === '') return true;
      const there = fileThere(v);
      if (there !== true) return there;
      return firstProblem((p) => {
        const cert = readCert(v, '--cert', p);
        const cn = cert === undefined ? undefined : /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
        if (cert !== undefined && a.deviceId !== undefined && cn !== a.deviceId)
          p.push(`its subject CN is "${cn ?? ''}", not the device id "${a.deviceId}"`);
      });
    },
  },
  {
    key: 'keyFile',
    text: 'Client key file (PEM)',
    default: 'client.key',
    validate: (v, a) => {
      const there = fileThere(v);
      if (there !== true) return there;
      try {
        const key = createPrivateKey(readFileSync(v));
        if (
          a.certFile !== undefined &&
          !new X509Certificate(readFileSync(a.certFile)).checkPrivateKey(key)
        )
          return 'does not belong to the client certificate given above';
        return true;
      } catch {
        return 'not a PEM private key';
      }
    },
  },
  {
    key: 'cloudKeyFile',
    text: 'Cloud signing public key file',
    default: 'cloud-signing.pub',
    validate: (v) => firstProblem((p) => readKeyFile(v, '--cloud-key', 32, p)),
  },
  {
    key: 'vaultKeyFile',
    text: 'Vault public key file',
    default: 'vault.pub',
    validate: (v) => firstProblem((p) => readKeyFile(v, '--vault-key', 32, p)),
  },
  {
    key: 'tokenKeyFile',
    text: 'Tenant token key file',
    default: 'token.key',
    validate: (v) => firstProblem((p) => readKeyFile(v, '--token-key', 32, p)),
  },
];

/**
 * Asks one question; resolves with the accepted answer (`''` for an empty one). The default
 * implementation is @inquirer/input on the given streams; tests may pass their own.
 */
export type AskQuestion = (question: {
  message: string;
  default?: string;
  validate: (value: string) => true | string;
}) => Promise<string>;

/**
 * Asks for every value not given in `options` (a TTY session), with defaults, and checks each
 * answer as it is typed (see {@link PROVISION_QUESTIONS}). An empty client certificate answer
 * switches to `generateCsr`.
 *
 * @param ask — how a question is asked; default @inquirer/input on `input`/`output`.
 */
export async function promptMissing(
  options: ProvisionOptions,
  inputStream: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  ask?: AskQuestion,
): Promise<ProvisionOptions> {
  const askOne: AskQuestion =
    ask ??
    ((q) =>
      input(
        {
          message: q.message,
          ...(q.default !== undefined ? { default: q.default } : {}),
          validate: q.validate,
        },
        { input: inputStream, output },
      ));
  const answers: ProvisionOptions = { ...options };
  for (const q of PROVISION_QUESTIONS) {
    if (answers[q.key] !== undefined) continue;
    if (q.key === 'keyFile' && answers.generateCsr === true) continue;
    if (q.key === 'certFile' && answers.generateCsr === true) continue;
    const mqtts = answers.broker?.startsWith('mqtts://') !== false;
    if (!mqtts && (q.key === 'caFile' || q.key === 'certFile' || q.key === 'keyFile')) continue;
    const answer = (
      await askOne({
        message: q.text,
        ...(q.default !== undefined ? { default: q.default } : {}),
        validate: (value) => q.validate(value.trim(), answers),
      })
    ).trim();
    const value = answer === '' ? q.default : answer;
    if (q.key === 'certFile' && value === undefined) answers.generateCsr = true;
    else if (value !== undefined) (answers as unknown as Record<string, unknown>)[q.key] = value;
  }
  return answers;
}
