// Progress on stderr: cells done, ETA weighted by each cell's estimated cost,
// and the last result. One line per cell when stderr is not a terminal.

/** 83 -> '1m23s', 7.4 -> '7s'. */
export function formatSeconds(seconds: number): string {
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export class Progress {
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
