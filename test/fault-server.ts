// A chunk server that misbehaves on purpose, run as a child process by the
// remote-fault tests (test/remote-faults.test.ts, test/hygiene.test.ts):
//
//   node --import tsx test/fault-server.ts --mode MODE [--after N] [--region BYTES] [--seed N]
//
// It speaks the real protocol (docs/protocol.md) over a region it holds
// (contents fill(seed, offset); WRITE changes them): HELLO and PING are always
// answered correctly (so a client connects and measures its RTT), and the
// first N data requests (READ or WRITE) of each connection are served right
// (each fetching thread of faultlab owns one connection, so one server serves
// several runs alike). From a connection's data request number N on
// (0-based), it does what MODE says:
//   ok         keep answering correctly (the control)
//   die        the process kills itself with SIGKILL (the server dies mid-run)
//   stall      read the request, never answer it (nor anything after it)
//   silent     from the start: accept connections, never answer anything, not even HELLO
//   short      a correct header, then half the body, then nothing (WRITE: half a header)
//   trickle    a correct header, then the body one byte every 200 ms (WRITE: the header)
//   oversized  a header announcing 4096 bytes more than asked, and those bytes
//   malformed  16 bytes of garbage instead of a header
//   reset      reset the connection (RST)
//   wrong      READ: a correct header with bytes of another seed (a chunk that does not
//              verify); WRITE: acknowledged but not stored (the write is lost)
// Prints "listening PORT" on stdout once it accepts connections.
import net from 'node:net';
import { fill } from '../harness/native.js';
import { HELLO_BODY_BYTES, Op, REQ_HEADER_BYTES, Status, decodeRequest, encodeHello, encodeResponse } from '../harness/server/protocol.js';

export const FAULT_MODES = ['ok', 'die', 'stall', 'silent', 'short', 'trickle', 'oversized', 'malformed', 'reset', 'wrong'] as const;
export type FaultMode = (typeof FAULT_MODES)[number];

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const mode = arg('mode', 'ok') as FaultMode;
if (!FAULT_MODES.includes(mode)) {
  console.error(`fault-server: unknown mode '${mode}' (known: ${FAULT_MODES.join(', ')})`);
  process.exit(2);
}
const after = Number(arg('after', '0'));
const regionBytes = Number(arg('region', String(1 << 20)));
const seed = BigInt(arg('seed', '1'));
const sockets = new Set<net.Socket>();
const region = Buffer.alloc(regionBytes);
fill(region, seed, 0);

function otherBytes(off: bigint, len: number): Buffer {
  const b = Buffer.alloc(len);
  fill(b, seed + 1n, off);
  return b;
}

function onConnection(sock: net.Socket): void {
  sockets.add(sock);
  sock.on('close', () => sockets.delete(sock));
  sock.on('error', () => sock.destroy());
  sock.setNoDelay(true);
  let buf = Buffer.alloc(0);
  let stuck = false; // after a stall, short answer or trickle: answer nothing more
  let data = 0; // READs and WRITEs seen so far on this connection
  sock.on('data', (d: Buffer) => {
    if (mode === 'silent' || stuck) return;
    buf = Buffer.concat([buf, d]);
    while (!stuck && buf.length >= REQ_HEADER_BYTES) {
      const h = decodeRequest(buf);
      const need = REQ_HEADER_BYTES + (h.op === Op.WRITE ? h.len : 0);
      if (buf.length < need) return;
      const payload = buf.subarray(REQ_HEADER_BYTES, need);
      buf = buf.subarray(need);
      if (h.op === Op.HELLO) {
        sock.write(Buffer.concat([encodeResponse({ status: Status.OK, len: HELLO_BODY_BYTES, value: BigInt(regionBytes) }), encodeHello(regionBytes, seed)]));
      } else if (h.op === Op.PING) {
        sock.write(encodeResponse({ status: Status.OK, value: h.offset }));
      } else if (h.op === Op.READ || h.op === Op.WRITE) {
        if (h.offset + BigInt(h.len) > BigInt(regionBytes)) {
          sock.write(encodeResponse({ status: Status.BOUNDS, value: h.offset }));
          continue;
        }
        const off = Number(h.offset);
        if (mode === 'ok' || data++ < after) {
          if (h.op === Op.WRITE) {
            payload.copy(region, off);
            sock.write(encodeResponse({ status: Status.OK, value: h.offset }));
          } else {
            sock.write(Buffer.concat([encodeResponse({ status: Status.OK, len: h.len, value: h.offset }), region.subarray(off, off + h.len)]));
          }
          continue;
        }
        misbehave(sock, h.op, h.offset, h.len);
        if (mode === 'stall' || mode === 'short' || mode === 'trickle') stuck = true;
        if (mode === 'reset' || mode === 'die') return;
      } else {
        sock.write(encodeResponse({ status: Status.BAD_OP, value: h.offset }));
      }
    }
  });
}

function misbehave(sock: net.Socket, op: number, offset: bigint, len: number): void {
  const read = op === Op.READ;
  const header = encodeResponse({ status: Status.OK, len: read ? len : 0, value: offset });
  const body = read ? Buffer.from(region.subarray(Number(offset), Number(offset) + len)) : Buffer.alloc(0);
  switch (mode) {
    case 'die':
      process.kill(process.pid, 'SIGKILL');
      return;
    case 'stall':
      return;
    case 'short':
      sock.write(read ? Buffer.concat([header, body.subarray(0, len >> 1)]) : header.subarray(0, 8));
      return;
    case 'trickle': {
      const all = Buffer.concat([header, body]);
      let i = 0;
      const t = setInterval(() => {
        if (sock.destroyed || i >= all.length) return clearInterval(t);
        sock.write(all.subarray(i, i + 1));
        i++;
      }, 200);
      sock.on('close', () => clearInterval(t));
      return;
    }
    case 'oversized':
      sock.write(Buffer.concat([encodeResponse({ status: Status.OK, len: len + 4096, value: offset }), otherBytes(offset, len + 4096)]));
      return;
    case 'malformed':
      sock.write(Buffer.alloc(16, 0xee));
      return;
    case 'reset':
      sock.resetAndDestroy();
      return;
    case 'wrong':
      sock.write(read ? Buffer.concat([header, otherBytes(offset, len)]) : header);
      return;
  }
}

const server = net.createServer(onConnection);
server.listen({ host: '127.0.0.1', port: Number(arg('port', '0')) }, () => {
  process.stdout.write(`listening ${(server.address() as net.AddressInfo).port}\n`);
});
const stop = () => {
  for (const s of sockets) s.destroy();
  server.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
