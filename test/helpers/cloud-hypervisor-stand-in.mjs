#!/usr/bin/env node
// Cloud Hypervisor STAND-IN for tests: Cloud Hypervisor cannot be installed on these machines,
// so the driver's tests spawn this process instead (CloudHypervisorVmm `binary` option). It is
// not a VMM. It reproduces the parts of cloud-hypervisor the driver relies on:
// - CLI: `--api-socket path=<sock>`, `--event-monitor fd=<n>`, `--version`;
// - REST API over the Unix socket (docs/cloud-hypervisor-api.md): vmm.ping,
//   vm.create, vm.boot, vm.info, vm.shutdown, vmm.shutdown, with CH's status codes for bad
//   sequences (404 not created, 405 not booted, 500 already created) and its error bodies
//   (a JSON array of the error chain's messages); a PUT without Content-Length is refused;
// - event monitor: pretty-printed JSON events separated by blank lines;
// - serial: kernel-like lines appended to the serial file;
// - the guest side of hybrid vsock: on boot it dials `<vsock socket>_1024` (the agent:
//   sends `hello`, answers `start`) and `<vsock socket>_1025` (the registry tunnel: sends a
//   payload, half-closes, records what comes back) and, when the cmdline has
//   `kiln.egress_vsock=<port>`, `<vsock socket>_<port>` (the egress proxy tunnel: sends one
//   absolute-form request for http://probe.test/ and reports the status line it gets back).
// Environment: KILN_CH_STAND_IN_RECORD (JSON-lines file of requests and guest observations),
// KILN_CH_STAND_IN_SCENARIO = normal | reboot | boot-fails | no-api | no-agent (the guest
// never dials the agent port),
// KILN_CH_STAND_IN_TUNNEL_BYTES (size of the registry payload, default 1 MiB).
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, unlinkSync, writeSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect, createServer as createNetServer } from 'node:net';

const args = process.argv.slice(2);
if (args.includes('--version')) {
  process.stdout.write('cloud-hypervisor v41.0.0-stand-in\n');
  process.exit(0);
}

const recordFile = process.env.KILN_CH_STAND_IN_RECORD;
const scenario = process.env.KILN_CH_STAND_IN_SCENARIO ?? 'normal';
const tunnelBytes = Number(process.env.KILN_CH_STAND_IN_TUNNEL_BYTES ?? 1024 * 1024);
const started = process.hrtime.bigint();

function record(entry) {
  if (recordFile) appendFileSync(recordFile, `${JSON.stringify({ at: Date.now(), ...entry })}\n`);
}

function option(name) {
  const i = args.indexOf(name);
  if (i === -1 || i + 1 >= args.length) return undefined;
  return Object.fromEntries(
    args[i + 1].split(',').map((kv) => {
      const eq = kv.indexOf('=');
      return [kv.slice(0, eq), kv.slice(eq + 1)];
    }),
  );
}

const apiSocket = option('--api-socket')?.path;
const eventFd = option('--event-monitor')?.fd;
record({ kind: 'argv', args });

if (scenario === 'no-api' || apiSocket === undefined) {
  process.stderr.write('Error: stand-in refuses to start (scenario no-api or no --api-socket)\n');
  process.exit(1);
}

function event(source, name) {
  if (eventFd === undefined) return;
  const elapsed = process.hrtime.bigint() - started;
  const body = {
    timestamp: { secs: Number(elapsed / 1_000_000_000n), nanos: Number(elapsed % 1_000_000_000n) },
    source,
    event: name,
    properties: null,
  };
  writeSync(Number(eventFd), `${JSON.stringify(body, null, 2)}\n\n`);
}

let vmConfig;
let state = 'None';
const guestSockets = new Set();
let vsockHostListener;

function reply(res, status, body) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Length': Buffer.byteLength(text),
    ...(text ? { 'Content-Type': 'application/json' } : {}),
  });
  res.end(text);
}

function serial(line) {
  if (vmConfig?.serial?.mode === 'File') appendFileSync(vmConfig.serial.file, `${line}\n`);
}

let agentSocket;

function playAgent(socketBase) {
  const sock = connect(`${socketBase}_1024`);
  agentSocket = sock;
  guestSockets.add(sock);
  sock.on('close', () => guestSockets.delete(sock));
  sock.on('error', (err) => record({ kind: 'guest', what: 'agent-error', message: err.message }));
  sock.on('connect', () => {
    record({ kind: 'guest', what: 'agent-connected' });
    sock.write(
      `${JSON.stringify({ type: 'hello', protocol: 1, agentVersion: 'stand-in', engines: ['buildah'] })}\n`,
    );
    if (scenario === 'reboot') {
      // The guest resets (e.g. a kernel panic with panic=-1): CH emits these and boots again.
      setImmediate(() => {
        serial('reboot: Restarting system');
        // Recorded before the events go out: the driver SIGKILLs this process as soon as it
        // reads them, which may be before a later line here runs.
        record({ kind: 'guest', what: 'rebooted' });
        event('vm', 'rebooting');
        event('vm', 'rebooted');
      });
    }
  });
  let buffered = '';
  sock.on('data', (chunk) => {
    buffered += chunk.toString('utf8');
    let nl;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const message = JSON.parse(line);
      record({ kind: 'guest', what: 'agent-received', message });
      if (message.type === 'start') {
        sock.write(
          `${JSON.stringify({ type: 'log', stream: 'system', data: `start received with ${Object.keys(message.secrets).length} secret(s)`, at: Date.now() })}\n`,
        );
      }
    }
  });
}

function playRegistryClient(socketBase) {
  const payload = randomBytes(tunnelBytes);
  const sentSha = createHash('sha256').update(payload).digest('hex');
  const sock = connect(`${socketBase}_1025`);
  guestSockets.add(sock);
  sock.on('close', () => guestSockets.delete(sock));
  const chunks = [];
  sock.on('error', (err) =>
    record({ kind: 'guest', what: 'registry-error', message: err.message }),
  );
  sock.on('data', (chunk) => chunks.push(chunk));
  sock.on('end', () => {
    const observed = {
      sentBytes: payload.length,
      sentSha,
      answer: Buffer.concat(chunks).toString('utf8'),
    };
    record({ kind: 'guest', what: 'registry-answer', ...observed });
    // Also tell the test over the agent channel, so it can wait for it without polling.
    agentSocket?.write(
      `${JSON.stringify({ type: 'log', stream: 'system', data: `registry-answer ${JSON.stringify(observed)}`, at: Date.now() })}\n`,
    );
  });
  sock.on('connect', () => {
    sock.end(payload);
  });
}

function playEgressClient(socketBase, port) {
  const sock = connect(`${socketBase}_${port}`);
  guestSockets.add(sock);
  sock.on('close', () => guestSockets.delete(sock));
  const chunks = [];
  const report = (statusLine) => {
    record({ kind: 'guest', what: 'egress-answer', statusLine });
    agentSocket?.write(
      `${JSON.stringify({ type: 'log', stream: 'system', data: `egress-answer ${statusLine}`, at: Date.now() })}\n`,
    );
  };
  sock.on('error', (err) => report(`error ${err.message}`));
  sock.on('data', (chunk) => chunks.push(chunk));
  sock.on('end', () => report(Buffer.concat(chunks).toString('utf8').split('\r\n')[0]));
  sock.on('connect', () => {
    sock.write('GET http://probe.test/ HTTP/1.1\r\nHost: probe.test\r\nConnection: close\r\n\r\n');
  });
}

function bootGuest() {
  serial('[    0.000000] Linux version 6.1.0-stand-in (cloud-hypervisor stand-in)');
  serial('[    0.500000] Run /init as init process');
  const socketBase = vmConfig.vsock?.socket;
  if (socketBase === undefined) return;
  // CH binds the vsock socket itself for host-initiated connections.
  vsockHostListener = createNetServer((s) => s.destroy());
  vsockHostListener.listen(socketBase);
  if (scenario === 'no-agent') return;
  playAgent(socketBase);
  playRegistryClient(socketBase);
  const egressPort = /(?:^| )kiln\.egress_vsock=(\d+)/.exec(vmConfig.payload?.cmdline ?? '')?.[1];
  if (egressPort !== undefined) playEgressClient(socketBase, egressPort);
}

function stopGuest() {
  for (const s of guestSockets) s.destroy();
  guestSockets.clear();
  vsockHostListener?.close();
  vsockHostListener = undefined;
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    const endpoint = (req.url ?? '').replace(/^\/api\/v1\//, '');
    record({
      kind: 'request',
      method: req.method,
      endpoint,
      contentLength: req.headers['content-length'] ?? null,
      contentType: req.headers['content-type'] ?? null,
      body: text === '' ? null : JSON.parse(text),
    });
    // micro_http reads a body only with Content-Length and rejects chunked transfers.
    if (req.method === 'PUT' && req.headers['content-length'] === undefined) {
      reply(res, 400, ['Bad Request', 'Missing Content-Length header']);
      return;
    }
    const route = `${req.method} ${endpoint}`;
    switch (route) {
      case 'GET vmm.ping':
        reply(res, 200, {
          build_version: 'stand-in',
          version: '41.0.0',
          pid: process.pid,
          features: ['kvm'],
        });
        return;
      case 'PUT vm.create':
        if (state !== 'None') {
          reply(res, 500, [
            'Error from API',
            'The VM could not be created',
            'VM is already created',
          ]);
          return;
        }
        if (text === '' || JSON.parse(text).payload === undefined) {
          reply(res, 400, ['Error from API', 'Missing payload']);
          return;
        }
        vmConfig = JSON.parse(text);
        state = 'Created';
        event('vm', 'created');
        reply(res, 204);
        return;
      case 'PUT vm.boot':
        if (state === 'None') {
          reply(res, 404, ['Error from API', 'The VM could not boot', 'VM is not created']);
          return;
        }
        if (scenario === 'boot-fails') {
          reply(res, 500, [
            'Error from API',
            'The VM could not boot',
            'Error loading kernel: stand-in scenario boot-fails',
          ]);
          return;
        }
        if (state !== 'Created') {
          reply(res, 500, ['Error from API', 'The VM could not boot', 'VM is already running']);
          return;
        }
        state = 'Running';
        event('vm', 'booting');
        bootGuest();
        event('vm', 'booted');
        reply(res, 204);
        return;
      case 'GET vm.info':
        if (state === 'None') {
          reply(res, 404, ['Error from API', 'VM is not created']);
          return;
        }
        reply(res, 200, { config: vmConfig, state });
        return;
      case 'PUT vm.shutdown':
        if (state === 'None') {
          reply(res, 404, ['Error from API', 'VM is not created']);
          return;
        }
        if (state !== 'Running') {
          reply(res, 405, ['Error from API', 'VM is not running']);
          return;
        }
        stopGuest();
        state = 'Shutdown';
        event('vm', 'shutdown');
        reply(res, 204);
        return;
      case 'PUT vmm.shutdown':
        stopGuest();
        if (state !== 'None') event('vm', 'deleted');
        event('vmm', 'shutdown');
        reply(res, 204);
        res.on('finish', () => {
          server.close();
          try {
            unlinkSync(apiSocket);
          } catch {
            // already gone
          }
          process.exit(0);
        });
        return;
      default:
        reply(res, 404, ['Not Found']);
    }
  });
});

event('vmm', 'starting');
server.listen(apiSocket, () => record({ kind: 'listening', apiSocket, pid: process.pid }));
process.on('SIGTERM', () => process.exit(0));
