/**
 * The MQTT topics of the wire contract (architecture.md §5): a device's topics, the cloud core's
 * subscriptions, the claim topics of registration (issue 5), and the parse of a topic name back
 * into device id and kind. The payload schemas are in schemas.ts.
 *
 * ```
 *  {p}/{d}/up/records  {p}/{d}/up/auth  {p}/{d}/status  {p}/{d}/up/command-results
 *  {p}/{d}/down/acks   {p}/{d}/down/auth  {p}/{d}/down/commands
 *  {p}/claims/{d}/request  {p}/claims/{d}/response
 * ```
 */
import { z } from 'zod';
import { syncError } from './errors.js';

/** Default topic prefix `{p}` (architecture.md §5). */
export const DEFAULT_TOPIC_PREFIX = 'pos/v1';

/**
 * A device id: also the MQTT client id and one topic level, so no `/`, `+`, `#`, and short
 * enough for every broker (MQTT 3.1.1 §3.1.3.1 only guarantees 23 bytes; aedes and Mosquitto
 * are configured for more, AWS IoT Core allows 128).
 */
export const DeviceIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'device id: 1–128 of A–Z a–z 0–9 . _ : -');

/** The topic names of one device (architecture.md §5 table). */
export interface DeviceTopics {
  /** `{p}/{d}/up/records` — batches of outbox records. */
  readonly records: string;
  /** `{p}/{d}/up/auth` — online authorization requests. */
  readonly auth: string;
  /** `{p}/{d}/status` — retained online/offline status; the last will. */
  readonly status: string;
  /** `{p}/{d}/down/acks` — the cloud's acknowledgements of batches. */
  readonly acks: string;
  /** `{p}/{d}/down/auth` — authorization responses. */
  readonly authResponse: string;
  /** `{p}/{d}/down/commands` — cloud commands. */
  readonly commands: string;
  /** `{p}/{d}/up/command-results` — the result of each cloud command (issue 5). */
  readonly commandResults: string;
}

/** @throws AgentError POS304 when `prefix` is not valid topic levels. */
function checkPrefix(prefix: string): void {
  if (
    prefix.length === 0 ||
    /[+#\0]/.test(prefix) ||
    prefix.startsWith('/') ||
    prefix.endsWith('/')
  ) {
    throw syncError(
      'POS304',
      `Topic prefix "${prefix}" is not valid: use non-empty levels without + # or a leading/trailing /, e.g. "${DEFAULT_TOPIC_PREFIX}"`,
    );
  }
}

/** @throws AgentError POS304 when `deviceId` is not a valid device id. */
function checkDeviceId(deviceId: string): void {
  if (!DeviceIdSchema.safeParse(deviceId).success) {
    throw syncError(
      'POS304',
      `Device id "${deviceId.slice(0, 140)}" is not valid: it is the MQTT client id and one topic level, so use 1–128 characters of A–Z a–z 0–9 . _ : - starting with a letter or digit`,
    );
  }
}

/**
 * The topics of one device (architecture.md §5).
 *
 * @param prefix — `{p}`, default `pos/v1`.
 * @param deviceId — `{d}`, also the MQTT client id.
 * @throws AgentError POS304 when the prefix or device id is not a valid topic level.
 */
export function topics(prefix: string = DEFAULT_TOPIC_PREFIX, deviceId: string): DeviceTopics {
  checkPrefix(prefix);
  checkDeviceId(deviceId);
  const base = `${prefix}/${deviceId}`;
  return {
    records: `${base}/up/records`,
    auth: `${base}/up/auth`,
    status: `${base}/status`,
    acks: `${base}/down/acks`,
    authResponse: `${base}/down/auth`,
    commands: `${base}/down/commands`,
    commandResults: `${base}/up/command-results`,
  };
}

/** The cloud core's subscriptions: the uplink topics of every device (`+` wildcard, MQTT 3.1.1 §4.7.1.3). */
export function cloudTopicFilters(prefix: string = DEFAULT_TOPIC_PREFIX): {
  records: string;
  auth: string;
  status: string;
} {
  checkPrefix(prefix);
  return {
    records: `${prefix}/+/up/records`,
    auth: `${prefix}/+/up/auth`,
    status: `${prefix}/+/status`,
  };
}

/** Which topic of {@link DeviceTopics} a concrete topic name is. */
export type TopicKind = keyof DeviceTopics;

/**
 * Splits a concrete topic name into device id and kind, or `undefined` when it is not one of
 * the topics of {@link topics} under `prefix`.
 */
export function parseTopic(
  prefix: string,
  topic: string,
): { deviceId: string; kind: TopicKind } | undefined {
  if (!topic.startsWith(`${prefix}/`)) return undefined;
  const rest = topic.slice(prefix.length + 1).split('/');
  const deviceId = rest[0];
  if (deviceId === undefined || !DeviceIdSchema.safeParse(deviceId).success) return undefined;
  const tail = rest.slice(1).join('/');
  const kinds: Record<string, TopicKind> = {
    'up/records': 'records',
    'up/auth': 'auth',
    status: 'status',
    'down/acks': 'acks',
    'down/auth': 'authResponse',
    'down/commands': 'commands',
    'up/command-results': 'commandResults',
  };
  const kind = kinds[tail];
  return kind === undefined ? undefined : { deviceId, kind };
}

/**
 * Registration by claim (issue 5; AWS IoT fleet provisioning by claim is the model): a terminal
 * without its own certificate connects with the fleet's shared claim certificate, using its
 * device id as client id, and exchanges one request/response:
 * ```
 *  {p}/claims/{d}/request   agent → cloud  ClaimRequest   signed by the NEW device key (proof of possession)
 *  {p}/claims/{d}/response  cloud → agent  ClaimResponse  signed by the cloud key (pinned at provisioning)
 * ```
 * Brokers restrict a claim identity to `{p}/claims/<its client id>/#`.
 */
export function claimTopics(
  prefix: string = DEFAULT_TOPIC_PREFIX,
  deviceId: string,
): { request: string; response: string } {
  checkPrefix(prefix);
  checkDeviceId(deviceId);
  return {
    request: `${prefix}/claims/${deviceId}/request`,
    response: `${prefix}/claims/${deviceId}/response`,
  };
}
