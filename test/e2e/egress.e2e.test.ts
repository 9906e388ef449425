import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../common/time/clock.js';
import { loadConfig } from '../../src/config/config.js';
import { createDaemon, type Daemon } from '../../src/daemon.js';
import type { EgressResolver } from '../../src/egress/egress-resolver.js';
import { hostAddresses } from '../../src/egress/host-addresses.js';
import { createLogger } from '../../src/telemetry/create-logger.js';
import { systemScheduler } from '../../src/time/scheduler.js';
import { E2eClient } from '../helpers/e2e-client.js';
import { REPO_ROOT } from '../helpers/e2e-daemon.js';
import { imageFile, pullImage } from '../helpers/e2e-oci-image.js';
import { writeSourceTarball } from '../helpers/e2e-source.js';
import { findQemuProcesses } from '../helpers/e2e-vm-processes.js';
import { LoopbackOnlyConnector } from '../helpers/loopback-only-connector.js';
import { TEST_NODE_IMAGE_TAG, testNodeImageLayout } from '../helpers/test-node-image.js';
import {
  npmAppFiles,
  startTestNpmRegistry,
  type PublishedPackage,
  type TestNpmRegistry,
} from '../helpers/verdaccio.js';

const execFileAsync = promisify(execFile);

/**
 * Egress end to end: real QEMU microVMs (restrict=on in both modes), the real guest image and
 * agent under Buildah, the daemon's own per-build filtering proxy, a real npm registry
 * (Verdaccio) on 127.0.0.1 allowed through the operator exception list, and a base image of
 * node:22-slim seeded into `library/`.
 *
 * No packet leaves the machine. The daemon runs in this process (createDaemon) so its egress
 * proxies get two test hooks: a resolver that maps the hostile names below to loopback,
 * metadata, private and the host's own addresses (never asking DNS), and a connector that
 * refuses, without connecting, any address but 127.0.0.1 / ::1 (`guard.violations` must stay
 * empty). Direct connects from the guest are aimed only at 10.0.2.2, the host's loopback.
 */
const BUILD_TIMEOUT_MS = 960_000;

/** The host's own first non-loopback IPv4 address (what a build must not reach either). */
function ownAddress(): string {
  return hostAddresses().find((a) => a !== '127.0.0.1' && !a.includes(':')) ?? '127.0.0.2';
}

const HOSTILE_NAMES: Readonly<Record<string, string>> = {
  'loopback.test': '127.0.0.1',
  'metadata.test': '169.254.169.254',
  'private.test': '10.0.0.5',
  'hostaddr.test': ownAddress(),
  'allowed.test': '127.0.0.1',
};

/** Maps the names above; anything else does not resolve (no DNS is ever asked). */
const testResolver: EgressResolver = (name) => {
  const address = HOSTILE_NAMES[name];
  if (address === undefined) {
    return Promise.reject(
      Object.assign(new Error(`test resolver: ${name}`), { code: 'ENOTFOUND' }),
    );
  }
  return Promise.resolve([{ address, family: 4 }]);
};

interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

describe('egress through the filtering proxy, in QEMU microVMs', () => {
  let daemon: Daemon | undefined;
  let url: string;
  let registry: string;
  let dataDir: string;
  let work: string;
  let npm: TestNpmRegistry | undefined;
  let pkg: PublishedPackage;
  let client: E2eClient;
  let tenantToken: string;
  let pullToken: string;
  let sourceCount = 0;
  const guard = new LoopbackOnlyConnector();

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'kiln-egress-e2e-'));
    dataDir = path.join(work, 'data');
    const registryServer = await startTestNpmRegistry();
    npm = registryServer;
    pkg = await registryServer.publish({
      name: 'kiln-egress-probe',
      version: '1.0.0',
      files: { 'index.js': 'module.exports = "installed through the kiln egress proxy";\n' },
    });
    const config = loadConfig({
      KILN_DATA_DIR: dataDir,
      KILN_HOST: '127.0.0.1',
      KILN_PORT: '0',
      KILN_VMM: 'qemu',
      KILN_LOG_LEVEL: 'warn',
      KILN_IMAGE_DIR: process.env.KILN_IMAGE_DIR,
      KILN_CACHE_DIR: process.env.KILN_CACHE_DIR,
      KILN_MAX_CONCURRENT_BUILDS: '1',
      KILN_DEFAULT_MEMORY_MB: '1536',
      KILN_DEFAULT_CPUS: '1',
      KILN_SCRATCH_BYTES: '8G',
      KILN_BOOT_TIMEOUT_SECONDS: '180',
      // Base image pulls under TCG on loaded 2-core machines take minutes.
      KILN_DEFAULT_TIMEOUT_SECONDS: '900',
      // The internal mirror: reached though it is loopback, only at this exact host:port.
      KILN_EGRESS_EXCEPTIONS: `127.0.0.1:${registryServer.port}`,
    });
    const started = await createDaemon(config, {
      logger: createLogger(config.server.logLevel),
      clock: systemClock,
      scheduler: systemScheduler,
      egressHooks: { resolve: testResolver, connect: guard.connect },
    });
    daemon = started;
    const bound = await started.start();
    url = bound.url;
    registry = `127.0.0.1:${bound.port}`;
    const token = (tenant: string, scopes: string[]) =>
      started.apiTokens.create({
        tenant,
        scopes: scopes as Parameters<Daemon['apiTokens']['create']>[0]['scopes'],
        ttlSeconds: 3600,
      });
    const admin = await token('operator', ['registry:admin']);
    await execFileAsync(
      'bash',
      [path.join(REPO_ROOT, 'scripts', 'seed-base-image.sh'), registry, admin],
      {
        timeout: 120_000,
      },
    );
    const layout = await testNodeImageLayout();
    await execFileAsync(
      'skopeo',
      [
        'copy',
        '--all',
        '--quiet',
        '--dest-tls-verify=false',
        '--dest-creds',
        `kiln:${admin}`,
        `oci:${layout}:${TEST_NODE_IMAGE_TAG}`,
        `docker://${registry}/library/node:22-slim`,
      ],
      { timeout: 300_000 },
    );
    tenantToken = await token('acme', ['builds:write', 'builds:read']);
    client = new E2eClient({ url }, tenantToken);
    pullToken = await token('acme', ['registry:pull']);
  }, 900_000);

  afterEach(() => {
    expect(guard.violations).toEqual([]);
  });

  afterAll(async () => {
    await daemon?.close();
    await npm?.close();
    await rm(work, { recursive: true, force: true });
  });

  async function source(files: Record<string, string>): Promise<string> {
    sourceCount += 1;
    return (await writeSourceTarball(path.join(work, `src-${sourceCount}.tar.gz`), files)).path;
  }

  /** Every event of a finished build, as GET /builds/:id/events serves them. */
  async function events(buildId: string): Promise<SseEvent[]> {
    const res = await fetch(`${url}/builds/${buildId}/events`, {
      headers: { authorization: `Bearer ${tenantToken}` },
    });
    const text = await res.text();
    return text
      .split('\n\n')
      .filter((block) => block.includes('data:'))
      .map((block) => {
        const lines = block.split('\n');
        const event =
          lines
            .find((l) => l.startsWith('event:'))
            ?.slice(6)
            .trim() ?? 'message';
        const data = lines
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).trim())
          .join('\n');
        return { event, data: JSON.parse(data) as Record<string, unknown> };
      });
  }

  function networkLines(all: SseEvent[]): string[] {
    return all
      .filter((e) => e.event === 'log' && e.data.stream === 'network')
      .map((e) => String(e.data.data).trimEnd());
  }

  /** The running npm registry (set by beforeAll). */
  const npmRegistry = (): TestNpmRegistry => {
    if (npm === undefined) throw new Error('the npm registry is not running');
    return npm;
  };

  const npmApp = (): Record<string, string> => ({
    ...npmAppFiles(npmRegistry().url, [pkg]),
    Dockerfile: [
      'FROM node:22-slim',
      'WORKDIR /app',
      'COPY package.json package-lock.json .npmrc ./',
      // No retries: in isolated mode the first refused connection ends the step.
      'RUN npm ci --no-audit --no-fund --loglevel=http --fetch-retries=0',
      '',
    ].join('\n'),
  });

  it(
    'runs npm ci in egress mode against the allowed internal registry; the package is in the image, the proxy settings are not',
    async () => {
      const build = await client.waitFor(
        (await client.submit(await source(npmApp()), { network_mode: 'egress' })).id,
        undefined,
        BUILD_TIMEOUT_MS / 1000 - 30,
      );
      expect(build.status, JSON.stringify(build.error)).toBe('ready');

      const image = await pullImage(`${registry}/${build.repository}:${build.id}`, pullToken);
      expect(imageFile(image, 'app/node_modules/kiln-egress-probe/index.js')).toContain(
        'installed through the kiln egress proxy',
      );
      // Predefined proxy args are used by RUN steps but left out of the config and history.
      const configText = JSON.stringify(image.config);
      expect(configText).not.toMatch(/_proxy|_PROXY|3128/);

      const view = (await (
        await fetch(`${url}/builds/${build.id}`, {
          headers: { authorization: `Bearer ${tenantToken}` },
        })
      ).json()) as {
        result: {
          provenance: { hostsContacted?: string[] };
          egress: { hosts: { host: string; port: number; bytes_in: number; bytes_out: number }[] };
        };
      };
      expect(view.result.provenance.hostsContacted).toEqual([`127.0.0.1:${npmRegistry().port}`]);
      const [host] = view.result.egress.hosts;
      expect(host).toMatchObject({ host: '127.0.0.1', port: npmRegistry().port });
      expect(host?.bytes_in).toBeGreaterThan(0);
      expect(host?.bytes_out).toBeGreaterThan(0);
      expect(
        guard.calls.every((c) => c.address === '127.0.0.1' && c.port === npmRegistry().port),
      ).toBe(true);
      expect(await findQemuProcesses(build.id)).toEqual([]);
    },
    BUILD_TIMEOUT_MS,
  );

  it(
    'fails the same build in isolated mode, with a log that says why',
    async () => {
      const build = await client.waitFor(
        (await client.submit(await source(npmApp()))).id,
        undefined,
        BUILD_TIMEOUT_MS / 1000 - 30,
      );
      expect(build.status).toBe('failed');
      expect(build.error?.code).toBe('build_failed');
      const logs = await client.logs(build.id);
      expect(logs).toContain(
        'network_mode=isolated: build steps reach nothing but the Kiln registry',
      );
      expect(logs).toMatch(/npm (ERR|error)/);
      expect(networkLines(await events(build.id))).toEqual([]);
    },
    BUILD_TIMEOUT_MS,
  );

  it(
    'refuses every hostile step of an egress build, each one a network event and in the result',
    async () => {
      const port = new URL(url).port;
      // Each probe sends one request to the proxy (10.0.2.100:3128) with busybox nc and prints
      // its status line after a marker the echoed command line cannot contain whole.
      const probe = (name: string, request: string) =>
        `printf '${request}' | nc -w 10 10.0.2.100 3128 | head -n 1 | sed "s/^/PROBE_$(echo ${name})_ /"`;
      const connect = (target: string) =>
        `CONNECT ${target} HTTP/1.1\\r\\nHost: ${target}\\r\\n\\r\\n`;
      const get = (target: string) =>
        `GET http://${target}/ HTTP/1.1\\r\\nHost: ${target}\\r\\nConnection: close\\r\\n\\r\\n`;
      const steps = [
        probe('literal', connect('127.0.0.1:443')),
        probe('daemon', get(`127.0.0.1:${port}`)),
        probe('loopname', connect('loopback.test:443')),
        probe('metadata', get('metadata.test')),
        probe('private', connect('private.test:443')),
        probe('hostaddr', connect('hostaddr.test:443')),
        probe('ssh', connect('allowed.test:22')),
        probe('sshget', get('allowed.test:22')),
        probe('outside', connect('outside.test:443')),
      ];
      const dockerfile = [
        'FROM busybox',
        'ARG PORT',
        ...steps.map((s) => `RUN ${s} || true`),
        // Past the proxy: straight at the host's loopback, which restrict=on does not route.
        'RUN if nc -w 5 10.0.2.2 "$PORT" </dev/null; then h=open; else h=blocked; fi;' +
          ' if nc -w 5 10.0.2.2 3128 </dev/null; then p=open; else p=blocked; fi;' +
          ' echo "direct_$h directproxy_$p" | tr a-z A-Z',
        '',
      ].join('\n');
      const build = await client.waitFor(
        (
          await client.submit(await source({ Dockerfile: dockerfile }), {
            network_mode: 'egress',
            allowed_hosts: JSON.stringify([
              '127.0.0.1',
              'loopback.test',
              'metadata.test',
              'private.test',
              'hostaddr.test',
              'allowed.test',
            ]),
            build_args: JSON.stringify({ PORT: port }),
          })
        ).id,
        undefined,
        BUILD_TIMEOUT_MS / 1000 - 30,
      );
      expect(build.status, JSON.stringify(build.error)).toBe('ready');
      const logs = await client.logs(build.id);
      for (const name of [
        'literal',
        'daemon',
        'loopname',
        'metadata',
        'private',
        'hostaddr',
        'ssh',
        'sshget',
        'outside',
      ]) {
        expect(logs).toContain(`PROBE_${name}_ HTTP/1.1 403`);
      }
      expect(logs).toContain('DIRECT_BLOCKED DIRECTPROXY_BLOCKED');

      const own = HOSTILE_NAMES['hostaddr.test'];
      const lines = networkLines(await events(build.id));
      expect(lines).toEqual([
        'denied 127.0.0.1:443: loopback address',
        `denied 127.0.0.1:${port}: loopback address`,
        'denied loopback.test:443 (127.0.0.1): loopback address',
        'denied metadata.test:80 (169.254.169.254): cloud metadata address',
        'denied private.test:443 (10.0.0.5): private address',
        expect.stringMatching(
          new RegExp(`^denied hostaddr\\.test:443 \\(${own?.replace(/\./g, '\\.')}\\): `),
        ) as unknown,
        'denied allowed.test:22: port not allowed',
        'denied allowed.test:22: port not allowed',
        'denied outside.test:443: host not in allowed_hosts',
      ]);
      const view = (await (
        await fetch(`${url}/builds/${build.id}`, {
          headers: { authorization: `Bearer ${tenantToken}` },
        })
      ).json()) as {
        result: {
          provenance: { hostsContacted?: string[] };
          egress: { hosts: unknown[]; denied: { message: string }[]; denied_total: number };
        };
      };
      expect(view.result.egress.denied.map((d) => d.message)).toEqual(lines);
      expect(view.result.egress.denied_total).toBe(lines.length);
      expect(view.result.egress.hosts).toEqual([]);
      expect(view.result.provenance.hostsContacted).toEqual([]);
      // Nothing was ever connected: every refusal came before the connector.
      expect(guard.calls.filter((c) => c.port !== npmRegistry().port)).toEqual([]);
    },
    BUILD_TIMEOUT_MS,
  );
});
