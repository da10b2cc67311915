// Progress on stderr: cells done, ETA weighted by each cell's estimated cost,
// and the last result. One line per cell when stderr is not a terminal.

/** 83 -> '1m23s', 7.4 -> '7s'. */
export function formatSeconds(seconds: number): string {
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/** What the runner reports a matrix's cells to. */
export interface CellProgress {
  readonly tty: boolean;
  start(i: number, what: string): void;
  update(detail: string): void;
  finish(i: number, result: string): void;
  end(): void;
}

export class Progress implements CellProgress {
  private readonly t0 = Date.now();
  private doneEst = 0;
  private readonly totalEst: number;
  readonly tty = process.stderr.isTTY;

  constructor(
    private readonly estimates: number[],
    private doneCells: number,
    private readonly totalCells: number,
  ) {
    this.totalEst = estimates.reduce((a, b) => a + b, 0);
  }

  private eta(): string {
    if (!this.doneEst) return '?';
    const elapsed = Date.now() - this.t0;
    return formatSeconds(((this.totalEst - this.doneEst) * elapsed) / this.doneEst / 1000);
  }

  start(_i: number, what: string): void {
    if (this.tty) process.stderr.write(`\r\x1b[K[${this.doneCells + 1}/${this.totalCells}] ETA ${this.eta()}  ${what} ...`);
    this.current = what;
  }

  /** The running cell's own progress (a terminal only: the line is rewritten). */
  update(detail: string): void {
    if (this.tty) process.stderr.write(`\r\x1b[K[${this.doneCells + 1}/${this.totalCells}] ETA ${this.eta()}  ${this.current} ... ${detail}`);
  }
  private current = '';

  finish(i: number, result: string): void {
    this.doneCells++;
    this.doneEst += this.estimates[i];
    const line = `[${this.doneCells}/${this.totalCells}] ETA ${this.eta()}  ${this.current} -> ${result}`;
    process.stderr.write(this.tty ? `\r\x1b[K${line}\n` : `${line}\n`);
  }

  end(): void {
    const s = Math.round((Date.now() - this.t0) / 1000);
    process.stderr.write(`done: ${this.doneCells}/${this.totalCells} cells in ${s}s\n`);
  }
}

/** `faultlab study`: one count and one ETA over every matrix of the study. The
 * ETA scales the estimated cost of the cells left by the time the cells done
 * so far took against their estimates (this invocation's cells only: a resumed
 * study's earlier cells do not count). */
export class StudyProgress {
  private readonly t0 = Date.now();
  private doneEst = 0;
  readonly tty = process.stderr.isTTY;

  constructor(
    private readonly totalEst: number,
    private doneCells: number,
    private readonly totalCells: number,
  ) {}

  /** Seconds left, null before the first cell ends. */
  etaSeconds(): number | null {
    if (!this.doneEst) return null;
    return (Math.max(0, this.totalEst - this.doneEst) * (Date.now() - this.t0)) / this.doneEst / 1000;
  }

  private prefix(matrix: string, running: boolean): string {
    const eta = this.etaSeconds();
    return `[${this.doneCells + (running ? 1 : 0)}/${this.totalCells} ${matrix}] ETA ${eta === null ? '?' : formatSeconds(eta)}`;
  }

  /** The runner's view for one matrix: `estimates` are its cells to do, in its order. */
  matrix(name: string, estimates: number[]): CellProgress {
    let current = '';
    return {
      tty: this.tty,
      start: (_i, what) => {
        current = what;
        if (this.tty) process.stderr.write(`\r\x1b[K${this.prefix(name, true)}  ${what} ...`);
      },
      update: (detail) => {
        if (this.tty) process.stderr.write(`\r\x1b[K${this.prefix(name, true)}  ${current} ... ${detail}`);
      },
      finish: (i, result) => {
        this.doneCells++;
        this.doneEst += estimates[i];
        const line = `${this.prefix(name, false)}  ${current} -> ${result}`;
        process.stderr.write(this.tty ? `\r\x1b[K${line}\n` : `${line}\n`);
      },
      end: () => {},
    };
  }

  end(): void {
    process.stderr.write(`study: ${this.doneCells}/${this.totalCells} cells, ${formatSeconds((Date.now() - this.t0) / 1000)} this time\n`);
  }
}
