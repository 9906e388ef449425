import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSocatBridge } from '../../agent/channel/socat-bridge.js';

let dir: string;
let server: net.Server;
let received: Promise<Buffer>;
let connected: Promise<(data: string) => void>;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-socat-'));
  let onConnect: (send: (data: string) => void) => void = () => undefined;
  connected = new Promise((resolve) => {
    onConnect = resolve;
  });
  received = new Promise((resolve) => {
    server = net.createServer((socket) => {
      onConnect((data) => {
        socket.write(data);
      });
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('end', () => {
        resolve(Buffer.concat(chunks));
        socket.end();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(path.join(dir, 'host.sock'), resolve));
});

afterEach(async () => {
  await new Promise<void>((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
  await rm(dir, { recursive: true, force: true });
});

describe('socat bridge channel', () => {
  it('delivers everything written before close, even a large last message', async () => {
    const channel = openSocatBridge(`UNIX-CONNECT:${path.join(dir, 'host.sock')}`);
    const payload = `${'x'.repeat(2 * 1024 * 1024)}\n`;
    channel.output.write(payload);
    await channel.close();
    const got = await received;
    expect(got.length).toBe(payload.length);
  });

  it('carries host bytes to the agent input', async () => {
    const channel = openSocatBridge(`UNIX-CONNECT:${path.join(dir, 'host.sock')}`);
    const first = new Promise<string>((resolve) => {
      channel.input.once('data', (d: Buffer) => {
        resolve(d.toString('utf8'));
      });
    });
    channel.output.write('hello\n');
    const sendToAgent = await connected;
    sendToAgent('{"type":"cancel","reason":"x"}\n');
    expect(await first).toBe('{"type":"cancel","reason":"x"}\n');
    await channel.close();
  });

  it('ends the input and closes cleanly when socat cannot connect', async () => {
    const channel = openSocatBridge(`UNIX-CONNECT:${path.join(dir, 'nobody.sock')}`);
    await new Promise<void>((resolve) => {
      channel.input.on('end', resolve).on('close', resolve).resume();
    });
    await channel.close();
  });
});
