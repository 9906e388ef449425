import { runCli } from './run-cli.js';

// The one place the CLI touches the process: its streams, environment, directory and SIGINT.
process.exitCode = await runCli(process.argv.slice(2), {
  env: process.env,
  cwd: process.cwd(),
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  stdin: process.stdin,
  terminal: process.stderr.isTTY ? process.stderr : undefined,
  onInterrupt: (handler) => {
    process.on('SIGINT', handler);
    return () => {
      process.off('SIGINT', handler);
    };
  },
});
