/**
 * The agent as its own process for the memory scan (test/memory/card-data-memory.test.ts): only
 * `runService`, nothing of the simulator (whose test cards are PANs in its source text).
 * argv[2] = the config file. Stops on SIGTERM like `pos-agent run`.
 */
import { runService } from '../../agent/service.js';

await runService(process.argv[2] ?? 'config.json');
