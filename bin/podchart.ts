/** Entry point of the podchart CLI; the logic lives in podchart-cli.ts. */
import { main } from './podchart-cli.js';

process.exitCode = await main(process.argv.slice(2), console);
