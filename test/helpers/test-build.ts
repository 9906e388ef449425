import type { Build, BuildRequest, BuildSource } from '../../src/builds/build.js';

/** What a test may set on a Build; `request` and `source` merge over the plain values. */
export type TestBuildOverrides = Partial<Omit<Build, 'request' | 'source'>> & {
  request?: Partial<BuildRequest>;
  source?: Partial<BuildSource>;
};

/**
 * A Build made of plain values (tenant `acme`, queued, an isolated Dockerfile build of a tiny
 * uncompressed source, repository `acme/<id>`), with the fields a test cares about set over it.
 */
export function testBuild(overrides: TestBuildOverrides = {}): Build {
  const { id: givenId, request, source, ...rest } = overrides;
  const id = givenId ?? 'b_aaaaaaaaaaaaaaaaaaaa';
  return {
    id,
    tenant: 'acme',
    status: 'queued',
    repository: `acme/${id}`,
    cacheRepository: null,
    createdAt: new Date(0),
    startedAt: null,
    finishedAt: null,
    attempts: 0,
    result: null,
    failure: null,
    timings: { marks: [], afterFinish: null },
    ...rest,
    request: {
      dockerfile: null,
      dockerfilePath: 'Dockerfile',
      contextDir: '.',
      buildArgs: {},
      secretIds: [],
      cacheScope: null,
      timeoutSeconds: 600,
      memoryMb: 1024,
      cpus: 1,
      networkMode: 'isolated',
      imageName: null,
      ...request,
    },
    source: {
      path: '/nonexistent',
      sizeBytes: 0,
      sha256: '0'.repeat(64),
      compression: 'none',
      entries: 0,
      unpackedBytes: 0,
      ...source,
    },
  };
}
