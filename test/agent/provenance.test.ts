import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveBuildContext } from '../../agent/build/build-context.js';
import { dockerfileBaseImages } from '../../agent/build/dockerfile-base-images.js';
import { findLockfiles } from '../../agent/build/lockfiles.js';
import { PhaseTracker } from '../../agent/build/phase-tracker.js';
import { describeFailure } from '../../agent/build/run-build.js';
import { treeDigest, type UnpackedEntry } from '../../agent/source/unpack-source.js';
import { ArchiveError } from '../../common/archive/archive-error.js';
import { BuildFailure } from '../../common/errors/build-failure.js';
import { ManualClock } from '../helpers/manual-clock.js';

const sha = (c: string): string => c.repeat(64);

const entries: UnpackedEntry[] = [
  { type: 'dir', path: 'svc', mode: 0o755 },
  { type: 'file', path: 'svc/Dockerfile', mode: 0o644, size: 10, sha256: sha('1') },
  { type: 'file', path: 'svc/package-lock.json', mode: 0o644, size: 10, sha256: sha('2') },
  { type: 'dir', path: 'svc/py', mode: 0o755 },
  { type: 'file', path: 'svc/py/requirements-dev.txt', mode: 0o644, size: 1, sha256: sha('3') },
  { type: 'file', path: 'svc/go.sum', mode: 0o644, size: 1, sha256: sha('4') },
  { type: 'symlink', path: 'svc/yarn.lock', target: '../yarn.lock' },
  { type: 'file', path: 'Cargo.lock', mode: 0o644, size: 1, sha256: sha('5') },
  { type: 'file', path: 'svc/notes.txt', mode: 0o644, size: 1, sha256: sha('6') },
];

describe('provenance', () => {
  it('finds lockfiles inside the build context, relative to it, and skips symlinks', () => {
    expect(findLockfiles(entries, 'svc')).toEqual({
      'package-lock.json': sha('2'),
      'py/requirements-dev.txt': sha('3'),
      'go.sum': sha('4'),
    });
    expect(findLockfiles(entries, '')).toMatchObject({ 'Cargo.lock': sha('5') });
  });

  it('hashes the tree over types, paths, modes and contents', () => {
    const a = treeDigest(entries);
    expect(a).toMatch(/^[a-f0-9]{64}$/);
    expect(treeDigest(entries)).toBe(a);
    const chmod = entries.map((e) => (e.path === 'svc/go.sum' ? { ...e, mode: 0o755 } : e));
    expect(treeDigest(chmod)).not.toBe(a);
    const relink = entries.map((e) => (e.type === 'symlink' ? { ...e, target: 'x' } : e));
    expect(treeDigest(relink)).not.toBe(a);
  });

  it('lists the external FROM images with ARG substitution, skipping scratch and earlier stages', () => {
    const dockerfile = [
      '# syntax=docker/dockerfile:1',
      'ARG BASE=node:22',
      'ARG TAG',
      'FROM --platform=$BUILDPLATFORM ${BASE} AS deps',
      'RUN npm ci',
      'FROM golang:${TAG:-1.22} as tools',
      'FROM deps AS build',
      'FROM scratch',
      'COPY --from=build /app /app',
      'from \\',
      '  alpine:3.20',
    ].join('\n');
    expect(dockerfileBaseImages(dockerfile, {})).toEqual(['node:22', 'golang:1.22', 'alpine:3.20']);
    expect(dockerfileBaseImages(dockerfile, { BASE: 'node:20', TAG: '1.23' })).toEqual([
      'node:20',
      'golang:1.23',
      'alpine:3.20',
    ]);
  });
});

describe('build context', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kiln-context-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('applies context_dir and dockerfile_path', async () => {
    const ctx = await resolveBuildContext(
      '/src',
      entries,
      { contextDir: 'svc/', dockerfilePath: '', dockerfile: null },
      dir,
    );
    expect(ctx).toEqual({
      contextDir: '/src/svc',
      contextPrefix: 'svc',
      dockerfile: '/src/svc/Dockerfile',
    });
  });

  it('writes an inline Dockerfile outside the context', async () => {
    const ctx = await resolveBuildContext(
      '/src',
      entries,
      { contextDir: '', dockerfilePath: 'ignored', dockerfile: 'FROM scratch\n' },
      dir,
    );
    expect(ctx.contextDir).toBe('/src');
    expect(path.dirname(ctx.dockerfile)).toBe(dir);
    expect(await readFile(ctx.dockerfile, 'utf8')).toBe('FROM scratch\n');
  });

  it.each([
    ['a context_dir that is a file', { contextDir: 'svc/go.sum', dockerfilePath: '' }],
    ['a missing context_dir', { contextDir: 'nope', dockerfilePath: '' }],
    ['a context_dir with ..', { contextDir: 'svc/../..', dockerfilePath: '' }],
    ['an absolute dockerfile_path', { contextDir: 'svc', dockerfilePath: '/etc/passwd' }],
    ['a dockerfile_path through a symlink', { contextDir: 'svc', dockerfilePath: 'yarn.lock' }],
    ['a missing Dockerfile', { contextDir: '', dockerfilePath: 'Dockerfile' }],
  ])('rejects %s as invalid_source', async (_label, job) => {
    const err: unknown = await resolveBuildContext(
      '/src',
      entries,
      { ...job, dockerfile: null },
      dir,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuildFailure);
    expect((err as BuildFailure).code).toBe('invalid_source');
  });
});

describe('result codes and phase durations', () => {
  it('maps failures to build error codes', () => {
    expect(describeFailure(new ArchiveError('SOURCE_UNSAFE_PATH', 'x'))).toEqual({
      code: 'invalid_source',
      message: 'x',
    });
    expect(describeFailure(new BuildFailure('invalid_source', 'x')).code).toBe('invalid_source');
    expect(describeFailure(new BuildFailure('push_failed', 'x')).code).toBe('push_failed');
    expect(describeFailure(new BuildFailure('build_failed', 'x')).code).toBe('build_failed');
    expect(describeFailure(new BuildFailure('internal', 'x')).code).toBe('internal');
    expect(describeFailure(new Error('boom'))).toEqual({ code: 'internal', message: 'boom' });
  });

  it('measures each phase from its start to the next with the injected clock', () => {
    const clock = new ManualClock(1_000);
    const phases = new PhaseTracker(clock);
    phases.enter('extracting');
    clock.advance(1_500);
    phases.enter('building');
    clock.advance(10_000);
    phases.enter('pushing');
    clock.advance(250);
    phases.finish();
    expect(phases.phaseSeconds()).toEqual({ extracting: 1.5, building: 10, pushing: 0.25 });
  });
});
