/**
 * The wait behind `whenConnected()` of the MQTT session (cloud-sync/mqtt-session.ts) and of the
 * cloud core's AMQP link (simulator/cloud-amqp.ts): until the link's next `connect` event, or a
 * timeout. Unlike `events.once`, an `error` event meanwhile does not end the wait: both links
 * report failed attempts as errors and keep retrying.
 */

/** What {@link waitForConnect} listens on: a link that emits `connect` when it is up. */
export interface ConnectEmitter {
  once(event: 'connect', listener: () => void): unknown;
  off(event: 'connect', listener: () => void): unknown;
}

/**
 * Resolves at the link's next `connect`; rejects with `timeoutError()` after `timeoutMs` ms.
 *
 * @param timeoutError — the coded error to reject with (POS301, naming the endpoint and the fix).
 */
export function waitForConnect(
  link: ConnectEmitter,
  timeoutMs: number,
  timeoutError: () => Error,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onConnect = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      link.off('connect', onConnect);
      reject(timeoutError());
    }, timeoutMs);
    link.once('connect', onConnect);
  });
}
