// `faultlab doctor`: what this kernel and these privileges allow.
import type { CommandModule } from 'yargs';
import { collectEnv, probeNetem } from '../env.js';

export const doctorCommand: CommandModule = {
  command: 'doctor',
  describe: 'kernel, userfaultfd access and features, limits, CPU, netem',
  builder: (y) => y.option('json', { type: 'boolean', default: false }),
  handler: (a) => {
    const env = collectEnv();
    const netem = probeNetem();
    const report = { ...env.doctor, node: env.node, commit: env.commit, netem };
    if (a.json) {
      console.log(JSON.stringify(report));
      return;
    }
    for (const [k, v] of Object.entries(report)) {
      console.log(`${k.padEnd(28)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
    }
  },
};
