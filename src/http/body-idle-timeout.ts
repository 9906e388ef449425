import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

/**
 * Cuts request bodies that stop arriving, however long a steady one takes. Node's own
 * `requestTimeout` caps the whole request (300 s by default), which fails any legitimate
 * upload slower than size/300 s; this replaces it with an idle limit: while a request's body
 * is being received, the socket may be silent for at most `idleMs` (any byte resets the
 * timer). Past that the connection is closed and the handler sees an aborted body. The timer
 * is cleared once the body has ended or the answer is sent, so a long response (an SSE
 * stream, a blob download) is never cut by it. Headers are bounded separately by the
 * server's `headersTimeout` (slowloris).
 */
export function watchBodyIdle(server: Server, idleMs: number, logger: Logger): void {
  if (!(idleMs > 0)) throw new Error('the body idle timeout must be positive');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const hasBody =
      req.headers['transfer-encoding'] !== undefined ||
      (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
    if (!hasBody) return;
    const onTimeout = (): void => {
      logger.info(
        { method: req.method, path: req.url, idleSeconds: idleMs / 1000 },
        'request body stalled: no byte within the idle timeout, connection closed',
      );
      req.socket.destroy();
    };
    req.setTimeout(idleMs, onTimeout);
    const clear = (): void => {
      req.off('timeout', onTimeout);
      req.socket.setTimeout(0);
    };
    req.once('end', clear);
    res.once('finish', clear);
  });
}
