// Runs Verdaccio (a real npm registry) for the tests, on 127.0.0.1 at a port the kernel picks,
// and prints {"port": N} on its first stdout line. Verdaccio's own CLI wants Node 22; its
// programmatic entry point runs on the Node 20 the host has. Usage: node verdaccio-server.mjs <config.yaml>
import { runServer } from 'verdaccio';

const app = await runServer(process.argv[2]);
const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
