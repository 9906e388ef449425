/**
 * Upload memory benchmark: streams a generated 1 GiB tar, then the same as tar.gz, as a
 * multipart POST /builds to a real daemon process and reports its peak RSS growth during the
 * upload (target < 64 MiB: the upload is streamed to disk, never buffered).
 *
 * Run: npx tsx bench/upload-memory.bench.ts [--plain | --gzip] [--mib 1024]
 * Writes bench/results/upload-memory.json.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { tarEntry } from '../test/helpers/tar-builder.js';

const MiB = 1024 * 1024;
const TARGET_MIB = 64;
const args = process.argv.slice(2);
const modes: boolean[] = args.includes('--gzip')
  ? [true]
  : args.includes('--plain')
    ? [false]
    : [false, true];
const mibArg = args.indexOf('--mib');
const totalMiB = mibArg === -1 ? 1024 : Number(args[mibArg + 1]);
const FILE_MIB = 8;

function statusKiB(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
  if (!m?.[1]) throw new Error(`no ${key} for ${pid}`);
  return Number(m[1]);
}

/** A tar stream of `totalMiB` MiB in FILE_MIB files, generated lazily (never held whole). */
function* tarStream(): Generator<Buffer> {
  const block = Buffer.alloc(MiB);
  for (let i = 0; i < block.length; i++) block[i] = (i * 2654435761) >>> 24;
  const files = Math.ceil(totalMiB / FILE_MIB);
  for (let f = 0; f < files; f++) {
    // The header alone: the content streams after it.
    yield tarEntry({ name: `data/file-${f}.bin`, size: FILE_MIB * MiB });
    for (let m = 0; m < FILE_MIB; m++) {
      block.writeUInt32LE(f * FILE_MIB + m, 0);
      yield Buffer.from(block);
    }
  }
  yield Buffer.alloc(1024);
}

async function measure(useGzip: boolean): Promise<Record<string, unknown> & { pass: boolean }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'kiln-bench-upload-'));
  const daemon = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: {
      ...process.env,
      KILN_DATA_DIR: dataDir,
      KILN_PORT: '0',
      KILN_LOG_LEVEL: 'info',
      // No guest image: the accepted build fails at once instead of booting a VM.
      KILN_IMAGE_DIR: path.join(dataDir, 'no-image'),
      KILN_MAX_SOURCE_BYTES: `${totalMiB + 64}M`,
      KILN_MAX_UNPACKED_BYTES: `${totalMiB + 64}M`,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let buffered = '';
      daemon.stdout.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('utf8');
        for (const line of buffered.split('\n')) {
          if (!line.includes('"msg":"listening"')) continue;
          resolve((JSON.parse(line) as { port: number }).port);
        }
      });
      daemon.once('exit', (code) => {
        reject(new Error(`daemon exited with ${code}`));
      });
    });
    daemon.stdout.resume();
    const pid = daemon.pid!;
    const token = await new Promise<string>((resolve, reject) => {
      const cli = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          'src/cli/kiln.ts',
          'token',
          'create',
          '--tenant',
          'bench',
          '--scope',
          'builds:write',
        ],
        {
          env: { ...process.env, KILN_DATA_DIR: dataDir },
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let out = '';
      cli.stdout.on('data', (c: Buffer) => (out += c.toString()));
      cli.once('exit', (code) => {
        if (code === 0) resolve(out.trim());
        else reject(new Error(`cli exited with ${code}`));
      });
    });

    // Measure from a settled daemon: reset the kernel's peak-RSS mark (clear_refs 5).
    await new Promise((resolve) => setTimeout(resolve, 500));
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    const rssBefore = statusKiB(pid, 'VmRSS');
    let peakSampled = rssBefore;
    const sampler = setInterval(() => {
      peakSampled = Math.max(peakSampled, statusKiB(pid, 'VmRSS'));
    }, 50);

    const boundary = 'kilnbenchboundary';
    const body = Readable.from(
      (async function* () {
        yield Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="source"; filename="src.tar${useGzip ? '.gz' : ''}"\r\n` +
            'Content-Type: application/octet-stream\r\n\r\n',
        );
        const source = useGzip
          ? Readable.from(tarStream()).pipe(createGzip({ level: 1 }))
          : Readable.from(tarStream());
        for await (const chunk of source) yield chunk as Buffer;
        yield Buffer.from(`\r\n--${boundary}--\r\n`);
      })(),
    );
    let sent = 0;
    const started = performance.now();
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/builds',
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': `multipart/form-data; boundary=${boundary}`,
            'transfer-encoding': 'chunked',
          },
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => {
            resolve({ status: res.statusCode ?? 0, body: text });
          });
        },
      );
      req.on('error', reject);
      body.on('data', (c: Buffer) => (sent += c.length));
      pipeline(body, req).catch(reject);
    });
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    const peak = Math.max(statusKiB(pid, 'VmHWM'), peakSampled);
    const growthMiB = (peak - rssBefore) / 1024;
    const result = {
      compression: useGzip ? 'gzip' : 'none',
      generatedTarMiB: totalMiB,
      uploadedBytes: sent,
      httpStatus: answer.status,
      seconds: Number(seconds.toFixed(2)),
      throughputMiBps: Number((sent / MiB / seconds).toFixed(1)),
      rssBeforeMiB: Number((rssBefore / 1024).toFixed(1)),
      peakRssMiB: Number((peak / 1024).toFixed(1)),
      peakGrowthMiB: Number(growthMiB.toFixed(1)),
      pass: answer.status === 202 && growthMiB < TARGET_MIB,
      node: process.version,
      at: new Date().toISOString(),
    };
    if (answer.status !== 202) {
      process.stderr.write(`upload answered ${answer.status}: ${answer.body}\n`);
    }
    return result;
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((resolve) => daemon.once('exit', resolve));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const runs = [];
for (const useGzip of modes) runs.push(await measure(useGzip));
const summary = {
  benchmark: 'upload-memory',
  targetMiB: TARGET_MIB,
  pass: runs.every((r) => r.pass),
  runs,
};
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/upload-memory.json', `${JSON.stringify(summary, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
if (!summary.pass) process.exitCode = 1;
