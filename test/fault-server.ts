// An NBD server that misbehaves on purpose, run as a child process by the
// remote-fault tests (test/remote-faults.test.ts, test/hygiene.test.ts):
//
//   node --import tsx test/fault-server.ts --mode MODE [--after N] [--region BYTES] [--seed N]
//
// It speaks NBD (docs/protocol.md: fixed newstyle, NBD_OPT_GO with
// NBD_INFO_DESCRIPTION 'faultlab seed=N', simple replies) over a region it
// holds (contents fill(seed, offset); WRITE changes them): the handshake and
// FLUSH (the RTT probe) are always answered correctly (so a client connects and
// measures its RTT), and the first N data requests (READ or WRITE) of each
// connection are served right (each fetching thread of faultlab owns one
// connection, so one server serves several runs alike). From a connection's
// data request number N on (0-based), it does what MODE says:
//   ok         keep answering correctly (the control)
//   die        the process kills itself with SIGKILL (the server dies mid-run)
//   stall      read the request, never answer it (nor anything after it)
//   silent     from the start: accept connections, never send anything, not even the greeting
//   short      a correct reply header, then half the data, then nothing (WRITE: half a reply header)
//   trickle    a correct reply, one byte every 200 ms
//   oversized  a correct reply with its data, then 4096 bytes more (NBD replies carry no
//              length: the client meets them as the next reply's header)
//   malformed  16 bytes of garbage (0xee) instead of a reply
//   reset      reset the connection (RST)
//   wrong      READ: a correct reply with bytes of another seed (a chunk that does not
//              verify); WRITE: acknowledged but not stored (the write is lost)
//   eio        an NBD error reply, EIO (the connection stays usable)
// Prints "listening PORT" on stdout once it accepts connections.
import net from 'node:net';
import { fill } from '../harness/native.js';
import {
  Cmd,
  Err,
  IHAVEOPT,
  Info,
  OPT_HEADER_BYTES,
  Opt,
  REQUEST_BYTES,
  REQUEST_MAGIC,
  Rep,
  FLAG_HAS_FLAGS,
  FLAG_SEND_FLUSH,
  decodeRequest,
  greeting,
  optionReply,
  simpleReply,
} from './nbd-wire.js';

export const FAULT_MODES = ['ok', 'die', 'stall', 'silent', 'short', 'trickle', 'oversized', 'malformed', 'reset', 'wrong', 'eio'] as const;
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

/** The replies to NBD_OPT_GO or NBD_OPT_INFO: the export, its block sizes and the description. */
function infoReplies(opt: number): Buffer {
  const exp = Buffer.alloc(12);
  exp.writeUInt16BE(Info.EXPORT, 0);
  exp.writeBigUInt64BE(BigInt(regionBytes), 2);
  exp.writeUInt16BE(FLAG_HAS_FLAGS | FLAG_SEND_FLUSH, 10);
  const sizes = Buffer.alloc(14);
  sizes.writeUInt16BE(Info.BLOCK_SIZE, 0);
  sizes.writeUInt32BE(1, 2);
  sizes.writeUInt32BE(4096, 6);
  sizes.writeUInt32BE(32 << 20, 10);
  const desc = Buffer.concat([Buffer.from([0, Info.DESCRIPTION]), Buffer.from(`faultlab seed=${seed}`)]);
  return Buffer.concat([optionReply(opt, Rep.INFO, exp), optionReply(opt, Rep.INFO, sizes), optionReply(opt, Rep.INFO, desc), optionReply(opt, Rep.ACK)]);
}

function onConnection(sock: net.Socket): void {
  sockets.add(sock);
  sock.on('close', () => sockets.delete(sock));
  sock.on('error', () => sock.destroy());
  sock.setNoDelay(true);
  if (mode === 'silent') return;
  sock.write(greeting());
  let buf = Buffer.alloc(0);
  let phase: 'flags' | 'options' | 'transmission' = 'flags';
  let stuck = false; // after a stall, short answer or trickle: answer nothing more
  let data = 0; // READs and WRITEs seen so far on this connection
  sock.on('data', (d: Buffer) => {
    if (stuck) return;
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (stuck) return;
      if (phase === 'flags') {
        if (buf.length < 4) return;
        buf = buf.subarray(4);
        phase = 'options';
      } else if (phase === 'options') {
        if (buf.length < OPT_HEADER_BYTES) return;
        const len = buf.readUInt32BE(12);
        if (buf.readBigUInt64BE(0) !== IHAVEOPT) return void sock.destroy();
        if (buf.length < OPT_HEADER_BYTES + len) return;
        const opt = buf.readUInt32BE(8);
        buf = buf.subarray(OPT_HEADER_BYTES + len);
        if (opt === Opt.GO || opt === Opt.INFO) {
          sock.write(infoReplies(opt));
          if (opt === Opt.GO) phase = 'transmission';
        } else if (opt === Opt.EXPORT_NAME) {
          const b = Buffer.alloc(10);
          b.writeBigUInt64BE(BigInt(regionBytes), 0);
          b.writeUInt16BE(FLAG_HAS_FLAGS | FLAG_SEND_FLUSH, 8);
          sock.write(b);
          phase = 'transmission';
        } else if (opt === Opt.ABORT) {
          sock.end(optionReply(opt, Rep.ACK));
          return;
        } else sock.write(optionReply(opt, Rep.ERR_UNSUP));
      } else {
        if (buf.length < REQUEST_BYTES) return;
        const h = decodeRequest(buf);
        if (h.magic !== REQUEST_MAGIC) return void sock.destroy();
        const need = REQUEST_BYTES + (h.type === Cmd.WRITE ? h.len : 0);
        if (buf.length < need) return;
        const payload = buf.subarray(REQUEST_BYTES, need);
        buf = buf.subarray(need);
        if (h.type === Cmd.DISC) return void sock.end();
        if (h.type === Cmd.FLUSH) {
          sock.write(simpleReply(0, h.cookie));
        } else if (h.type === Cmd.READ || h.type === Cmd.WRITE) {
          if (h.len === 0 || h.offset + BigInt(h.len) > BigInt(regionBytes)) {
            sock.write(simpleReply(Err.EINVAL, h.cookie));
            continue;
          }
          const off = Number(h.offset);
          if (mode === 'ok' || data++ < after) {
            if (h.type === Cmd.WRITE) {
              payload.copy(region, off);
              sock.write(simpleReply(0, h.cookie));
            } else {
              sock.write(Buffer.concat([simpleReply(0, h.cookie), region.subarray(off, off + h.len)]));
            }
            continue;
          }
          misbehave(sock, h.type, h.cookie, h.offset, h.len);
          if (mode === 'stall' || mode === 'short' || mode === 'trickle') stuck = true;
          if (mode === 'reset' || mode === 'die') return;
        } else {
          sock.write(simpleReply(Err.EINVAL, h.cookie));
        }
      }
    }
  });
}

function misbehave(sock: net.Socket, type: number, cookie: bigint, offset: bigint, len: number): void {
  const read = type === Cmd.READ;
  const header = simpleReply(0, cookie);
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
      sock.write(Buffer.concat([header, body, otherBytes(offset + BigInt(len), 4096)]));
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
    case 'eio':
      sock.write(simpleReply(Err.EIO, cookie));
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
