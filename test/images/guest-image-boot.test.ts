import { spawn } from 'node:child_process';
import { access } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface SmokeSummary {
  ok: boolean;
  helloMs?: number;
  engines?: string[];
  qemuExit: number;
  result?: {
    ok: boolean;
    code?: string;
    imageDigest?: string;
    provenance?: { engine: { name: string }; baseImages: Record<string, string> };
  };
}

/** Runs scripts/image-smoke.sh and returns its JSON summary line. */
function smoke(args: string[]): Promise<{ code: number; summary: SmokeSummary; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [path.join(repo, 'scripts/image-smoke.sh'), ...args], {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (output += d.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => {
      const line = output
        .trim()
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('{'));
      if (line === undefined) {
        reject(new Error(`image-smoke.sh printed no summary:\n${output}`));
        return;
      }
      resolve({ code: code ?? -1, summary: JSON.parse(line) as SmokeSummary, output });
    });
  });
}

/**
 * Boots the built guest image (scripts/build-image.sh, run by scripts/setup.sh) in a real QEMU
 * microvm: the agent must say hello over virtio-serial and the VM must power itself off.
 */
describe('the builder guest image under QEMU', () => {
  it('boots, the agent says hello, and the VM powers off when the build is cancelled', async () => {
    // The project's global setup points KILN_IMAGE_DIR at this checkout's image.
    const cache =
      process.env.KILN_CACHE_DIR ??
      path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'kiln');
    await access(
      path.join(process.env.KILN_IMAGE_DIR ?? path.join(cache, 'images', 'current'), 'rootfs.img'),
    );
    const { code, summary, output } = await smoke([]);
    expect(code, output).toBe(0);
    expect(summary.engines).toContain('buildah');
    expect(summary.qemuExit).toBe(0);
    expect(summary.result).toMatchObject({ ok: false, code: 'cancelled' });
  }, 240_000);

  it('runs a real Buildah build in the guest and pushes to a registry through the forward', async () => {
    const { code, summary, output } = await smoke(['--build']);
    expect(code, output).toBe(0);
    expect(summary.qemuExit).toBe(0);
    expect(summary.result?.ok).toBe(true);
    expect(summary.result?.imageDigest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(summary.result?.provenance?.engine.name).toBe('buildah');
    expect(Object.keys(summary.result?.provenance?.baseImages ?? {})).toEqual(['busybox']);
    expect(output).toContain('built.txt in a layer: yes');
  }, 420_000);
});
