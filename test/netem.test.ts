// --latency netem: the remote behind a veth link into a namespace the harness
// makes. The link itself is tested at RTT 0 (no qdisc needed); a delay needs
// sch_netem, which this test machine's kernel lacks, so the test checks the
// refusal there (and the delay where the kernel has it).
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { faultlab, lastJson } from './helpers.js';
import { probeNetem } from '../harness/env.js';

const namespaces = () => execFileSync('ip', ['netns', 'list']).toString();

describe('--latency netem', () => {
  it('serves a verified read across a veth link into a harness-made namespace, and removes it after', () => {
    const r = faultlab(['bench', '--strategy', 'sigsegv', '--source', 'remote', '--latency', 'netem', '--rtt', '0', '--region', '1MiB', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.verified).toBe(true);
    expect(j.latency).toBe('netem');
    expect(namespaces()).not.toMatch(/faultlab-/);
  });

  const netem = probeNetem();
  it(`with a delay: ${netem.available ? 'netem adds the RTT' : 'refused with a clear message (this kernel has no netem)'}`, () => {
    const r = faultlab(['bench', '--strategy', 'uffd', '--source', 'remote', '--latency', 'netem', '--rtt', '4', '--region', '64KiB', '--json']);
    if (netem.available) {
      expect(r.status, r.stderr).toBe(0);
      expect(lastJson(r.stdout).rtt_measured_ms as number).toBeGreaterThan(3.9);
    } else {
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/--latency netem: .*use --latency server-delay/);
    }
    expect(namespaces()).not.toMatch(/faultlab-/);
  });
});
