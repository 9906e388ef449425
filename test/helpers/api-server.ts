import { Readable } from 'node:stream';
import type { ReadableStream as NodeWebReadableStream } from 'node:stream/web';

/** Polls `check` every 10 ms until it holds or `ms` passed (for effects of socket events). */
export async function eventually(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/** Reads SSE events from a streaming response until `until` says stop or the stream ends. */
export async function readSse(
  res: Response,
  until: (events: SseEvent[]) => boolean = () => false,
  onEvent: (event: SseEvent) => void = () => undefined,
): Promise<{ events: SseEvent[]; ended: boolean }> {
  const stream = Readable.fromWeb(res.body! as NodeWebReadableStream<Uint8Array>);
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let buffer = '';
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk as Buffer, { stream: true });
    let sep = buffer.indexOf('\n\n');
    while (sep !== -1) {
      const block = buffer.slice(0, sep);
      buffer = buffer.slice(sep + 2);
      const event: SseEvent = { event: 'message', data: '' };
      for (const line of block.split('\n')) {
        const i = line.indexOf(':');
        const key = i === -1 ? line : line.slice(0, i);
        const value2 = i === -1 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (key === 'id') event.id = value2;
        else if (key === 'event') event.event = value2;
        else if (key === 'data') event.data += value2;
      }
      events.push(event);
      onEvent(event);
      sep = buffer.indexOf('\n\n');
    }
    if (until(events)) {
      stream.destroy();
      return { events, ended: false };
    }
  }
  return { events, ended: true };
}
