/**
 * The agent's version, from package.json: reported in status messages and by `pos-agent
 * --version`. A module of its own (no imports but node:fs) so that `--version` and `--help` do not
 * load the agent, SQLite or the serial native modules (issue 15).
 */
import { readFileSync } from 'node:fs';

/**
 * The version string of package.json (`0.1.0`), or `0.0.0-unknown` when no package.json of this
 * project is found. The file is one folder up from the sources (`agent/`) and two from the build
 * (`dist/agent/`).
 */
export const AGENT_VERSION: string = (() => {
  for (const relative of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'pos-edge-agent' && pkg.version !== undefined) return pkg.version;
    } catch {
      // try the next candidate
    }
  }
  return '0.0.0-unknown';
})();
