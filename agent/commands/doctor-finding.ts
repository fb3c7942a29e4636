/**
 * One finding of `pos-agent doctor` (agent/commands/doctor.ts), as every check reports it and as
 * `--json` prints it.
 */
import type { ErrorCode } from '../../common/agent-error.js';

/** A configured device and what it was matched to, on `devices` findings. */
export interface DoctorDevice {
  /** The config entry: `pinPad` or `cardReaders[0]`, `cardReaders[1]`, … */
  entry: string;
  /** The reader's `name` (card readers only). */
  name?: string;
  /** The configured `path`. */
  path: string;
  /** The device found for it (`pos-agent devices` lists the same), when one was found. */
  matched?: { systemPath: string; usbId?: string; name?: string };
}

/** One finding. */
export interface DoctorFinding {
  /** `config`, `file modes`, `keys`, `database`, `disk`, `clock`, `broker` or `devices`. */
  check: string;
  level: 'ok' | 'warn' | 'problem';
  /** The error code (POS1xx–POS5xx, see the table above); on every warn and problem. */
  code?: ErrorCode;
  /** What was found (no secrets). */
  message: string;
  /** How to fix it (on every warn and problem). */
  fix?: string;
  /** For `devices` findings: the config entry and the device it matched. */
  device?: DoctorDevice;
}
