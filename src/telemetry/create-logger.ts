import { pino, type DestinationStream, type Logger } from 'pino';
import type { Config } from '../config/config.js';

/** Paths pino censors wherever they appear: tokens, credentials and secret values. */
const REDACT_PATHS = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'token',
  'registryToken',
  'secrets',
  'value',
  '*.authorization',
  '*.token',
  '*.registryToken',
  '*.secrets',
  '*.value',
];

/** The daemon's root logger: JSON lines on stdout (or `destination`), secrets redacted. */
export function createLogger(
  level: Config['server']['logLevel'],
  destination?: DestinationStream,
): Logger {
  const options = {
    level,
    base: { pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}
