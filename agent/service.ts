/**
 * `pos-agent run` and `pos-agent init-dev`.
 */
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { AgentError } from '../common/agent-error.js';
import { startAgent } from './agent.js';
import { CONFIG_DEFAULTS, loadConfig, type AgentConfigInput } from './config.js';
import {
  ensurePrivateDir,
  generateDevelopmentKeys,
  loadTerminalKeys,
  protectTokenKey,
  writeCloudSideKeys,
} from './keys.js';
import { createServiceLogger, type Logger } from './logger.js';
import { redactPanShapedRuns } from '../common/luhn-scan.js';

/**
 * Runs the agent until SIGINT or SIGTERM.
 *
 * @throws AgentError POS501 (config), POS502 (keys), POS517 (token key cannot be wrapped with
 *   the host key), POS2xx (database) before anything starts.
 */
export async function runService(configFile: string): Promise<void> {
  const config = loadConfig(configFile);
  // The token key never lies in the clear beside the tokens (docs/security.md); a development
  // setup (plaintext MQTT, simulator keys) may keep its plain token.key.
  if (!config.broker.development) protectTokenKey(config.keysDir, { dataDir: config.dataDir });
  const keys = loadTerminalKeys(config.keysDir);
  const { logger, target, close: closeLog } = await createServiceLogger(config.log);
  const removeFatalHandler = installFatalHandler(logger);
  const agent = await startAgent({ config, keys, logger });
  // What matters, said once at start (issue 12): where the pad and the broker are, where logs go.
  process.stderr.write(
    `pos-agent ${config.deviceId}: local API on ${agent.apiUrl}; PIN pad ${config.pinPad.path}; broker ${config.broker.url}; logs ${target.kind === 'file' ? `to ${target.file} (rotated)` : target.kind === 'journald' ? 'to journald (stdout)' : 'to stdout'}\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await agent.stop();
  removeFatalHandler();
  await closeLog();
}

/** The process events {@link installFatalHandler} listens to, and how it ends the process. */
export interface FatalTarget {
  on(
    event: 'uncaughtException' | 'unhandledRejection',
    listener: (error: unknown) => void,
  ): unknown;
  off(
    event: 'uncaughtException' | 'unhandledRejection',
    listener: (error: unknown) => void,
  ): unknown;
  exit(code: number): void;
}

/**
 * The last resort (issue 10): an exception or a rejection nothing handled is written to the log
 * — synchronously, the logger's destination is `sync: true`, so the line is on disk before the
 * exit — and to standard error, then the process exits with code 70 (EX_SOFTWARE) for the
 * supervisor (systemd `Restart=on-failure`) to start it again. Without it, Node prints the stack
 * to a stderr nobody reads and `agent.log` never shows why the terminal stopped taking payments.
 *
 * Payments are safe either way: each was committed (synchronous=FULL) before it was answered, and
 * start-up recovers any payment the exit interrupted.
 *
 * @param target — `process` (tests pass a stand-in).
 * @returns a function that removes the handlers again.
 */
export function installFatalHandler(
  logger: Logger,
  target: FatalTarget = process as unknown as FatalTarget,
): () => void {
  const handler =
    (kind: 'uncaughtException' | 'unhandledRejection') =>
    (error: unknown): void => {
      try {
        logger.fatal(
          { err: error, kind, code: (error as { code?: unknown } | undefined)?.code },
          `fatal ${kind}: the agent exits so its supervisor restarts it; stored payments are kept and interrupted ones are recovered at the next start`,
        );
      } catch {
        // The log itself failing must not stop the line to stderr and the exit.
      }
      const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
      process.stderr.write(redactPanShapedRuns(`pos-agent: fatal ${kind}: ${text}\n`));
      target.exit(70);
    };
  const onException = handler('uncaughtException');
  const onRejection = handler('unhandledRejection');
  target.on('uncaughtException', onException);
  target.on('unhandledRejection', onRejection);
  return () => {
    target.off('uncaughtException', onException);
    target.off('unhandledRejection', onRejection);
  };
}

/**
 * Writes a development setup into `dir`: `config.json`, `keys/` (the terminal's keys), `cloud/`
 * (the simulator's secret keys and the device's public key), `data/`. Prints how to start the
 * pieces.
 *
 * @throws AgentError POS503 when `dir` already holds a config.
 */
export function initDev(
  options: { dir: string; deviceId: string; pinpad: string; broker: string; apiPort?: number },
  out: NodeJS.WritableStream,
): void {
  const dir = path.resolve(options.dir);
  const configFile = path.join(dir, 'config.json');
  if (existsSync(configFile)) {
    throw new AgentError(
      'POS503',
      `${configFile} exists already; choose another --dir or delete it`,
    );
  }
  const apiPort = options.apiPort ?? CONFIG_DEFAULTS.api.port;
  ensurePrivateDir(dir);
  const { terminal, cloud } = generateDevelopmentKeys(path.join(dir, 'keys'));
  writeCloudSideKeys(path.join(dir, 'cloud'), {
    ...cloud,
    devicePublicKeys: { [options.deviceId]: terminal.devicePublicKey },
  });
  const config: AgentConfigInput = {
    deviceId: options.deviceId,
    dataDir: 'data',
    keysDir: 'keys',
    pinPad: { path: options.pinpad },
    broker: { url: options.broker, development: options.broker.startsWith('mqtt://') },
    api: { port: apiPort },
    log: { file: 'agent.log' },
  };
  writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  out.write(
    [
      `wrote ${configFile}, ${path.join(dir, 'keys')}/ and ${path.join(dir, 'cloud')}/`,
      'start, each in its own terminal:',
      `  pos-agent sim broker --port ${new URL(options.broker).port || 1883}`,
      `  pos-agent sim cloud --broker ${options.broker} --keys ${path.join(dir, 'cloud')}`,
      `  pos-agent sim pinpad --listen ${options.pinpad}`,
      `  pos-agent run --config ${configFile}`,
      `then: curl -H "Authorization: Bearer $(cat ${path.join(dir, 'keys', 'api.token')})" -H 'Content-Type: application/json' \\`,
      // Required (400 POS406 without): one new key per payment, the same on every retry of it.
      `        -H "Idempotency-Key: $(cat /proc/sys/kernel/random/uuid)" \\`,
      `        -d '{"amount":1250,"currency":"EUR"}' http://127.0.0.1:${apiPort}/v1/payments`,
      `status page: pos-agent open --config ${configFile}   (prints a one-time login link)`,
      '',
    ].join('\n'),
  );
}
