/**
 * The `pos-agent provision` action: CLI flags to {@link ProvisionOptions}, the prompts on a TTY,
 * provisioning (agent/commands/provision.ts) or registration by claim
 * (agent/commands/provision-claim.ts), and what is printed afterwards (no secrets).
 */
import path from 'node:path';
import { DEFAULT_CONFIG_FILE } from '../config-path.js';
import { provision, type ProvisionOptions, type ProvisionResult } from './provision.js';
import { provisionByClaim } from './provision-claim.js';
import { promptMissing } from './provision-prompts.js';

/** The lines printed after a successful provisioning (no secrets). */
export function describeProvisioning(result: ProvisionResult): string {
  return [
    `provisioned ${result.deviceId}`,
    `  config          ${result.configFile}`,
    `  keys            ${result.keysDir} (0700, files 0600)`,
    `  device key      ${result.fingerprint}`,
    `  key id          ${result.kid}`,
    `  public key      ${result.publicKey}`,
    `  data            ${result.dataDir}`,
    `  PIN pad         ${result.pinPad}${result.pinPadDefaulted ? ' (the default: no --pinpad was given; "pos-agent devices" shows the right path, then set pinPad.path in the config)' : ''}`,
    ...(result.csrFile !== undefined && !('certificateFile' in result)
      ? [
          `  CSR             ${result.csrFile}: send it to the cloud to be signed, then save the certificate as ${path.join(result.keysDir, 'client.pem')}`,
        ]
      : []),
    `Register the device id and public key in the cloud, then run "pos-agent doctor${result.configFile === DEFAULT_CONFIG_FILE ? '' : ` --config ${result.configFile}`}".`,
    '',
  ].join('\n');
}

/**
 * The `pos-agent provision` action: maps the CLI flags, prompts for missing values when `input`
 * is a TTY (unless `--non-interactive`), provisions and prints the result.
 *
 * @throws AgentError POS504/POS505/POS503 from {@link provision}.
 */
export async function runProvision(
  flags: Record<string, string | boolean | number | undefined>,
  input: NodeJS.ReadableStream & { isTTY?: boolean },
  output: NodeJS.WritableStream,
): Promise<ProvisionResult> {
  const str = (name: string): string | undefined =>
    typeof flags[name] === 'string' ? flags[name] : undefined;
  let options: ProvisionOptions = { dir: str('dir') ?? '.' };
  const map: Array<[keyof ProvisionOptions, string]> = [
    ['deviceId', 'deviceId'],
    ['tenant', 'tenant'],
    ['store', 'store'],
    ['broker', 'broker'],
    ['pinPad', 'pinpad'],
    ['caFile', 'ca'],
    ['certFile', 'cert'],
    ['keyFile', 'key'],
    ['cloudKeyFile', 'cloudKey'],
    ['vaultKeyFile', 'vaultKey'],
    ['tokenKeyFile', 'tokenKey'],
    ['dataDir', 'dataDir'],
    ['owner', 'owner'],
  ];
  for (const [option, flag] of map) {
    const value = str(flag);
    if (value !== undefined) (options as unknown as Record<string, unknown>)[option] = value;
  }
  if (flags.generateCsr === true) options.generateCsr = true;
  if (flags.development === true) options.development = true;
  if (flags.force === true) options.force = true;
  if (typeof flags.apiPort === 'number') options.apiPort = flags.apiPort;
  if (input.isTTY === true && flags.nonInteractive !== true)
    options = await promptMissing(options, input, output);
  const claimCert = str('claimCert');
  const result =
    claimCert === undefined
      ? provision(options)
      : await provisionByClaim(options, {
          certFile: claimCert,
          keyFile: str('claimKey') ?? '',
          registrationCode: str('registrationCode') ?? '',
        });
  output.write(describeProvisioning(result));
  return result;
}
