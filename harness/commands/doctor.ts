// `faultlab doctor`: what this kernel and these privileges allow.
import type { CommandModule } from 'yargs';
import { collectEnv, probeNetem } from '../env.js';
import { cleanStaleNetem } from '../netem.js';

export const doctorCommand: CommandModule = {
  command: 'doctor',
  describe: 'kernel, userfaultfd access and features, limits, huge pages, CPU, guest memory, netem',
  builder: (y) =>
    y.option('json', { type: 'boolean', default: false }).option('clean', {
      type: 'boolean',
      default: false,
      describe: 'remove what dead faultlab runs left behind (netem namespaces, their veths and servers), then exit',
    }),
  handler: (a) => {
    if (a.clean) {
      const removed = cleanStaleNetem();
      console.log(removed.length ? `removed ${removed.length} stale namespace(s): ${removed.join(', ')}` : 'nothing left behind');
      return;
    }
    const env = collectEnv();
    const netem = probeNetem();
    // Which --uffd-install choices this kernel can run, from the features UFFDIO_API offered.
    const features = env.uffd_features;
    const uffd_installs = { copy: features.includes('MISSING'), continue: features.includes('MINOR_SHMEM'), move: features.includes('MOVE') };
    const report: Record<string, unknown> = {
      ...env.doctor,
      uffd_installs,
      guest_memory: env.guest_memory,
      virtualization: env.virtualization,
      node: env.node,
      commit: env.commit,
      netem,
    };
    // No way to open a userfaultfd: say what would give one (README Troubleshooting).
    if (env.uffd_path === 'none') {
      report.uffd_remedies =
        'run as root; or sysctl -w vm.unprivileged_userfaultfd=1; or give this user read-write access to /dev/userfaultfd (Linux 6.1+); ' +
        'UFFD_USER_MODE_ONLY needs Linux 5.11+ (uffd and the uffd-wp trackers cannot run until one of these holds; sigsegv and the baselines can)';
    }
    if (a.json) {
      console.log(JSON.stringify(report));
      return;
    }
    for (const [k, v] of Object.entries(report)) {
      console.log(`${k.padEnd(28)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
    }
  },
};
