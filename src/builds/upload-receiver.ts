import type { BuildField } from './build-request-parser.js';
import type { SourceSummary } from './source-inspector.js';

/** Where one upload goes and how its fields are checked, handed out by the BuildManager. */
export interface UploadTarget {
  /** The file the source part is streamed into (inside the build's own directory). */
  partialPath: string;
  /**
   * Checks one text field on its own the moment it arrives, so a bad value is refused before
   * the source is read. Throws the catalog's AppError (INVALID_FIELD, RESOURCE_OUT_OF_RANGE,
   * UNKNOWN_SECRET, …).
   */
  checkField(name: BuildField, value: string): void;
  /**
   * Checks one per-build secret (a `secret.<id>` part, already checked for form, size and
   * order) against the rest of the request, e.g. a clash with a stored secret's id.
   */
  checkBuildSecret(id: string): void;
}

/** A complete upload: the text fields as sent and the verified source in `partialPath`. */
export interface ReceivedUpload {
  fields: ReadonlyMap<string, string>;
  /** Per-build secret values by id (`secret.<id>` parts), held in memory only. */
  secrets: ReadonlyMap<string, string>;
  source: SourceSummary;
}

/**
 * Reads one upload into `target` (the HTTP layer's part of accepting a build). Resolves once
 * the source is complete and closed; rejects with an AppError, after closing every stream it
 * opened, when the upload is refused or interrupted.
 */
export type UploadReceiver = (target: UploadTarget) => Promise<ReceivedUpload>;
