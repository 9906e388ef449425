import type { Migration } from './migration.js';

/**
 * Every migration, in order. Each part of the daemon owns its own migration files under
 * `src/storage/migrations/`; versions are unique and only ever appended.
 */
export const MIGRATIONS: readonly Migration[] = [];
