import { z } from 'zod';
import { envInt, envString, envOptionalString } from './env-schema.js';

/** Where the daemon listens, keeps its data, and how it names itself to clients. */
export const serverConfigSchema = z.object({
  KILN_HOST: envString('127.0.0.1'),
  KILN_PORT: envInt(8083, 0, 65535),
  KILN_DATA_DIR: envString('./.kiln'),
  /** Base URL clients (and the registry's token realm) use; defaults to http://host:port. */
  KILN_PUBLIC_URL: envOptionalString(),
  KILN_LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .optional()
    .transform((v) => v ?? 'info'),
  /** Seconds a graceful shutdown waits for running builds' VMs to be killed. */
  KILN_SHUTDOWN_GRACE_SECONDS: envInt(10, 0, 600),
});
