// The chunk server's I/O on connections with an emulated RTT, timed in C
// (native/src/server/delay_io.c): a hub thread reads each socket with the kernel's
// receive timestamp and forwards what it read to the event loop; the event loop
// runs each request at once and hands the answer back with its deadline
// (receive time + RTT); a sender thread per connection sends it then. The
// event loop's own lateness (`faultlab calibrate --breakdown`) thus falls inside the
// delay instead of adding to it.
import net from 'node:net';
import { dio } from '../native.js';

const RECORD_BYTES = 24; // struct fl_dio_record
const KIND = { DATA: 1, EOF: 2, ERROR: 3, DONE: 4 } as const;
const SENT_BATCH = 4096; // fl_dio_sent's ring

export interface DelayedConnEvents {
  /** Bytes the client sent, and when the kernel received them (CLOCK_MONOTONIC ns). */
  data(bytes: Buffer, receivedNs: bigint): void;
  /** The client half-closed its side. */
  end(): void;
  /** Reading failed (errno), or the sender ended (errno, 0 once finish() has drained): detach now. */
  gone(errno: number): void;
}

/** One answer handed to the sender, kept (with its body) until it is sent. */
interface Pending<M> {
  meta: M;
  body: Buffer | null;
}

export class DelayedConn<M = unknown> {
  private pending: Pending<M>[] = [];
  private reaped = 0; // sequence number of pending[0]
  private detached = false;
  private readonly sentAt = new BigUint64Array(SENT_BATCH);

  constructor(
    readonly id: number,
    private readonly handle: unknown,
    private readonly onDetach: () => void,
  ) {}

  /**
   * Queue an answer for deadlineNs. false: the connection is finishing or gone.
   * body is not copied (koffi passes a Buffer's own memory, which never moves);
   * `pending` keeps it alive until the sender reports it sent.
   */
  send(deadlineNs: bigint, head: Buffer, body: Buffer | null, meta: M): boolean {
    if (this.detached) return false;
    const seq = dio.send(this.handle, deadlineNs, head, body);
    if (seq < 0) return false;
    this.pending.push({ meta, body });
    return true;
  }

  /** Answers handed over and not yet reported sent (as of the last reap). */
  get unsent(): number {
    return this.pending.length;
  }

  /** After what is queued: shut down writing; then the hub reports it gone. */
  finish(): void {
    if (!this.detached) dio.finish(this.handle);
  }

  /** Hand each answer sent since the last call to onSent (when its send began, ns, or null if no longer known), oldest first. */
  reap(onSent: (meta: M, sentNs: bigint | null) => void): void {
    if (this.detached) return;
    for (;;) {
      const sent = dio.sent(this.handle, this.reaped, this.sentAt);
      const n = Math.min(sent - this.reaped, SENT_BATCH);
      if (n <= 0) return;
      const done = this.pending.splice(0, n);
      this.reaped += n;
      for (let i = 0; i < n; i++) onSent(done[i].meta, this.sentAt[i] || null);
    }
  }

  /** Stop at once: drops what is unsent (each handed to onUnsent), joins the sender (so bodies may go). */
  detach(onUnsent?: (meta: M) => void): void {
    if (this.detached) return;
    this.detached = true;
    dio.detach(this.handle);
    for (const p of this.pending) onUnsent?.(p.meta);
    this.pending = [];
    this.onDetach();
  }
}

/** One per chunk server with an RTT: the hub thread and the socket its records arrive on. */
export class DelayedIoHub {
  private readonly conns = new Map<number, { conn: DelayedConn<any>; events: DelayedConnEvents }>();
  private readonly notify: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  private closed = false;

  private constructor(
    private readonly hub: unknown,
    notifyFd: number,
  ) {
    this.notify = new net.Socket({ fd: notifyFd, readable: true, writable: false });
    this.notify.on('data', (chunk: Buffer) => this.onRecords(chunk));
    this.notify.on('error', () => {}); // only at close
  }

  static open(): DelayedIoHub {
    const { hub, notifyFd } = dio.open();
    return new DelayedIoHub(hub, notifyFd);
  }

  /** Take over sock's reading and writing (it must be paused: net.createServer({ pauseOnConnect })). */
  attach<M>(sock: net.Socket, events: DelayedConnEvents): DelayedConn<M> {
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (this.closed || fd === undefined || fd < 0) throw new Error('delayed I/O: the connection has no descriptor');
    const { conn: handle, id } = dio.attach(this.hub, fd);
    const conn = new DelayedConn<M>(id, handle, () => this.conns.delete(id));
    this.conns.set(id, { conn, events });
    return conn;
  }

  /** Detach every connection, stop the hub thread. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const { conn } of [...this.conns.values()]) conn.detach();
    dio.close(this.hub);
    this.notify.destroy();
  }

  private onRecords(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let at = 0;
    while (this.buf.length - at >= RECORD_BYTES) {
      const id = this.buf.readUInt32LE(at);
      const kind = this.buf.readUInt32LE(at + 4);
      const len = this.buf.readUInt32LE(at + 8);
      const err = this.buf.readUInt32LE(at + 12);
      const ts = this.buf.readBigUInt64LE(at + 16);
      const size = RECORD_BYTES + (kind === KIND.DATA ? len : 0);
      if (this.buf.length - at < size) break;
      const c = this.conns.get(id); // none: detached meanwhile
      if (c) {
        if (kind === KIND.DATA) c.events.data(this.buf.subarray(at + RECORD_BYTES, at + size), ts);
        else if (kind === KIND.EOF) c.events.end();
        else c.events.gone(err);
      }
      at += size;
    }
    this.buf = at === this.buf.length ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(at));
  }
}
