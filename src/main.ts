import { ConfigError, loadConfig, type Config } from './config/config.js';
import { createDaemon } from './daemon.js';
import { createLogger } from './telemetry/create-logger.js';
import { systemScheduler } from './time/scheduler.js';
import { systemClock } from '../common/time/clock.js';

/**
 * The process around the daemon: the only place that reads `process.env` (through
 * loadConfig), handles signals and calls `process.exit`. The daemon itself is built by
 * createDaemon.
 */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kiln: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.server.logLevel);
  const daemon = await createDaemon(config, {
    logger,
    clock: systemClock,
    scheduler: systemScheduler,
  });

  // An object, so the check after start() sees what a signal handler set meanwhile.
  const signalled = { stopping: false };
  const shutdown = async (signal: NodeJS.Signals) => {
    if (signalled.stopping) {
      logger.warn({ signal }, 'second signal: exiting at once');
      process.exit(130);
    }
    signalled.stopping = true;
    logger.info({ signal }, 'shutting down');
    await daemon.close();
    logger.info('stopped');
    process.exit(0);
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, (s: NodeJS.Signals) => {
      shutdown(s).catch((err: unknown) => {
        logger.fatal({ err }, 'shutdown failed');
        process.exit(1);
      });
    });
  }
  try {
    await daemon.start();
  } catch (err) {
    // A signal during start closes the daemon, which fails start(): the shutdown exits.
    if (signalled.stopping) return;
    await daemon.close().catch((closeErr: unknown) => {
      logger.error({ err: closeErr }, 'cleanup after a failed start failed');
    });
    throw err;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(
    `kiln: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
