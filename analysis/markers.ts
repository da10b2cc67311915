// Generated regions of paper.md:
//   <!-- faultlab:begin NAME -->  ...generated...  <!-- faultlab:end NAME -->
// Everything outside the markers is the authors' prose and is kept byte for byte.

const MARKER = /<!--\s*faultlab:(begin|end)\s+([\w-]+)\s*-->/g;

export interface MarkerRegion {
  name: string;
  /** Offsets of the text between the begin and end markers. */
  start: number;
  end: number;
}

/** Find every region; a begin without its end (or the reverse, or nesting) is an error naming the marker. */
export function findMarkers(text: string, file = 'paper.md'): MarkerRegion[] {
  const regions: MarkerRegion[] = [];
  let open: { name: string; start: number; line: number } | null = null;
  const lineOf = (i: number) => text.slice(0, i).split('\n').length;
  for (const m of text.matchAll(MARKER)) {
    const [whole, kind, name] = m;
    const at = m.index!;
    if (kind === 'begin') {
      if (open) throw new Error(`${file}:${open.line}: marker "${open.name}" has no <!-- faultlab:end ${open.name} --> before the next begin marker`);
      if (regions.some((r) => r.name === name)) throw new Error(`${file}:${lineOf(at)}: marker "${name}" appears twice`);
      open = { name, start: at + whole.length, line: lineOf(at) };
    } else {
      if (!open || open.name !== name) throw new Error(`${file}:${lineOf(at)}: <!-- faultlab:end ${name} --> without a matching begin marker`);
      regions.push({ name, start: open.start, end: at });
      open = null;
    }
  }
  if (open) throw new Error(`${file}:${open.line}: marker "${open.name}" is missing <!-- faultlab:end ${open.name} -->`);
  return regions;
}

/**
 * Replace the content of every region. Every region present must have content:
 * an unknown name is an error rather than a silently stale section.
 */
export function fillMarkers(text: string, content: Record<string, string>, file = 'paper.md'): string {
  const regions = findMarkers(text, file);
  for (const r of regions) if (!(r.name in content)) throw new Error(`${file}: unknown marker "${r.name}" (known: ${Object.keys(content).join(', ')})`);
  let out = '';
  let last = 0;
  for (const r of regions) {
    const body = content[r.name].trim();
    if (body === '') throw new Error(`${file}: marker "${r.name}" would be left empty`);
    out += text.slice(last, r.start) + '\n' + body + '\n';
    last = r.end;
  }
  return out + text.slice(last);
}
