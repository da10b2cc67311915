// userfaultfd without privileges: as an unprivileged user (nobody, through
// setpriv, when the tests run as root; the test user itself otherwise)
// faultlab must open its userfaultfd the way the kernel allows
// (UFFD_USER_MODE_ONLY, or /dev/userfaultfd where its mode permits), say which
// in doctor and in the row, or fail with one line naming the remedies.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, chmodSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;
const who = isRoot ? 'nobody (setpriv)' : `uid ${process.getuid?.()}`;

/** Run node as the unprivileged user (cwd /tmp, which everyone may enter). */
function asUser(args: string[], timeout = 60_000) {
  const cmd = isRoot ? ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, ...args] : [process.execPath, ...args];
  return spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout, cwd: tmpdir(), env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir() } });
}

/** The CLI as the unprivileged user can run it: the checkout if it can read it, else a copy it can read. */
function cliFor(): { cli: string; cleanup: () => void } {
  const cli = join(ROOT, 'bin/faultlab.js');
  const probe = asUser([
    '-e',
    `require('fs').accessSync(${JSON.stringify(join(ROOT, 'dist/harness/cli.js'))}, 4); require('fs').accessSync(${JSON.stringify(join(ROOT, 'native/build/libfaultlab.so'))}, 4)`,
  ]);
  if (probe.status === 0 && !process.env.FAULTLAB_TEST_COPY_CLI) return { cli, cleanup: () => {} };
  // The checkout is not readable for that user (a private home, say): copy what the CLI needs.
  const dir = mkdtempSync(join(tmpdir(), 'faultlab-unpriv-'));
  for (const p of ['package.json', 'bin', 'dist', 'node_modules', 'native/build/libfaultlab.so']) cpSync(join(ROOT, p), join(dir, p), { recursive: true });
  chmodSync(dir, 0o755);
  return { cli: join(dir, 'bin/faultlab.js'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

describe(`uffd as an unprivileged user: ${who}`, () => {
  it('doctor names the path; bench --strategy uffd verifies with the same uffd_path (user-mode-only or dev-userfaultfd), or fails in one line naming the remedies', () => {
    const { cli, cleanup } = cliFor();
    try {
      const doc = asUser([cli, 'doctor', '--json']);
      expect(doc.status, doc.stderr).toBe(0);
      const d = JSON.parse(doc.stdout.trim().split('\n').pop()!);
      if (isRoot) expect(d.euid).toBe(NOBODY);
      expect(['syscall', 'user-mode-only', 'dev-userfaultfd', 'none']).toContain(d.uffd_path);
      // DAMON's sysfs files are root's: where that user cannot read them, doctor says null, not EACCES.
      const damonState = '/sys/kernel/mm/damon/admin/kdamonds/0/state';
      if (isRoot && existsSync(damonState) && (statSync(damonState).mode & 0o004) === 0) expect(d.guest_memory.damon_schemes).toBeNull();

      const r = asUser([cli, 'bench', '--strategy', 'uffd', '--region', '1MiB', '--json']);
      if (d.uffd_path === 'none') {
        // Neither path works here: the run must say so, with the remedies, in one line.
        expect(r.status).not.toBe(0);
        const lines = r.stderr.trim().split('\n');
        expect(lines.length).toBe(1);
        expect(lines[0]).toMatch(/userfaultfd unavailable/);
        expect(lines[0]).toMatch(/remedies: .*vm\.unprivileged_userfaultfd=1.*\/dev\/userfaultfd/);
        return;
      }
      expect(r.status, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(j.verified).toBe(true);
      expect(j.uffd_path).toBe(d.uffd_path);
      // With vm.unprivileged_userfaultfd=0 an unprivileged user cannot use the plain syscall.
      if (d.vm_unprivileged_userfaultfd === 0 || d.vm_unprivileged_userfaultfd === '0') expect(['user-mode-only', 'dev-userfaultfd']).toContain(j.uffd_path);
    } finally {
      cleanup();
    }
  });
});
