/**
 * `pos-agent open [--config FILE]`: prints a one-time login link for the terminal status page
 * (issue 13). It asks the running agent (`POST /v1/login-codes`, with the bearer token from the
 * keys directory) for a code that works once within 60 s; opening the link in the terminal's
 * browser exchanges it for an HttpOnly, SameSite=Strict session cookie (agent/web-auth.ts). The
 * bearer token itself never goes into a URL, a page or a script.
 *
 * ```
 * $ pos-agent open --config /etc/pos-agent/config.json
 * status page: http://127.0.0.1:7420/login?code=3q2…  (works once, until 10:00:59 UTC)
 * ```
 *
 * Errors: POS440 the agent does not answer (not running, other port); POS441 the API listens on
 * a UNIX socket only, which a browser cannot open; POS5xx config and keys (agent/config.ts,
 * agent/keys.ts).
 */
import { AgentError } from '../../common/agent-error.js';
import { LoginCodeSchema } from '../api-schemas.js';
import { loadConfig } from '../config.js';
import { loadTerminalKeys } from '../keys.js';

/**
 * Asks the agent at `apiUrl` for a one-time login link.
 *
 * @throws AgentError POS440 when the agent does not answer or refuses (the message says which).
 */
export async function requestLoginLink(
  apiUrl: string,
  apiToken: string,
): Promise<{ url: string; expiresAt: string }> {
  let response: Response;
  try {
    response = await fetch(`${apiUrl}/v1/login-codes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiToken}` },
    });
  } catch (cause) {
    throw new AgentError(
      'POS440',
      `the agent does not answer at ${apiUrl}; start it ("pos-agent run --config FILE") or check api.host and api.port in the config`,
      { cause },
    );
  }
  const json = (await response.json().catch(() => ({}))) as unknown;
  const link = LoginCodeSchema.safeParse(json);
  if (response.status !== 201 || !link.success) {
    const error = (json as { error?: { code?: string; message?: string } }).error;
    throw new AgentError(
      'POS440',
      `the agent at ${apiUrl} refused a login link: HTTP ${response.status} ${error?.code ?? ''} ${error?.message ?? ''}`.trim(),
    );
  }
  return link.data;
}

/** The `open` command. @returns the exit code. */
export async function runOpen(options: {
  config: string;
  out: NodeJS.WritableStream;
}): Promise<number> {
  const config = loadConfig(options.config);
  if (config.api.socketPath !== undefined) {
    throw new AgentError(
      'POS441',
      `the local API listens on the UNIX socket ${config.api.socketPath} only, which a browser cannot open; remove api.socketPath to serve the status page on http://127.0.0.1:${config.api.port}`,
    );
  }
  const keys = loadTerminalKeys(config.keysDir);
  const host = config.api.host.includes(':') ? `[${config.api.host}]` : config.api.host;
  const link = await requestLoginLink(`http://${host}:${config.api.port}`, keys.apiToken);
  options.out.write(
    `status page: ${link.url}\n  open it in the browser on this terminal; it works once, until ${link.expiresAt}\n`,
  );
  return 0;
}
