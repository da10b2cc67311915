// Spec -> files: <name>.vl.json, <name>.svg (vega, renderer 'none', no browser)
// and <name>.png (resvg with the bundled DejaVu Sans, so text renders the same
// on every machine; system fonts are never consulted).
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { FONT } from './spec-common.js';
import { collectingLogger } from './vega-logger.js';
import type { Figure } from './figures/types.js';

export const FONT_FILE = createRequire(import.meta.url).resolve('dejavu-fonts-ttf/ttf/DejaVuSans.ttf');

/** PNGs are rendered at twice the SVG's size so they stay sharp in the paper. */
export const PNG_SCALE = 2;

export interface SvgResult {
  svg: string;
  width: number;
  height: number;
  warnings: string[];
}

export async function specToSvg(spec: TopLevelSpec): Promise<SvgResult> {
  const logger = collectingLogger();
  const vg = compile(spec, { logger }).spec;
  const view = new vega.View(vega.parse(vg), { renderer: 'none', logger });
  try {
    const svg = await view.toSVG();
    const m = /<svg[^>]*\swidth="([\d.]+)"[^>]*\sheight="([\d.]+)"/.exec(svg);
    if (!m) throw new Error('vega produced an SVG without width/height');
    return { svg, width: Number(m[1]), height: Number(m[2]), warnings: logger.warnings };
  } finally {
    view.finalize();
  }
}

export interface PngOptions {
  scale?: number;
  /** Tests pass false to render without any font and prove the font is what draws the text. */
  withFont?: boolean;
}

export interface PngResult {
  png: Buffer;
  /** Raw RGBA pixels, for tests that compare renderings. */
  pixels: Buffer;
  width: number;
  height: number;
}

export function svgToPng(svg: string, opts: PngOptions = {}): PngResult {
  const withFont = opts.withFont ?? true;
  const r = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: opts.scale ?? PNG_SCALE },
    background: 'white',
    font: {
      fontFiles: withFont ? [FONT_FILE] : [],
      loadSystemFonts: false,
      defaultFontFamily: withFont ? FONT : 'none',
    },
  });
  const img = r.render();
  return { png: img.asPng(), pixels: img.pixels, width: img.width, height: img.height };
}

export interface RenderedFigure {
  name: string;
  files: { vl: string; svg: string; png: string };
  width: number;
  height: number;
  warnings: string[];
}

export async function renderFigure(fig: Figure, outDir: string): Promise<RenderedFigure> {
  mkdirSync(outDir, { recursive: true });
  const files = {
    vl: join(outDir, `${fig.name}.vl.json`),
    svg: join(outDir, `${fig.name}.svg`),
    png: join(outDir, `${fig.name}.png`),
  };
  const { svg, warnings } = await specToSvg(fig.spec);
  const { png, width, height } = svgToPng(svg);
  writeFileSync(files.vl, JSON.stringify(fig.spec, null, 2) + '\n');
  writeFileSync(files.svg, svg);
  writeFileSync(files.png, png);
  return { name: fig.name, files, width, height, warnings };
}

export async function renderFigures(figs: Figure[], outDir: string): Promise<RenderedFigure[]> {
  const out: RenderedFigure[] = [];
  for (const f of figs) out.push(await renderFigure(f, outDir)); // sequential: vega's logger is global in vega-lite
  return out;
}
