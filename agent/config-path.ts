/**
 * Which config file a command uses (issue 12): `--config FILE`, else the `POS_AGENT_CONFIG`
 * environment variable, else {@link DEFAULT_CONFIG_FILE}, where the Debian package and
 * `pos-agent provision` put it. So no command needs `--config` on an installed terminal, and the
 * command says which file it took when it was not given on the command line.
 */
import path from 'node:path';

/** The config file of an installed terminal (the Debian package's `/etc/pos-agent/`). */
export const DEFAULT_CONFIG_FILE = '/etc/pos-agent/config.json';

/** The environment variable that names the config file when `--config` is not given. */
export const CONFIG_ENV = 'POS_AGENT_CONFIG';

/** A resolved config path and where it came from. */
export interface ConfigPath {
  /** Absolute path of the config file. */
  file: string;
  /** `flag` (--config), `env` (POS_AGENT_CONFIG) or `default` ({@link DEFAULT_CONFIG_FILE}). */
  source: 'flag' | 'env' | 'default';
}

/**
 * Resolves the config file: the flag wins, then a non-empty `POS_AGENT_CONFIG`, then the default.
 *
 * @param flag — the value of `--config`, if given.
 * @param env — the environment (`process.env`); injected for tests.
 */
export function resolveConfigPath(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): ConfigPath {
  if (flag !== undefined && flag !== '') return { file: path.resolve(flag), source: 'flag' };
  const fromEnv = env[CONFIG_ENV];
  if (fromEnv !== undefined && fromEnv !== '')
    return { file: path.resolve(fromEnv), source: 'env' };
  return { file: DEFAULT_CONFIG_FILE, source: 'default' };
}

/**
 * The sentence that says which config was taken, e.g.
 * `config /etc/pos-agent/config.json (the default; --config FILE or POS_AGENT_CONFIG choose another)`;
 * `undefined` when it was given with `--config` (the user said it already).
 */
export function describeConfigPath(resolved: ConfigPath): string | undefined {
  if (resolved.source === 'flag') return undefined;
  return resolved.source === 'env'
    ? `config ${resolved.file} (from ${CONFIG_ENV})`
    : `config ${resolved.file} (the default; --config FILE or ${CONFIG_ENV} choose another)`;
}
