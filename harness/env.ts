// The environment every result row carries: kernel, CPU, privileges,
// userfaultfd access and features, project commit.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { cpus, release } from 'node:os';
import { doctorNative } from './native.js';

export interface Netem {
  available: boolean;
  detail: string;
}

/** Probe tc netem in a throw-away network namespace, so no real interface is touched. */
export function probeNetem(): Netem {
  const ns = `faultlab-probe-${process.pid}`;
  const run = (args: string[]) => execFileSync(args[0], args.slice(1), { stdio: 'pipe', timeout: 5000 }).toString();
  try {
    run(['ip', 'netns', 'add', ns]);
  } catch (e) {
    return { available: false, detail: `cannot create a network namespace to test netem (${firstLine(e)})` };
  }
  try {
    run(['ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms']);
    return { available: true, detail: 'tc qdisc netem works' };
  } catch (e) {
    return { available: false, detail: `tc netem unavailable: ${firstLine(e)}` };
  } finally {
    try {
      run(['ip', 'netns', 'del', ns]);
    } catch {
      /* already gone */
    }
  }
}

function firstLine(e: unknown): string {
  const err = e as { stderr?: Buffer; message?: string };
  const text = err.stderr?.toString().trim() || err.message || String(e);
  return text.split('\n')[0];
}

export function projectCommit(): string {
  if (process.env.FAULTLAB_COMMIT) return process.env.FAULTLAB_COMMIT;
  try {
    const sha = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { stdio: 'pipe', cwd: new URL('..', import.meta.url) })
      .toString()
      .trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { stdio: 'pipe', cwd: new URL('..', import.meta.url) })
      .toString()
      .trim();
    return dirty ? `${sha}-dirty` : sha;
  } catch {
    return 'unknown';
  }
}

/** A VM guest whose free memory the host takes back: virtio-balloon free page
 * reporting hands free blocks of 2^order pages to the host a few seconds after
 * they are freed, so the next use of that memory faults on the host side too
 * and allocating a page during a fault (UFFDIO_COPY, eager's copy) costs several
 * times more after an idle pause than right after other work (README). */
export interface GuestMemory {
  hypervisor: boolean; // the CPU flag a hypervisor sets
  free_page_reporting: boolean; // a virtio-balloon device offering VIRTIO_BALLOON_F_REPORTING
  reporting_order: number | null; // page_reporting_order: blocks of 2^order pages are reported
  /** DAMON schemes of running kdamonds, as "operations:action" (e.g. "paddr:pageout",
   * proactive reclaim): a kernel thread that samples memory and acts on cold
   * regions, taking CPU from the runs and page cache from the disk baseline.
   * null: not readable (DAMON's sysfs files are root's). */
  damon_schemes: string[] | null;
}

const DAMON = '/sys/kernel/mm/damon/admin/kdamonds';

/** A sysfs or procfs file's text, '' where it does not exist. */
const readIfThere = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');

export function probeDamonSchemes(root = DAMON): string[] | null {
  const read = (p: string) => readIfThere(p).trim();
  const dirs = (p: string) => (existsSync(p) ? readdirSync(p).filter((d) => /^\d+$/.test(d)) : []);
  const out: string[] = [];
  try {
    for (const k of dirs(root)) {
      if (read(`${root}/${k}/state`) !== 'on') continue;
      for (const c of dirs(`${root}/${k}/contexts`)) {
        const ctx = `${root}/${k}/contexts/${c}`;
        for (const m of dirs(`${ctx}/schemes`)) out.push(`${read(`${ctx}/operations`)}:${read(`${ctx}/schemes/${m}/action`)}`);
      }
    }
  } catch {
    return null; /* EACCES for anyone but root */
  }
  return out;
}

const VIRTIO_BALLOON_F_REPORTING = 5;

/** A virtio device's `features` file: one '0'/'1' per feature bit, bit 0 first. */
export function offersFeature(features: string, bit: number): boolean {
  return features.trim()[bit] === '1';
}

export function probeGuestMemory(): GuestMemory {
  const hypervisor = /^flags\s*:.*\bhypervisor\b/m.test(readIfThere('/proc/cpuinfo'));
  let reporting = false;
  const dir = '/sys/bus/virtio/devices';
  for (const d of existsSync(dir) ? readdirSync(dir) : []) {
    try {
      if (basename(readlinkSync(`${dir}/${d}/driver`)) === 'virtio_balloon')
        reporting ||= offersFeature(readIfThere(`${dir}/${d}/features`), VIRTIO_BALLOON_F_REPORTING);
    } catch {
      /* no driver bound */
    }
  }
  const order = readIfThere('/sys/module/page_reporting/parameters/page_reporting_order').trim();
  return { hypervisor, free_page_reporting: reporting, reporting_order: order === '' ? null : Number(order), damon_schemes: probeDamonSchemes() };
}

/** Whether this machine is virtualised, and how we know: the CPU's hypervisor
 * flag, systemd-detect-virt where installed, and a slow minor fault (doctor's
 * machine_floors; a write fault of 5 us or more: a fault that exits to the
 * hypervisor). Absolute times from such a machine move with its host: compare
 * ratios measured in the same run. */
export interface Virtualization {
  virtualized: boolean;
  reasons: string[];
  hypervisor_flag: boolean;
  /** systemd-detect-virt's answer ('none' on bare metal); null where it is not installed. */
  detect_virt: string | null;
  minor_fault_ns: number | null;
  syscall_ns: number | null;
  /** doctor's wake_floors: a thread woken and answering, on the same CPU and on another. */
  same_cpu_wake_ns: number | null;
  cross_cpu_wake_ns: number | null;
  /** cpuidle haltpoll's guest_halt_poll_ns (0: an idle vCPU halts at once); null without haltpoll. */
  guest_halt_poll_ns: number | null;
}

/** A cross-CPU wake-up this many times a same-CPU one flags a hypervisor round trip per hand-off. */
export const SLOW_WAKE_RATIO = 3;

/** A write minor fault at or above this many ns flags virtualisation. */
export const SLOW_MINOR_FAULT_NS = 5000;

/** A measured time from doctor: a positive number, else null (not measured). */
const measured = (v: unknown): number | null => (typeof v === 'number' && v > 0 ? v : null);

export function judgeVirtualization(doctor: Record<string, unknown>, detectVirt: string | null): Virtualization {
  const floors = (doctor.machine_floors ?? {}) as { minor_fault_write_ns?: number; syscall_ns?: number };
  const fault = measured(floors.minor_fault_write_ns);
  const hypervisor = doctor.hypervisor_flag === true;
  const reasons: string[] = [];
  if (hypervisor) reasons.push('the CPU reports the hypervisor flag');
  if (detectVirt && detectVirt !== 'none') reasons.push(`systemd-detect-virt says ${detectVirt}`);
  if (fault !== null && fault >= SLOW_MINOR_FAULT_NS) reasons.push(`a minor fault costs ${(fault / 1000).toFixed(1)} us (>= ${SLOW_MINOR_FAULT_NS / 1000} us)`);
  const wake = (doctor.wake_floors ?? {}) as { same_cpu_round_trip_ns?: number; cross_cpu_round_trip_ns?: number; guest_halt_poll_ns?: number | null };
  const same = measured(wake.same_cpu_round_trip_ns);
  const cross = measured(wake.cross_cpu_round_trip_ns);
  const haltPoll = typeof wake.guest_halt_poll_ns === 'number' ? wake.guest_halt_poll_ns : null;
  if (same !== null && cross !== null && cross >= SLOW_WAKE_RATIO * same)
    reasons.push(
      `a wake-up answered from another CPU takes ${(cross / 1000).toFixed(1)} us against ${(same / 1000).toFixed(1)} us on the same one` +
        (haltPoll === 0 ? ' (cpuidle haltpoll with guest_halt_poll_ns=0: an idle vCPU halts at once, and waking it goes through the host)' : ''),
    );
  return {
    virtualized: reasons.length > 0,
    reasons,
    hypervisor_flag: hypervisor,
    detect_virt: detectVirt,
    minor_fault_ns: fault,
    syscall_ns: measured(floors.syscall_ns),
    same_cpu_wake_ns: same,
    cross_cpu_wake_ns: cross,
    guest_halt_poll_ns: haltPoll,
  };
}

/** systemd-detect-virt's one word (it exits 1 when it finds none, printing 'none'); null where it is missing. */
export function detectVirt(): string | null {
  try {
    return execFileSync('systemd-detect-virt', [], { stdio: 'pipe', timeout: 5000 }).toString().trim() || null;
  } catch (e) {
    const out = (e as { stdout?: Buffer }).stdout?.toString().trim();
    return out ? out : null;
  }
}

export interface EnvInfo {
  kernel: string;
  /** The kernel's boot parameters (/proc/cmdline up to any ' -- ', after which they are init's): mitigations, idle polling, page reporting and the like move the figures too. Null where unreadable. */
  kernel_cmdline: string | null;
  cpu_model: string;
  cpus: number;
  node: string;
  commit: string;
  privileges: string;
  uffd_path: string;
  uffd_features: string[];
  guest_memory: GuestMemory;
  virtualization: Virtualization;
  doctor: Record<string, unknown>;
}

/** The kernel's part of a /proc/cmdline text; null when there is none. */
export function kernelCmdline(text: string): string | null {
  const kernel = text
    .trim()
    .split(/(?:^| )-- /)[0]
    .trim();
  return kernel === '' ? null : kernel;
}

export function collectEnv(): EnvInfo {
  const doctor = doctorNative();
  const uid = process.geteuid?.() ?? -1;
  return {
    kernel: release(),
    kernel_cmdline: kernelCmdline(readIfThere('/proc/cmdline')),
    cpu_model: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    node: process.version,
    commit: projectCommit(),
    privileges: uid === 0 ? 'root' : `uid ${uid}`,
    uffd_path: String(doctor.uffd_path ?? 'unknown'),
    uffd_features: (doctor.uffd_api as { features?: string[] } | undefined)?.features ?? [], // empty where no userfaultfd could be opened
    guest_memory: probeGuestMemory(),
    virtualization: judgeVirtualization(doctor, detectVirt()),
    doctor,
  };
}

/** The environment columns of a CSV row. */
export function envColumns(env: EnvInfo): Record<string, string> {
  return {
    kernel: env.kernel,
    cpu_model: env.cpu_model,
    privileges: env.privileges,
    uffd_path: env.uffd_path,
    uffd_features: env.uffd_features.join('|'),
    commit: env.commit,
  };
}
