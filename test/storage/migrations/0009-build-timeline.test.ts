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

function insertBuild(db: ReturnType<typeof openDatabase>, id: string, timingsJson: string): void {
  db.prepare(
    `INSERT INTO builds (id, tenant, status, request_json, source_json, repository, created_at, timings_json)
     VALUES (?, 'acme', 'ready', '{}', '{}', 'acme/web', 0, ?)`,
  ).run(id, timingsJson);
}

describe('migration 0009 (build timeline)', () => {
  it('keeps the seconds of builds stored before it under legacy, and leaves timelines alone', () => {
    const before = openDatabase(
      file,
      MIGRATIONS.filter((m) => m.version < 9),
    );
    insertBuild(before, 'b_old', JSON.stringify(LEGACY));
    insertBuild(before, 'b_empty', '{}');
    const timeline = { marks: [{ phase: 'upload', at: 5 }], afterFinish: null };
    insertBuild(before, 'b_new', JSON.stringify(timeline));
    before.close();

    const db = openDatabase(file);
    const store = new BuildStore(db);
    expect(store.get('b_old')?.timings).toEqual({ marks: [], afterFinish: null, legacy: LEGACY });
    expect(store.get('b_empty')?.timings).toEqual({ marks: [], afterFinish: null, legacy: {} });
    expect(store.get('b_new')?.timings).toEqual(timeline);
    const old = accountTime(store.get('b_old')!.timings, null);
    expect(old).toMatchObject({ legacy: true, totalSeconds: 38.2, unaccountedSeconds: 7.6 });
    db.close();
  });
});
