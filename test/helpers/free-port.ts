/** A free TCP port on loopback: the one helper in simulator/free-port.ts. */
export { freePort } from '../../simulator/free-port.js';
