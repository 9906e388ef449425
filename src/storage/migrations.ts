import type { Migration } from './migration.js';
import { migration0001Builds } from './migrations/0001-builds.js';

/**
 * Every migration, in order. Each part of the daemon owns its own migration files under
 * `src/storage/migrations/`; versions are unique and only ever appended.
 */
export const MIGRATIONS: readonly Migration[] = [migration0001Builds];
