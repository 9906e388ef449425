import type { FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';

/** The size of each of the two buffers `sendFileChunks` reads into. */
export const CHUNK_BYTES = 2 * 1024 * 1024;

/** Two buffers of `CHUNK_BYTES`, allocated outside Node's pool. */
export function allocateChunkPair(): [Buffer, Buffer] {
  return [Buffer.allocUnsafeSlow(CHUNK_BYTES), Buffer.allocUnsafeSlow(CHUNK_BYTES)];
}

/**
 * Writes the first `size` bytes of an open file to a response the way the floor servers do:
 * read into one of two buffers while the other is written straight to the socket, each write
 * awaited. Returns the pair in the order to pass next time; the response is not ended.
 */
export async function sendFileChunks(
  handle: FileHandle,
  size: number,
  res: ServerResponse,
  pair: [Buffer, Buffer],
): Promise<[Buffer, Buffer]> {
  let [current, spare] = pair;
  let done = 0;
  let reading = handle.read(current, 0, Math.min(CHUNK_BYTES, size), 0);
  while (done < size) {
    const { bytesRead } = await reading;
    if (bytesRead === 0) throw new Error('file ended early');
    done += bytesRead;
    reading = handle.read(spare, 0, Math.min(CHUNK_BYTES, Math.max(0, size - done)), done);
    await new Promise<void>((resolve, reject) => {
      res.write(current.subarray(0, bytesRead), (err) => {
        if (err) reject(err);
        else resolve();
      });
    });
    [current, spare] = [spare, current];
  }
  await reading;
  return [current, spare];
}
