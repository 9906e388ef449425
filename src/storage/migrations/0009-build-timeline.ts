import type { Migration } from '../migration.js';

/**
 * `builds.timings_json` becomes the build's timeline (src/builds/build-timeline.ts): the host's
 * phase marks in milliseconds, the guest's figures on each agent window, and the after-finish
 * steps. Builds stored before keep their seconds, untouched, under `legacy`; they are shown
 * as they were, the gap to their total as unaccounted time.
 */
export const migration0009BuildTimeline: Migration = {
  version: 9,
  name: 'build-timeline',
  up(db) {
    db.exec(`
      UPDATE builds
         SET timings_json = json_object(
               'marks', json('[]'),
               'afterFinish', NULL,
               'legacy', json(timings_json))
       WHERE json_type(timings_json, '$.marks') IS NULL;
    `);
  },
};
