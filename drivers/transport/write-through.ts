/**
 * The one way a transport hands bytes to a Node stream-like port that reports the write in a
 * callback (serialport's `write`, `net.Socket#write`, serialport's mock): a promise that
 * resolves when the OS took the bytes and rejects with POS102 naming the port otherwise.
 */
import { driverError } from '../errors.js';

/**
 * Runs `write(done)` and settles on its callback.
 *
 * @param label — the port as the message names it, e.g. `/dev/ttyUSB0` or `serial port /dev/…`.
 * @throws AgentError POS102 `Write to <label> failed: <reason>` with the error as `cause`.
 */
export function writeThrough(
  label: string,
  write: (done: (error: Error | null | undefined) => void) => void,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    write((error) => {
      if (error === null || error === undefined) resolve();
      else
        reject(
          driverError('POS102', `Write to ${label} failed: ${error.message}`, { cause: error }),
        );
    });
  });
}
