// Warming a fresh chunk server up before it is measured. Its first thousands
// of requests run V8's unoptimised code for the request path (parse, answer,
// the socket writes), so a fresh server answers 4 KiB faults measurably slower
// than a warm one (the pairs are in docs/lab-notes.md). Warming is a plain
// client of the server's own protocol.
import net from 'node:net';
import { Op, RESP_HEADER_BYTES, encodeRequest } from './protocol.js';

/** READs a fresh server answers before it is measured, one at a time. */
export const WARM_UP_READS = 5000;
const TIMEOUT_MS = 30000;

/** The address a client reaches a server listening on `host` at (a wildcard means this machine). */
export function connectHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

/**
 * `reads` READs of min(4 KiB, region) bytes over one connection, walking the
 * region one at a time, as faults ask (the per-answer path is what gets
 * measured); resolves with the region bytes read once every answer is in.
 * Fails with one message if the server errs, closes, or goes quiet for
 * TIMEOUT_MS.
 */
export function warmUpReads(host: string, port: number, regionBytes: number, reads: number): Promise<number> {
  const len = Math.min(4096, regionBytes);
  const chunks = Math.floor(regionBytes / len);
  return new Promise<number>((resolve, reject) => {
    const sock = net.connect({ host: connectHost(host), port, noDelay: true });
    let sent = 0;
    let expected = 0;
    let received = 0;
    const timer = setTimeout(() => fail('no answer'), TIMEOUT_MS);
    const fail = (why: string) => {
      clearTimeout(timer);
      sock.destroy();
      reject(new Error(`chunk server warm-up: ${why} (${received} of ${expected} bytes after ${sent} READs)`));
    };
    const next = () => {
      if (sent === reads) {
        clearTimeout(timer);
        sock.end();
        resolve(reads * len);
        return;
      }
      sock.write(encodeRequest({ op: Op.READ, len, offset: (sent % chunks) * len }));
      sent++;
      expected += RESP_HEADER_BYTES + len;
    };
    sock.on('connect', next);
    sock.on('data', (d: Buffer) => {
      received += d.length;
      timer.refresh(); // quiet for TIMEOUT_MS, not slow overall
      if (received === expected) next();
      else if (received > expected) fail('more bytes than asked for');
    });
    sock.on('error', (e) => fail(e.message));
    sock.on('close', () => (sent < reads || received < expected ? fail('the server closed the connection') : undefined));
  });
}
