import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { listBuildContext } from './build-context.js';
import { buildFieldsFrom, type BuildCliOptions } from './build-options.js';
import { buildSecretFields } from './build-secret-option.js';
import { resolveEndpoint } from './cli-config.js';
import { CliExit, EXIT, usage, type ExitCode } from './cli-exit.js';
import { readAll, type CliIo } from './cli-io.js';
import { packBuildContext } from './context-archive.js';
import { EventRenderer, summaryLine } from './event-renderer.js';
import { followEvents } from './follow-events.js';
import { DaemonUnreachable, KilnClient, unreachableExit, type RemoteBuild } from './kiln-client.js';
import { multipartBody } from './multipart-body.js';
import { createUploadProgress } from './upload-progress.js';
import { systemClock } from '../../common/time/clock.js';

/** Largest inline Dockerfile the daemon takes (its multipart field limit). */
const MAX_DOCKERFILE_BYTES = 1024 * 1024;
/** Log lines repeated under a failure. */
const FAILURE_TAIL_LINES = 20;

const realSleep = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms);
  });

/**
 * Which Dockerfile the daemon reads: `dockerfile_path` when the file is part of the uploaded
 * context, else its content inline (`-f -`, a file outside the context, or one the ignore
 * rules leave out: Docker sends the Dockerfile whatever .dockerignore says).
 */
async function dockerfileField(
  file: string | null,
  contextRoot: string,
  inContext: (rel: string) => boolean,
  io: CliIo,
): Promise<[string, string]> {
  let content: string;
  if (file === null) {
    if (!io.stdin) throw usage('-f -: no standard input to read the Dockerfile from');
    content = await readAll(io.stdin);
  } else {
    const rel = path.relative(contextRoot, file).split(path.sep).join('/');
    if (!rel.startsWith('../') && !path.isAbsolute(rel) && inContext(rel)) {
      return ['dockerfile_path', rel];
    }
    try {
      content = await readFile(file, 'utf8');
    } catch {
      throw usage(`no Dockerfile at ${file}: name one with -f FILE`);
    }
  }
  if (content.trim() === '') throw usage('the Dockerfile is empty');
  if (Buffer.byteLength(content) > MAX_DOCKERFILE_BYTES) {
    throw usage('the Dockerfile is larger than 1 MiB');
  }
  return ['dockerfile', content];
}

function exitFor(build: RemoteBuild, io: CliIo, renderer: EventRenderer | null): ExitCode {
  if (build.status === 'ready') return EXIT.ready;
  if (build.status === 'cancelled') {
    io.stderr(`kiln: build ${build.id} was cancelled\n`);
    return EXIT.cancelled;
  }
  const error = build.error;
  const tail = (error?.log_tail ?? []).slice(-FAILURE_TAIL_LINES);
  if (tail.length > 0 && (renderer === null || renderer.logLines === 0)) {
    io.stderr(`${tail.map((l) => `   ${l}`).join('\n')}\n`);
  }
  io.stderr(
    `kiln: build ${build.id} ${build.status} (${error?.code ?? 'unknown'}): ${error?.message ?? ''} — full log: kiln logs ${build.id}\n`,
  );
  return EXIT.failed;
}

/**
 * `kiln build`: packs the context, uploads it with the options as form fields, follows the
 * events to the end and exits with the outcome (0 ready, 1 failed, 130 cancelled). The first
 * Ctrl-C asks the daemon to cancel and keeps following until `cancelled`; a second one leaves.
 */
export async function runBuildCommand(
  contextArg: string,
  opts: BuildCliOptions,
  io: CliIo,
): Promise<ExitCode> {
  const clock = io.clock ?? systemClock;
  const cwd = io.cwd ?? process.cwd();
  const fields = [
    ...buildFieldsFrom(opts, io.env),
    ...(await buildSecretFields(opts.secret, io.env, cwd)),
  ];
  const json = opts.output === 'json';
  const human = !json && !opts.quiet;
  const contextRoot = path.resolve(cwd, contextArg);
  const dockerfile =
    opts.file === '-' ? null : path.resolve(cwd, opts.file ?? path.join(contextRoot, 'Dockerfile'));
  const endpoint = await resolveEndpoint(io.env);
  const client = new KilnClient(endpoint);

  const context = await listBuildContext(contextRoot, dockerfile);
  const entries = new Set(context.entries);
  const dockerfilePart = await dockerfileField(
    dockerfile,
    contextRoot,
    (rel) => entries.has(rel),
    io,
  );

  // Ctrl-C: during the upload it aborts it (no build exists yet); once the build exists the
  // first press cancels it on the daemon, the second stops waiting.
  const upload = new AbortController();
  const follow = new AbortController();
  let build: RemoteBuild | null = null;
  let interrupts = 0;
  const cancel: { request: Promise<unknown> | null } = { request: null };
  const removeInterrupt = io.onInterrupt?.(() => {
    interrupts += 1;
    if (build === null) {
      upload.abort();
      return;
    }
    if (interrupts === 1) {
      io.stderr(
        `kiln: cancelling build ${build.id}… (press Ctrl-C again to leave without waiting)\n`,
      );
      cancel.request = client.cancelBuild(build.id).catch((err: unknown) => {
        io.stderr(`kiln: could not ask for the cancel: ${(err as Error).message}\n`);
      });
    } else {
      follow.abort();
    }
  });
  try {
    const progress = human
      ? createUploadProgress({
          total: context.tarBytes,
          clock,
          write: io.stderr,
          terminal: io.terminal,
        })
      : null;
    const archive = packBuildContext(context, (n) => progress?.advance(n));
    const body = multipartBody([dockerfilePart, ...fields], {
      name: 'source',
      filename: 'context.tar.gz',
      contentType: 'application/gzip',
      stream: archive,
    });
    try {
      build = await client.submitBuild(body.stream, body.boundary, upload.signal);
    } catch (err) {
      if (upload.signal.aborted) {
        throw new CliExit(EXIT.cancelled, 'upload cancelled; no build was created');
      }
      if (err instanceof DaemonUnreachable) throw unreachableExit(err);
      throw err;
    } finally {
      progress?.stop();
    }
    const accepted = build;
    if (opts.detach) {
      io.stdout(json ? `${JSON.stringify(accepted)}\n` : `${accepted.id}\n`);
      return EXIT.ready;
    }
    if (human) {
      const position =
        accepted.queue_position === null ? '' : `, position ${accepted.queue_position}`;
      io.stderr(`build ${accepted.id} accepted (${accepted.status}${position})\n`);
    }
    const renderer = human ? new EventRenderer(io.stderr) : null;
    await followEvents({
      client,
      buildId: accepted.id,
      signal: follow.signal,
      sleep: io.sleep ?? realSleep,
      onEvent: (event) => {
        if (json)
          io.stdout(`${JSON.stringify({ id: event.id, event: event.type, ...event.data })}\n`);
        else renderer?.render(event);
      },
      onReconnect: (lastId) => {
        if (human) io.stderr(`kiln: event stream dropped; resuming after event ${lastId}\n`);
      },
    });
    renderer?.flushLogs();
    if (follow.signal.aborted) {
      throw new CliExit(
        EXIT.cancelled,
        `left build ${accepted.id} while it is being cancelled; check it with \`kiln builds\``,
      );
    }
    await cancel.request;
    const final = await client.getBuild(accepted.id);
    if (human) io.stderr(summaryLine(final));
    if (opts.quiet && final.status === 'ready' && final.result) {
      const { image_refs: refs, image_ref: ref, image_digest: digest } = final.result;
      io.stdout((refs ?? [ref]).map((r) => `${r}@${digest}\n`).join(''));
    }
    return exitFor(final, io, renderer);
  } catch (err) {
    if (err instanceof DaemonUnreachable) throw unreachableExit(err);
    throw err;
  } finally {
    removeInterrupt?.();
  }
}
