// Bad input the other test files do not cover yet (cli.test.ts and
// runner.test.ts have the rest): one clear line, a non-zero exit (2 for usage
// errors), and nothing run or written first. Also the serve command's
// warning when it listens beyond loopback.
import { afterAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, faultlab } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'faultlab-bad-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  expect(lines.length, stderr).toBe(1);
  return lines[0];
}

describe('usage errors: one line, exit 2, before anything runs', () => {
  const notJson = file('broken.json', '{"name": "broken", "groups": [');
  const unknownField = file('field.json', JSON.stringify({ name: 'f', groups: [{ name: 'g', strategy: 'uffd', scenario: 'read-seq' }], colour: 'blue' }));
  const tooBig = file('big.json', JSON.stringify({ name: 'big', groups: [{ name: 'g', strategy: 'uffd', scenario: 'read-seq', region: '4096GiB' }] }));
  const cases: [string, string[], RegExp][] = [
    ['a matrix file that is not JSON', ['run', '--matrix', notJson, '--out', dir], /broken\.json: not valid JSON/],
    ['a matrix file that does not exist', ['run', '--matrix', join(dir, 'nope.json'), '--out', dir], /matrix file .*nope\.json does not exist/],
    ['a matrix with an unknown field', ['run', '--matrix', unknownField, '--out', dir], /colour is not a known field/],
    ['a matrix cell larger than memory', ['run', '--matrix', tooBig, '--out', dir, '--run-id', 'big'], /group 'g'.*more than the memory available/],
    ['an absurd rtt', ['bench', '--strategy', 'uffd', '--source', 'remote', '--rtt', '1e9'], /rtt 1000000000 ms is out of range/],
    [
      'an rtt that is not a number',
      ['bench', '--strategy', 'sigsegv', '--source', 'remote', '--rtt', 'soon'],
      /^faultlab: --rtt needs a number of ms from 0 to 10000$/,
    ],
    ['a fetch timeout of 0', ['bench', '--strategy', 'uffd', '--fetch-timeout', '0'], /fetch timeout must be a positive/],
    ['handler threads 0', ['bench', '--strategy', 'uffd', '--handler-threads', '0'], /handler threads must be 1 to 16/],
    [
      'an option given twice',
      ['bench', '--strategy', 'sigsegv', '--region', '8MiB', '--region', '4MiB'],
      /^faultlab: --region was given 2 times \(8MiB, 4MiB\); give it once$/,
    ],
    [
      'a kebab-case option given twice',
      ['bench', '--strategy', 'uffd', '--handler-threads', '1', '--handler-threads', '2'],
      /^faultlab: --handler-threads was given 2 times \(1, 2\); give it once$/,
    ],
    ['bench --remote without a port', ['bench', '--strategy', 'uffd', '--source', 'remote', '--remote', 'example.org'], /bad --remote 'example\.org'/],
    ['run --remote without a port', ['run', '--matrix', 'quick', '--remote', '10.0.0.1', '--out', dir], /bad --remote '10\.0\.0\.1'/],
    ['run --cell-timeout 0', ['run', '--matrix', 'quick', '--cell-timeout', '0', '--out', dir, '--run-id', 'ct'], /--cell-timeout 0/],
    ['serve --listen that is not HOST:PORT', ['serve', '--listen', 'here:there'], /bad --listen 'here:there'/],
    ['serve --region 0', ['serve', '--region', '0'], /--region must be larger than 0/],
    [
      'bench --latency client-delay without a remote source',
      ['bench', '--strategy', 'uffd', '--latency', 'client-delay', '--rtt', '0'],
      /--latency client-delay needs --source remote/,
    ],
  ];
  for (const [what, args, msg] of cases) {
    it(what, () => {
      const r = faultlab(args, {}, 30_000);
      expect(r.status, r.stderr).toBe(2);
      expect(oneLine(r.stderr)).toMatch(msg);
    });
  }
  it('the refused matrices wrote no results', () => {
    expect(existsSync(join(dir, 'big'))).toBe(false);
    expect(existsSync(join(dir, 'ct'))).toBe(false);
  });
});

describe('environment errors: one line naming what failed, exit 1', () => {
  it('bench --remote to a port nothing listens on names the strategy and the address', async () => {
    const port = await freePort();
    const r = faultlab(['bench', '--strategy', 'sigsegv', '--source', 'remote', '--remote', `127.0.0.1:${port}`, '--fetch-timeout', '2000'], {}, 30_000);
    expect(r.status).toBe(1);
    expect(oneLine(r.stderr)).toMatch(new RegExp(`^faultlab: sigsegv: cannot connect to 127\\.0\\.0\\.1:${port}`));
  });

  it('serve --listen on a port in use says so (bad input: exit 2)', async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const r = faultlab(['serve', '--listen', `127.0.0.1:${port}`, '--region', '1MiB'], {}, 30_000);
      expect(r.status).toBe(2);
      expect(oneLine(r.stderr)).toBe(`faultlab: cannot listen on 127.0.0.1:${port}: port ${port} in use`);
    } finally {
      busy.close();
    }
  });
});

describe('security: serve beyond loopback', () => {
  it('serve --listen 0.0.0.0 is refused without --allow-remote (NBD has no authentication)', () => {
    const r = faultlab(['serve', '--listen', '0.0.0.0:0', '--region', '64KiB']);
    expect(r.status).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/^faultlab: --listen 0\.0\.0\.0:0 is not loopback: NBD has no authentication, .*add --allow-remote/);
  });

  it('serve --listen 0.0.0.0 --allow-remote warns on stderr that NBD has no authentication and anyone can read and overwrite the region, and still serves', async () => {
    const child = spawn(process.execPath, [CLI, 'serve', '--allow-remote', '--listen', '0.0.0.0:0', '--region', '64KiB'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const listening = await new Promise<boolean>((resolve) => {
      const t = setInterval(() => {
        if (/listening on/.test(out)) {
          clearInterval(t);
          resolve(true);
        }
      }, 20);
      child.once('exit', () => {
        clearInterval(t);
        resolve(false);
      });
    });
    child.kill('SIGTERM');
    const code = await new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', resolve)));
    expect(listening, err).toBe(true);
    expect(err).toMatch(
      /warning: the NBD server listens on 0\.0\.0\.0:\d+, not loopback, and NBD has no authentication: anyone who can reach it can read and overwrite the region/,
    );
    expect(code).toBe(0);
  });

  it('serve on the default (loopback) address does not warn', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [CLI, 'serve', '--listen', `127.0.0.1:${port}`, '--region', '64KiB'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    await new Promise<void>((resolve) => {
      const t = setInterval(() => /listening on/.test(out) && (clearInterval(t), resolve()), 20);
      child.once('exit', () => (clearInterval(t), resolve()));
    });
    child.kill('SIGTERM');
    await new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve)));
    expect(out).toMatch(/listening on 127\.0\.0\.1:/);
    expect(err).not.toMatch(/warning/);
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
