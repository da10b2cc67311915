// A tiny markdown-to-HTML converter for paper.md: headings, paragraphs, pipe
// tables, flat lists, fenced code, block quotes, images, links, emphasis and
// inline code. Enough for the paper; not a CommonMark implementation.

export interface MarkdownOptions {
  /** Rewrites an image source, e.g. to inline it as a data: URI. */
  imageSrc?: (src: string) => string;
}

const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Inline markup. Code spans are cut out first so nothing inside them is interpreted. */
export function inline(text: string, opts: MarkdownOptions = {}): string {
  const codes: string[] = [];
  let s = text.replace(/`([^`]+)`/g, (_, c: string) => {
    codes.push(`<code>${escapeHtml(c)}</code>`);
    return `\u0000${codes.length - 1}\u0000`;
  });
  s = escapeHtml(s);
  s = s.replace(/\\\|/g, '|'); // table cells escape pipes
  s = s.replace(/!\[([^\]]*)\]\(([^)\s]+)\)/g, (_, alt: string, src: string) => {
    const real = opts.imageSrc ? opts.imageSrc(unescapeAttr(src)) : unescapeAttr(src);
    return `<img src="${escapeHtml(real)}" alt="${alt}">`;
  });
  s = s.replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, '<a href="$2">$1</a>');
  s = s.replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>');
  s = s.replace(/(^|[^\w*])\*([^*\s][^*]*)\*(?!\w)/g, '$1<em>$2</em>');
  s = s.replace(/(^|[^\w])_([^_\s][^_]*)_(?!\w)/g, '$1<em>$2</em>');
  return s.replace(/\u0000(\d+)\u0000/g, (_, i: string) => codes[Number(i)]);
}

const unescapeAttr = (s: string) =>
  s
    .replace(/&amp;/g, '&')
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>');

const splitRow = (line: string) =>
  line
    .trim()
    .replace(/^\|/, '')
    .replace(/(?<!\\)\|$/, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());

const isTableSep = (line: string | undefined) => !!line && /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/.test(line);
const LIST_ITEM = /^\s*([-*]|\d+\.)\s+(.*)$/;

export function markdownToHtml(md: string, opts: MarkdownOptions = {}): string {
  const lines = md.replace(/\r\n/g, '\n').split('\n');
  const out: string[] = [];
  let i = 0;
  const isBlank = (l: string | undefined) => l === undefined || l.trim() === '';
  const startsBlock = (l: string) => /^(#{1,6}\s|```|>\s?|<!--)/.test(l) || LIST_ITEM.test(l) || (l.trim().startsWith('|') && isTableSep(lines[i + 1]));

  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) {
      i++;
    } else if (line.trim().startsWith('<!--')) {
      // Comments (the faultlab markers) do not appear in the HTML.
      while (i < lines.length && !lines[i].includes('-->')) i++;
      i++;
    } else if (line.startsWith('```')) {
      const lang = line.slice(3).trim();
      const code: string[] = [];
      for (i++; i < lines.length && !lines[i].startsWith('```'); i++) code.push(lines[i]);
      i++; // closing fence
      out.push(`<pre><code${lang ? ` class="language-${escapeHtml(lang)}"` : ''}>${escapeHtml(code.join('\n'))}</code></pre>`);
    } else if (/^#{1,6}\s/.test(line)) {
      const level = line.match(/^#+/)![0].length;
      const text = line.slice(level).trim();
      const id = text
        .toLowerCase()
        .replace(/[^\w]+/g, '-')
        .replace(/^-|-$/g, '');
      out.push(`<h${level} id="${id}">${inline(text, opts)}</h${level}>`);
      i++;
    } else if (line.trim().startsWith('|') && isTableSep(lines[i + 1])) {
      const head = splitRow(line);
      i += 2;
      const body: string[][] = [];
      for (; i < lines.length && lines[i].trim().startsWith('|'); i++) body.push(splitRow(lines[i]));
      const th = head.map((c) => `<th>${inline(c, opts)}</th>`).join('');
      const trs = body.map((r) => `<tr>${r.map((c) => `<td>${inline(c, opts)}</td>`).join('')}</tr>`).join('\n');
      out.push(`<table>\n<thead><tr>${th}</tr></thead>\n<tbody>\n${trs}\n</tbody>\n</table>`);
    } else if (LIST_ITEM.test(line)) {
      const ordered = /^\s*\d+\./.test(line);
      const items: string[] = [];
      while (i < lines.length && !isBlank(lines[i])) {
        const m = LIST_ITEM.exec(lines[i]);
        if (m) items.push(m[2]);
        else items[items.length - 1] += ' ' + lines[i].trim(); // continuation line
        i++;
        // A list continues across one blank line when the next line is another item.
        if (isBlank(lines[i]) && lines[i + 1] !== undefined && LIST_ITEM.test(lines[i + 1])) i++;
      }
      const tag = ordered ? 'ol' : 'ul';
      out.push(`<${tag}>\n${items.map((t) => `<li>${inline(t, opts)}</li>`).join('\n')}\n</${tag}>`);
    } else if (/^>\s?/.test(line)) {
      const quoted: string[] = [];
      for (; i < lines.length && /^>\s?/.test(lines[i]); i++) quoted.push(lines[i].replace(/^>\s?/, ''));
      out.push(`<blockquote>\n${markdownToHtml(quoted.join('\n'), opts)}\n</blockquote>`);
    } else {
      const para: string[] = [line.trim()];
      for (i++; i < lines.length && !isBlank(lines[i]) && !startsBlock(lines[i]); i++) para.push(lines[i].trim());
      const html = inline(para.join(' '), opts);
      // An image alone in its paragraph is a figure.
      out.push(/^<img [^>]*>$/.test(html) ? `<figure>${html}</figure>` : `<p>${html}</p>`);
    }
  }
  return out.join('\n');
}

const CSS = `
body { font-family: "DejaVu Sans", system-ui, sans-serif; line-height: 1.55; color: #222; background: #fff; }
main { max-width: 60rem; margin: 2rem auto; padding: 0 1.5rem; }
h1, h2, h3 { line-height: 1.25; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .88rem; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: .25rem .55rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } tbody tr:nth-child(even) { background: #fafafa; }
code { background: #f3f3f3; padding: 0 .2rem; border-radius: 3px; font-size: .9em; }
pre { background: #f3f3f3; padding: .8rem; overflow-x: auto; } pre code { background: none; padding: 0; }
figure { margin: 1.5rem 0 .3rem; } img { max-width: 100%; height: auto; border: 1px solid #eee; }
blockquote { border-left: 4px solid #ddd; margin-left: 0; padding-left: 1rem; color: #555; }
`;

/** A complete, self-contained HTML page; the title is the first level-1 heading. */
export function htmlPage(md: string, opts: MarkdownOptions = {}): string {
  const title = /^#\s+(.*)$/m.exec(md)?.[1] ?? 'faultlab';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
${markdownToHtml(md, opts)}
</main>
</body>
</html>
`;
}
