// Where a remote region lives: an NBD server named by `nbd://HOST:PORT[/EXPORT]`
// (the NBD URI's plain-TCP form) or the older `HOST:PORT`, for --remote of
// bench, run and transport. The C client (native/src/sources/tcp.c) takes
// host, port and export as spec keys.
import { UsageError } from './errors.js';

export interface RemoteTarget {
  host: string;
  port: number;
  /** The export's name; undefined: the server's default export (the empty name). */
  exportName?: string;
}

const HOST_PORT = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:/\s[\]]+)):(\d{1,5})$/;

/** The target of --remote, or a UsageError naming the forms it takes. */
export function parseRemote(text: string, what = '--remote'): RemoteTarget {
  const bad = () => new UsageError(`bad ${what} '${text}': use nbd://HOST:PORT[/EXPORT] or HOST:PORT`);
  let rest = text.trim();
  let exportName: string | undefined;
  if (/^nbd:\/\//i.test(rest)) {
    rest = rest.slice(6);
    const slash = rest.indexOf('/');
    if (slash >= 0) {
      try {
        exportName = decodeURIComponent(rest.slice(slash + 1));
      } catch {
        throw bad();
      }
      rest = rest.slice(0, slash);
      if (/[\s\0]/.test(exportName) || Buffer.byteLength(exportName) > 255) throw bad();
      if (exportName === '') exportName = undefined;
    }
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(rest)) {
    throw new UsageError(`bad ${what} '${text}': only nbd:// (plain TCP) is spoken; use nbd://HOST:PORT[/EXPORT] or HOST:PORT`);
  }
  const m = HOST_PORT.exec(rest);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) throw bad();
  return { host: m[1] ?? m[2], port, ...(exportName !== undefined ? { exportName } : {}) };
}

/** The error of parseRemote as text, or null (for parameter checks). */
export function remoteError(text: string): string | null {
  try {
    parseRemote(text);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/** host:port, with brackets around an IPv6 address. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The target as an nbd:// URI. */
export function formatRemote(t: RemoteTarget): string {
  return `nbd://${formatHostPort(t.host, t.port)}${t.exportName ? `/${encodeURIComponent(t.exportName)}` : ''}`;
}

/** The C client's spec keys for the target. */
export function remoteSpec(t: RemoteTarget): string {
  return `host=${t.host} port=${t.port}${t.exportName ? ` export=${t.exportName}` : ''}`;
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\./.test(h) || /^::ffff:127\./.test(h);
}
