import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Database } from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BuildStore } from '../../src/builds/build-store.js';
import { newTimeline } from '../../src/builds/build-timeline.js';
import type { Build } from '../../src/builds/build.js';
import { openDatabase } from '../../src/storage/database.js';
import { testBuild } from '../helpers/test-build.js';

let dir: string;
let file: string;
let db: Database;
let store: BuildStore;
/** A second connection to the same file: it sees only what was committed. */
let reader: BuildStore;
let readerDb: Database;
let counter = 0;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'kiln-build-store-'));
  file = path.join(dir, 'kiln.db');
  db = openDatabase(file);
  store = new BuildStore(db);
  readerDb = openDatabase(file);
  reader = new BuildStore(readerDb);
});

afterEach(() => {
  readerDb.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

function aBuild(): Build {
  counter += 1;
  const id = `bld_store_${counter}`;
  return testBuild({
    id,
    source: {
      path: `/data/builds/${id}/source`,
      sizeBytes: 1,
      sha256: 'a'.repeat(64),
      entries: 1,
      unpackedBytes: 1,
    },
    createdAt: new Date(1_000),
    timings: newTimeline(900, 1_000),
  });
}

/** Makes every insert of a `type` event fail inside SQLite, as a full disk would. */
function failEventsOfType(type: string): void {
  db.exec(`CREATE TRIGGER fail_${type} BEFORE INSERT ON build_events WHEN NEW.type = '${type}'
    BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
}

describe('BuildStore transitions', () => {
  it('commits a new build and its first events together, visible to another connection', () => {
    const build = aBuild();
    const stored = store.insertWithEvents(
      build,
      [{ type: 'status', status: 'queued' }],
      new Date(1_000),
    );

    expect(stored.map((e) => e.id)).toEqual([1]);
    expect(reader.get(build.id)?.status).toBe('queued');
    expect(reader.eventsAfter(build.id, 0, 10).map((e) => e.data)).toEqual([
      { type: 'status', status: 'queued' },
    ]);
  });

  it('commits the row and every event of a transition together, ids following the earlier ones', () => {
    const build = aBuild();
    store.insertWithEvents(build, [{ type: 'status', status: 'queued' }], new Date(1_000));
    build.status = 'failed';
    build.finishedAt = new Date(2_000);
    build.failure = { code: 'timeout', message: 'too slow', logTail: [] };

    const stored = store.updateWithEvents(
      build,
      [
        { type: 'status', status: 'failed' },
        { type: 'result', status: 'failed', result: null, failure: build.failure },
      ],
      new Date(2_000),
    );

    expect(stored.map((e) => [e.id, e.data.type])).toEqual([
      [2, 'status'],
      [3, 'result'],
    ]);
    const seen = reader.get(build.id);
    expect(seen?.status).toBe('failed');
    expect(seen?.finishedAt).toEqual(new Date(2_000));
    expect(seen?.failure?.code).toBe('timeout');
    expect(reader.eventsAfter(build.id, 0, 10).map((e) => e.id)).toEqual([1, 2, 3]);
  });

  it('rolls the row back when an event of its transition cannot be stored', () => {
    const build = aBuild();
    store.insertWithEvents(build, [{ type: 'status', status: 'queued' }], new Date(1_000));
    failEventsOfType('result');
    build.status = 'cancelled';
    build.failure = { code: 'cancelled', message: 'Cancelled by the client.', logTail: [] };

    expect(() =>
      store.updateWithEvents(
        build,
        [
          { type: 'status', status: 'cancelled' },
          { type: 'result', status: 'cancelled', result: null, failure: build.failure },
        ],
        new Date(2_000),
      ),
    ).toThrow(/refused by the test/);

    expect(reader.get(build.id)?.status).toBe('queued');
    expect(reader.get(build.id)?.failure).toBeNull();
    expect(reader.eventsAfter(build.id, 0, 10).map((e) => e.id)).toEqual([1]);
    // The next transition goes on from the last stored event.
    expect(store.appendEvent(build.id, { type: 'status', status: 'booting' }, new Date()).id).toBe(
      2,
    );
  });

  it('stores no new build when its first event cannot be stored', () => {
    const build = aBuild();
    failEventsOfType('status');

    expect(() =>
      store.insertWithEvents(build, [{ type: 'status', status: 'queued' }], new Date(1_000)),
    ).toThrow(/refused by the test/);

    expect(reader.get(build.id)).toBeNull();
    expect(reader.eventsAfter(build.id, 0, 10)).toEqual([]);
  });

  it('saves only the timings with updateTimings', () => {
    const build = aBuild();
    store.insertWithEvents(build, [{ type: 'status', status: 'queued' }], new Date(1_000));
    build.timings.afterFinish = { source_removal: 3 };
    build.status = 'ready';

    store.updateTimings(build);

    const seen = reader.get(build.id);
    expect(seen?.timings.afterFinish).toEqual({ source_removal: 3 });
    expect(seen?.status).toBe('queued');
  });
});
