import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BuildStore } from '../../../src/builds/build-store.js';
import { accountTime } from '../../../src/builds/time-account.js';
import { openDatabase } from '../../../src/storage/database.js';
import { MIGRATIONS } from '../../../src/storage/migrations.js';

let dir: string;
let file: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'kiln-mig9-'));
  file = path.join(dir, 'kiln.db');
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const LEGACY = { queued: 0.1, boot: 7.6, extracting: 0.5, building: 22, pushing: 0.4, total: 38.2 };

function insertBuild(
  db: ReturnType<typeof openDatabase>,
  id: string,
  timingsJson: string,
  status = 'ready',
): void {
  db.prepare(
    `INSERT INTO builds (id, tenant, status, request_json, source_json, repository, created_at, timings_json)
     VALUES (?, 'acme', ?, '{}', '{}', 'acme/web', 1234, ?)`,
  ).run(id, status, timingsJson);
}

describe('migration 0009 (build timeline)', () => {
  it('keeps the seconds of finished builds under legacy, starts unfinished ones a timeline, leaves timelines alone', () => {
    const before = openDatabase(
      file,
      MIGRATIONS.filter((m) => m.version < 9),
    );
    insertBuild(before, 'b_old', JSON.stringify(LEGACY));
    insertBuild(before, 'b_empty', '{}', 'cancelled');
    insertBuild(before, 'b_running', JSON.stringify({ queued: 0.5 }), 'building');
    const timeline = { marks: [{ phase: 'upload', at: 5 }], afterFinish: null };
    insertBuild(before, 'b_new', JSON.stringify(timeline));
    before.close();

    const db = openDatabase(file);
    const store = new BuildStore(db);
    expect(store.get('b_old')?.timings).toEqual({ marks: [], afterFinish: null, legacy: LEGACY });
    expect(store.get('b_empty')?.timings).toEqual({ marks: [], afterFinish: null, legacy: {} });
    expect(store.get('b_new')?.timings).toEqual(timeline);
    // Not finished: the restart runs it again, on a timeline from its acceptance.
    expect(store.get('b_running')?.timings).toEqual({
      marks: [{ phase: 'queued', at: 1234 }],
      afterFinish: null,
    });
    const old = accountTime(store.get('b_old')!.timings, null);
    expect(old).toMatchObject({ legacy: true, totalSeconds: 38.2, unaccountedSeconds: 7.6 });
    db.close();
  });
});
