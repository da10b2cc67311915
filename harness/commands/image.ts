// `faultlab image`: the region's contents, fill(seed, offset) for every byte,
// as a file: the image another NBD server serves (`nbdkit file IMAGE`,
// `qemu-nbd -f raw IMAGE`) so faultlab's runs verify against it
// (bench --remote nbd://HOST:PORT). The same bytes as `faultlab serve
// --region SIZE --seed N` serves before anything is written.
import type { CommandModule } from 'yargs';
import { closeSync, openSync, writeSync } from 'node:fs';
import { fill } from '../native.js';
import { UsageError } from '../errors.js';
import { formatSize, parseSize } from '../sizes.js';

const STEP = 8 << 20;

/** Write size bytes of fill(seed, offset) to path (created or truncated). */
export function writeImage(path: string, size: number, seed: number | bigint): void {
  const fd = openSync(path, 'w');
  try {
    const ceil8 = (n: number) => Math.ceil(n / 8) * 8;
    const buf = Buffer.alloc(Math.min(STEP, ceil8(size)));
    for (let off = 0; off < size; off += STEP) {
      const n = Math.min(STEP, size - off);
      // fill works on 8-byte words: STEP is a multiple of 8, so each piece starts on a word; the last is cut.
      fill(buf.subarray(0, ceil8(n)), seed, off);
      let done = 0;
      while (done < n) done += writeSync(fd, buf, done, n - done, off + done);
    }
  } finally {
    closeSync(fd);
  }
}

export const imageCommand: CommandModule = {
  command: 'image',
  describe: "write the region's contents (fill(seed, offset)) to a file, for another NBD server to serve (nbdkit file IMAGE)",
  builder: (y) =>
    y
      .option('out', { type: 'string', demandOption: true, describe: 'the file to write (created or overwritten)' })
      .option('region', { type: 'string', demandOption: true, describe: 'its size (4096, 4KiB, 64MiB, 1GiB): at least the region of the runs that read it' })
      .option('seed', { type: 'number', default: 1, describe: 'contents seed; the runs that read it must use the same --seed' }),
  handler: (a) => {
    const size = parseSize(a.region as string, 'region');
    if (size <= 0) throw new UsageError('--region must be larger than 0 bytes');
    const seed = a.seed as number;
    if (!Number.isSafeInteger(seed) || seed < 0) throw new UsageError(`--seed ${seed}: give a whole number >= 0`);
    if (!a.out) throw new UsageError('--out needs a file name');
    try {
      writeImage(a.out as string, size, seed);
    } catch (e) {
      throw new UsageError(`cannot write --out '${a.out}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    console.log(`wrote ${a.out}: ${formatSize(size)} of fill(seed=${seed}, offset)`);
  },
};
