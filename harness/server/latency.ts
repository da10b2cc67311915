// Emulated network latency for the chunk server: every request is answered no
// earlier than `rtt` after it was fully received, each request timed on its own
// (pipelined and concurrent requests overlap), and one connection's answers
// still leave in request order.
//
// Node timers alone fire up to ~1 ms late (or early: libuv compares against a
// loop time cached in whole milliseconds), so a deadline is reached in three
// steps, all driven by one process-wide timer so that any number of pending
// requests costs one timer, one native sleep or one poll at a time:
//   1. setTimeout for the bulk, waking `marginNs` (2 ms) before the deadline;
//   2. `hybrid` mode: a native clock_nanosleep on the libuv threadpool
//      (harness/native.ts sleepUntilNsAsync) until `spinWindowNs` before it;
//   3. setImmediate polling of process.hrtime.bigint() for the last stretch,
//      which keeps the event loop serving other connections meanwhile.
// Measured on the 2-core Firecracker VM (lateness after the deadline, median /
// p95, and CPU of the waiting process), 300 waits each:
//   wait for          0.5 ms              5 ms                 20 ms x 8 overlapping
//   setTimeout only   643 / 689 us  8%    337 / 585 us   6%    455 / 1161 us  6%
//   setTimeout+poll     3 / 91 us  118%    13 / 46 us   38%      3 / 30 us   15%
//   setTimeout+native  97 / 240 us 12%   153 / 246 us   6%     92 / 198 us  10%
//   hybrid (250 us)     4 / 8 us    47%    10 / 27 us   10%      4 / 296 us   7%
// (native = sleepUntilNsAsync to the deadline: timer slack plus the threadpool
// hand-off make it ~0.1 ms late.) `hybrid` is the default; `spin` and `timer`
// stay for measurements. The timer is not what limits the server's precision
// end to end: `faultlab calibrate --breakdown` times each PING on both sides
// with one clock and puts the time in the event loop's own path, which runs
// cold after ms of quiet on this VM, even with the loop kept spinning (medians,
// us, on the 2-core VM):
//   RTT     client send -> server reads   deadline -> write returned
//   0             58                            68
//   2 ms         128                           163
//   10 ms        155                           248
// against 20 and ~50-110 us for a C server thread (rtt_control.c). A self
// ping-pong every 50-200 us to keep that path warm cut 10 ms by a third and
// made 0 and 2 ms worse; it is not used.
import { sleepUntilNsAsync } from '../native.js';

/** CLOCK_MONOTONIC in ns: the same clock as the C side's fl_now(). */
export const nowNs = (): bigint => process.hrtime.bigint();

export type PreciseWaitMode = 'hybrid' | 'spin' | 'timer';

export interface PreciseTimerOptions {
  /** How the last `marginNs` before a deadline is waited for. */
  mode?: PreciseWaitMode;
  /** setTimeout wakes this long before the deadline (default 2 ms). */
  marginNs?: bigint;
  /** hybrid: the native sleep ends this long before the deadline, then polling (default 250 us). */
  spinWindowNs?: bigint;
}

interface Entry {
  deadline: bigint;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** A min-heap of deadlines, fired precisely. Callbacks run on the event loop. */
export class PreciseTimer {
  readonly mode: PreciseWaitMode;
  private readonly marginNs: bigint;
  private readonly spinWindowNs: bigint;
  private heap: Entry[] = [];
  private seq = 0;
  private timeout: NodeJS.Timeout | null = null;
  private timeoutTarget = 0n; // when the armed setTimeout is meant to fire
  private nativeTarget: bigint | null = null; // an outstanding native sleep ends here
  private spinning = false;
  private kicked = false;

  constructor(opts: PreciseTimerOptions = {}) {
    this.mode = opts.mode ?? 'hybrid';
    this.marginNs = opts.marginNs ?? 2_000_000n;
    this.spinWindowNs = opts.spinWindowNs ?? 250_000n;
  }

  /** Entries not yet fired or cancelled (cancelled ones may linger until they surface). */
  get pending(): number {
    return this.heap.length;
  }

  /** Run fn at (never before) the CLOCK_MONOTONIC deadline. Returns a cancel function. */
  at(deadlineNs: bigint, fn: () => void): () => void {
    const e: Entry = { deadline: deadlineNs, seq: this.seq++, fn, cancelled: false };
    this.push(e);
    if (this.heap[0] === e && !this.kicked) {
      // Re-plan soon, never calling fn from inside at().
      this.kicked = true;
      queueMicrotask(() => {
        this.kicked = false;
        this.arm();
      });
    }
    return () => {
      e.cancelled = true;
    };
  }

  /** Promise form of at(). */
  until(deadlineNs: bigint): Promise<void> {
    return new Promise((resolve) => this.at(deadlineNs, resolve));
  }

  // Fire everything due, then decide how to wait for the next deadline.
  private arm = (): void => {
    const now = this.fireDue();
    const head = this.heap[0];
    if (!head) {
      if (this.timeout) clearTimeout(this.timeout);
      this.timeout = null;
      return;
    }
    const rem = head.deadline - now;
    if (this.mode === 'timer') {
      this.setTimer(head.deadline, rem);
      return;
    }
    if (rem > this.marginNs) {
      this.setTimer(head.deadline - this.marginNs, rem - this.marginNs);
      return;
    }
    if (this.mode === 'hybrid' && rem > this.spinWindowNs) {
      const target = head.deadline - this.spinWindowNs;
      if (this.nativeTarget === null) {
        // One native sleep at a time: the threadpool has 4 threads and the
        // benchmark's own native calls need them.
        this.nativeTarget = target;
        sleepUntilNsAsync(target).then(
          () => {
            this.nativeTarget = null;
            this.arm();
          },
          () => {
            this.nativeTarget = null;
            this.startSpin();
          },
        );
        return;
      }
      if (this.nativeTarget <= target) return; // the running sleep wakes us in time
      // An earlier deadline arrived during a sleep we cannot interrupt: poll.
    }
    this.startSpin();
  };

  private setTimer(target: bigint, remNs: bigint): void {
    if (this.timeout && this.timeoutTarget <= target) return;
    if (this.timeout) clearTimeout(this.timeout);
    this.timeoutTarget = target;
    const ms = Math.max(0, Number(remNs) / 1e6);
    this.timeout = setTimeout(() => {
      this.timeout = null;
      this.arm();
    }, ms);
  }

  private startSpin(): void {
    if (this.spinning) return;
    this.spinning = true;
    setImmediate(this.spin);
  }

  private spin = (): void => {
    const now = this.fireDue();
    const head = this.heap[0];
    if (head && (this.mode === 'spin' || head.deadline - now <= this.spinWindowNs)) {
      setImmediate(this.spin);
      return;
    }
    this.spinning = false;
    this.arm();
  };

  private fireDue(): bigint {
    let now = nowNs();
    while (this.heap.length && this.heap[0].deadline <= now) {
      const e = this.pop();
      if (!e.cancelled) {
        e.fn();
        now = nowNs();
      }
    }
    // Drop cancelled entries at the top so they do not keep timers armed.
    while (this.heap.length && this.heap[0].cancelled) this.pop();
    return now;
  }

  private less(a: Entry, b: Entry): boolean {
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  private pop(): Entry {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l], h[m])) m = l;
        if (r < h.length && this.less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

/** The process-wide timer every chunk server shares (one wait in flight at a time). */
export const preciseTimer = new PreciseTimer();

/** Resolve at (never before) the monotonic deadline, precisely. */
export function sleepUntil(deadlineNs: bigint, timer: PreciseTimer = preciseTimer): Promise<void> {
  return timer.until(deadlineNs);
}

/**
 * One connection's delayed answers: each item becomes ready at its own deadline,
 * but items are released strictly in the order they were pushed (a later item
 * never overtakes an earlier one, though its delay runs concurrently).
 */
export class OrderedDelayQueue<T> {
  private items: { value: T; ready: boolean; cancel: () => void }[] = [];
  private closed = false;

  /**
   * @param release called in push order once an item and all before it are ready;
   *   return false to stop releasing for now (backpressure), then call flush() later.
   */
  constructor(
    private readonly release: (value: T) => boolean | void,
    private readonly timer: PreciseTimer = preciseTimer,
  ) {}

  get length(): number {
    return this.items.length;
  }

  /** Queue value, ready at deadlineNs (a deadline already passed is ready now). */
  push(value: T, deadlineNs: bigint): void {
    if (this.closed) return;
    const item = { value, ready: false, cancel: () => {} };
    this.items.push(item);
    if (deadlineNs <= nowNs()) {
      item.ready = true;
      this.flush();
    } else {
      item.cancel = this.timer.at(deadlineNs, () => {
        item.ready = true;
        this.flush();
      });
    }
  }

  /** Release ready items from the head, in order. */
  flush(): void {
    while (!this.closed && this.items.length && this.items[0].ready) {
      const item = this.items.shift()!;
      if (this.release(item.value) === false) break;
    }
  }

  /** Drop everything still waiting. */
  close(): void {
    this.closed = true;
    for (const i of this.items) i.cancel();
    this.items = [];
  }
}
