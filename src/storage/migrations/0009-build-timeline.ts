import type { Migration } from '../migration.js';

/**
 * `builds.timings_json` becomes the build's timeline (src/builds/build-timeline.ts): the host's
 * phase marks in milliseconds, the guest's figures on each agent window, and the after-finish
 * steps. Finished builds stored before keep their seconds, untouched, under `legacy`; they are
 * shown as they were, the gap to their total as unaccounted time. A build not finished yet
 * (the restart re-runs it) starts a timeline at its acceptance: its upload time is not known.
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
       WHERE json_type(timings_json, '$.marks') IS NULL
         AND status IN ('ready', 'failed', 'cancelled');
      UPDATE builds
         SET timings_json = json_object(
               'marks', json_array(json_object('phase', 'queued', 'at', created_at)),
               'afterFinish', NULL)
       WHERE json_type(timings_json, '$.marks') IS NULL;
    `);
  },
};
