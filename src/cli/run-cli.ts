import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { runBuildCommand } from './build-command.js';
import type { BuildCliOptions } from './build-options.js';
import { runBuildsCommand } from './builds-command.js';
import { runCachesList, runCachesRemove } from './caches-command.js';
import { runCancelCommand } from './cancel-command.js';
import { CliExit, EXIT, type ExitCode } from './cli-exit.js';
import type { CliIo } from './cli-io.js';
import { DaemonUnreachable, unreachableExit } from './kiln-client.js';
import { runLoginCommand } from './login-command.js';
import { runLogsCommand } from './logs-command.js';
import { parseCpus, parseDuration, parseMemoryMb } from './parse-units.js';
import { runSecretsList, runSecretsRemove, runSecretsSet } from './secrets-command.js';
import { parseScopes, runTokenCreate } from './token-command.js';
import { parseOverlap, runWebhooksRotateSecret } from './webhooks-command.js';
import { runAdminBackup, runAdminRestore } from '../admin/admin-commands.js';
import { BUILD_STATUSES } from '../builds/build.js';
import { ConfigError } from '../config/config.js';
import { isAppError } from '../errors/app-error.js';

const collect = (value: string, previous: string[]) => [...previous, value];

function parseLimit(text: string): number {
  const n = Number(text);
  if (!/^\d{1,3}$/.test(text) || n < 1 || n > 100) {
    throw new InvalidArgumentError('must be 1 to 100');
  }
  return n;
}

function outputOption(): Option {
  return new Option('--output <format>', 'json for machine-readable output').choices([
    'json',
    'text',
  ]);
}

/**
 * The `kiln` command line. Client commands (`build`, `builds`, `logs`, `cancel`, `secrets`,
 * `caches`, `webhooks`, `login`) talk to a daemon over HTTP; `token create` and
 * `admin backup|restore` run on the daemon's host with its keys and data directory. Returns the
 * process exit code (see `EXIT`): 0 ready or done, 1 failed, 2 usage, 3 daemon unreachable or
 * token refused, 130 cancelled.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode: ExitCode = EXIT.ready;
  const done = (code: ExitCode) => {
    exitCode = code;
  };
  const program = new Command('kiln')
    .description('Kiln build host command line')
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });

  program
    .command('build')
    .description('build an image from a directory, like docker build')
    .argument('[path]', 'build context directory', '.')
    .option('-f, --file <file>', 'Dockerfile (default PATH/Dockerfile; - reads standard input)')
    .option(
      '-t, --tag <name[:tag]>',
      'image name and tag, default latest (lands in <tenant>/<name>; repeatable)',
      collect,
      [],
    )
    .option('--build-arg <key=value>', 'build argument (repeatable)', collect, [])
    .option(
      '--secret <spec>',
      'per-build secret id=ID,src=FILE or id=ID,env=VAR, held in memory for this build only (repeatable)',
      collect,
      [],
    )
    .option(
      '--stored-secret <id>',
      'secret stored with `kiln secrets set` (repeatable)',
      collect,
      [],
    )
    .option('--cache-scope <scope>', 'build cache scope')
    .addOption(new Option('--network <mode>', 'network mode').choices(['isolated', 'egress']))
    .option(
      '--allow-host <host>',
      'host (or *.domain, host:port) an egress build may reach, within the operator allow-list (repeatable; needs --network egress)',
      collect,
      [],
    )
    .addOption(
      new Option(
        '--engine <engine>',
        "build engine (default: the daemon's guest image's best)",
      ).choices(['buildkit', 'buildah']),
    )
    .option('--timeout <duration>', 'build time limit (600, 30m, 2h)', parseDuration)
    .option('--memory <size>', 'VM memory (512m, 2g; a bare number is MiB)', parseMemoryMb)
    .option('--cpus <n>', 'VM vCPUs', parseCpus)
    .option('-d, --detach', 'print the build id once it is accepted and exit')
    .addOption(outputOption())
    .option('-q, --quiet', 'print only the image reference when it is ready')
    .action(async (contextArg: string, opts: BuildCliOptions) => {
      done(await runBuildCommand(contextArg, opts, io));
    });

  program
    .command('builds')
    .description("list this tenant's builds, newest first")
    .addOption(
      new Option('--status <status>', 'only builds in this status').choices(BUILD_STATUSES),
    )
    .option('--limit <n>', 'how many (1-100)', parseLimit, 20)
    .addOption(outputOption())
    .action(async (opts: { status?: string; limit: number; output?: 'json' | 'text' }) => {
      done(await runBuildsCommand(opts, io));
    });

  program
    .command('logs')
    .description("print a build's log")
    .argument('<id>', 'build id')
    .option('-f, --follow', 'follow the log until the build ends')
    .option('--tail <n>', 'only the last N lines', (t) => parseLimitLines(t))
    .action(async (id: string, opts: { follow?: boolean; tail?: number }) => {
      done(await runLogsCommand(id, opts, io));
    });

  program
    .command('cancel')
    .description('cancel builds')
    .argument('<id...>', 'build ids')
    .action(async (ids: string[]) => {
      done(await runCancelCommand(ids, io));
    });

  const secrets = program.command('secrets').description("this tenant's stored build secrets");
  secrets
    .command('set')
    .description('store a secret (value from standard input, a file or an environment variable)')
    .argument('<id>', 'secret id')
    .option('--from-file <file>', 'read the value from a file')
    .option('--from-env <var>', 'read the value from an environment variable')
    .action(async (id: string, opts: { fromFile?: string; fromEnv?: string }) => {
      done(await runSecretsSet(id, opts, io));
    });
  secrets
    .command('ls')
    .description('list secret ids (values are never shown)')
    .addOption(outputOption())
    .action(async (opts: { output?: 'json' | 'text' }) => {
      done(await runSecretsList(opts, io));
    });
  secrets
    .command('rm')
    .description('remove secrets')
    .argument('<id...>', 'secret ids')
    .action(async (ids: string[]) => {
      done(await runSecretsRemove(ids, io));
    });

  const caches = program
    .command('caches')
    .description("this tenant's persistent cache disks (scope, size, last use)")
    .addOption(outputOption())
    .action(async (opts: { output?: 'json' | 'text' }) => {
      done(await runCachesList(opts, io));
    });
  caches
    .command('rm')
    .description('remove cache disks (the next build of the scope starts cold)')
    .argument('<scope...>', 'cache scopes')
    .action(async (scopes: string[]) => {
      done(await runCachesRemove(scopes, io));
    });

  const webhooks = program.command('webhooks').description("this tenant's webhook signing");
  webhooks
    .command('rotate-secret')
    .description(
      'replace the signing secret; the old one keeps signing beside it for the overlap, then stops',
    )
    .option(
      '--overlap <duration>',
      'how long deliveries carry both signatures (0 to 7d; default 24h)',
      parseOverlap,
    )
    .addOption(outputOption())
    .action(async (opts: { overlap?: number; output?: 'json' | 'text' }) => {
      done(await runWebhooksRotateSecret(opts, io));
    });

  program
    .command('login')
    .description('check a token against a daemon and store both for later commands')
    .argument('<url>', 'daemon URL, e.g. http://127.0.0.1:8083')
    .option('--token <token>', 'API token (default: KILN_TOKEN or standard input)')
    .action(async (url: string, opts: { token?: string }) => {
      done(await runLoginCommand(url, opts, io));
    });

  const token = program.command('token').description('API tokens (on the daemon host)');
  token
    .command('create')
    .description('print a new API token for a tenant')
    .requiredOption('--tenant <tenant>', 'tenant name')
    .requiredOption(
      '--scope <scopes>',
      'comma-separated scopes, e.g. builds:write,builds:read',
      parseScopes,
    )
    .option('--ttl <duration>', 'lifetime (s, m, h or d suffix)', parseDuration, 30 * 86_400)
    .action(async (opts: Parameters<typeof runTokenCreate>[0]) => {
      done(await runTokenCreate(opts, io));
    });

  const admin = program.command('admin').description('data directory care (on the daemon host)');
  admin
    .command('backup')
    .description('back up the data directory while the daemon runs')
    .requiredOption('--to <dir>', 'new directory to write the backup to')
    .option('--data <dir>', 'data directory (default KILN_DATA_DIR)')
    .action(async (opts: Parameters<typeof runAdminBackup>[0]) => {
      done(await runAdminBackup(opts, io));
    });
  admin
    .command('restore')
    .description('restore a backup into an empty data directory (daemon stopped)')
    .requiredOption('--from <dir>', 'backup directory')
    .option('--data <dir>', 'data directory (default KILN_DATA_DIR)')
    .action(async (opts: Parameters<typeof runAdminRestore>[0]) => {
      done(await runAdminRestore(opts, io));
    });

  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end with code 0; every parsing problem is a usage error.
      return err.exitCode === 0 ? EXIT.ready : EXIT.usage;
    }
    const exit = err instanceof DaemonUnreachable ? unreachableExit(err) : err;
    if (exit instanceof CliExit) {
      io.stderr(`kiln: ${exit.message}\n`);
      return exit.exitCode;
    }
    if (err instanceof ConfigError || isAppError(err)) {
      io.stderr(`kiln: ${err.message}\n`);
      return EXIT.usage;
    }
    throw err;
  }
  return exitCode;
}

function parseLimitLines(text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 10_000) {
    throw new InvalidArgumentError('must be 0 to 10000');
  }
  return Number(text);
}
