import { once } from 'node:events';
import { connect } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { eventually } from '../helpers/api-server.js';
import { tarArchive, tarEntry } from '../helpers/tar-builder.js';

let h: Harness;

beforeEach(async () => {
  h = await createHarness();
});
afterEach(async () => {
  await h.close();
});

describe('POST /builds over a real socket', () => {
  it('leaves no file, directory or row when the client disconnects mid-upload', async () => {
    const token = await h.token('acme');
    const boundary = 'kilnboundary1234';
    const tar = tarArchive({ name: 'big', content: Buffer.alloc(4 * 1024 * 1024, 1) });
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="source"; filename="a.tar"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    );
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const length = head.length + tar.length + tail.length;
    const socket = connect(h.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(
      `POST /builds HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n` +
        `Content-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${length}\r\n\r\n`,
    );
    socket.write(head);
    socket.write(tar.subarray(0, 1024 * 1024));
    // The upload is under way: its directory and partial file exist.
    await eventually(() => h.buildDirs().length === 1);
    socket.destroy();
    await eventually(() => h.buildDirs().length === 0);
    expect(h.buildRows()).toBe(0);
  });

  it('answers an early rejection while the client is still sending, leaving nothing', async () => {
    const fd = new FormData();
    fd.append('colour', 'red');
    fd.append(
      'source',
      new Blob([tarArchive({ name: 'big', content: Buffer.alloc(32 * 1024 * 1024, 1) })]),
      'a.tar',
    );
    const res = await fetch(`${h.url}/builds`, {
      method: 'POST',
      body: fd,
      headers: { authorization: `Bearer ${await h.token('acme')}` },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('UNKNOWN_FIELD');
    await eventually(() => h.buildDirs().length === 0);
    expect(h.buildRows()).toBe(0);
  });

  it('answers a bad field sent before the source at once and reads little of an unending upload', async () => {
    const token = await h.token('acme');
    const boundary = 'kilnboundary5678';
    const declared = 1024 ** 3;
    const socket = connect(h.port, '127.0.0.1');
    await once(socket, 'connect');
    let response = '';
    let sent = 0;
    let sentWhenAnswered: number | null = null;
    socket.on('data', (d: Buffer) => {
      sentWhenAnswered ??= sent;
      response += d.toString('latin1');
    });
    socket.on('error', () => undefined);
    const connection = { open: true };
    const closed = new Promise<void>((resolve) =>
      socket.once('close', () => {
        connection.open = false;
        resolve();
      }),
    );
    socket.write(
      `POST /builds HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n` +
        `Content-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${declared}\r\n\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="cpus"\r\n\r\n999\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="source"; filename="a.tar"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    );
    // The source part is a valid archive that never ends as far as the server can tell (one
    // entry as large as the body): the client keeps sending as fast as the server reads, until
    // the server closes the connection.
    socket.write(tarEntry({ name: 'big', size: declared }));
    const chunk = Buffer.alloc(64 * 1024);
    while (connection.open && sent < declared / 2) {
      if (!socket.write(chunk)) {
        await Promise.race([once(socket, 'drain').catch(() => undefined), closed]);
      }
      sent += chunk.length;
    }
    await closed;
    expect(response).toMatch(/^HTTP\/1\.1 400 /);
    expect(response).toContain('"code":"RESOURCE_OUT_OF_RANGE"');
    // Answered with little more than the socket buffers in flight, not after the source.
    expect(sentWhenAnswered).toBeLessThan(32 * 1024 * 1024);
    // After answering, the HTTP server reads on only for its bounded lingering close (so the
    // client is not reset before it reads the answer), then closes: the upload's size does
    // not matter.
    expect(sent).toBeLessThan(declared / 8);
    expect(h.buildDirs()).toEqual([]);
    expect(h.buildRows()).toBe(0);
  });

  it('rejects a bad archive at its first entry while the rest is still streaming', async () => {
    const fd = new FormData();
    const tar = tarArchive(
      { name: 'pipe', type: '6' },
      { name: 'big', content: Buffer.alloc(32 * 1024 * 1024, 1) },
    );
    fd.append('source', new Blob([tar]), 'a.tar');
    const res = await fetch(`${h.url}/builds`, {
      method: 'POST',
      body: fd,
      headers: { authorization: `Bearer ${await h.token('acme')}` },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
      'SOURCE_FORBIDDEN_ENTRY',
    );
    await eventually(() => h.buildDirs().length === 0);
    expect(h.buildRows()).toBe(0);
  });

  it('answers a complete upload with 202 over the socket', async () => {
    const fd = new FormData();
    fd.append('source', new Blob([tarArchive({ name: 'f', content: 'x' })]), 'a.tar');
    const res = await fetch(`${h.url}/builds`, {
      method: 'POST',
      body: fd,
      headers: { authorization: `Bearer ${await h.token('acme')}` },
    });
    expect(res.status).toBe(202);
    expect(h.buildRows()).toBe(1);
  });
});
