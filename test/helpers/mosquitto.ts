/** Mosquitto as a child process for tests: the one starter in simulator/mosquitto.ts. */
export {
  MOSQUITTO_SKIP_REASON,
  mosquittoAvailable,
  startMosquitto,
  type MosquittoBroker,
} from '../../simulator/mosquitto.js';
