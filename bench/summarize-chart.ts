import { formatNumber, targetText, type SummaryRow } from './summarize-rows.js';

const ROW_HEIGHT = 26;
const LABEL_WIDTH = 430;
const BAR_WIDTH = 360;
const VALUE_WIDTH = 200;
const TOP = 44;
/** Bars are drawn as ratio ÷ target; past this they are cut and marked. */
const MAX_SCALE = 3;

function escapeXml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;');
}

/**
 * The summary as an SVG bar chart: one bar per figure, its ratio divided by its target, so
 * every target sits on the same line (1.0); green when the figure meets its target, red when
 * not. Plain SVG 1.1 with no scripts or external references, so a README can show it.
 */
export function summaryChart(rows: readonly SummaryRow[], caption: string): string {
  const width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH;
  const height = TOP + Math.max(rows.length, 1) * ROW_HEIGHT + 40;
  const scale = Math.min(
    MAX_SCALE,
    Math.max(1.5, ...rows.map((r) => (r.target > 0 ? r.ratio / r.target : 0))),
  );
  const x = (fraction: number) => LABEL_WIDTH + (Math.min(fraction, scale) / scale) * BAR_WIDTH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="8" y="18" font-size="14" font-weight="bold">${escapeXml(caption)}</text>`,
    `<text x="8" y="34" fill="#555555">bar = ratio ÷ target (the line at 1.0); each ratio is against a reference from the same run</text>`,
  ];
  rows.forEach((row, i) => {
    const y = TOP + i * ROW_HEIGHT;
    const fraction = row.target > 0 ? row.ratio / row.target : 0;
    const colour = row.pass ? '#2e7d32' : '#c62828';
    const label = `${row.bench}: ${row.name}`;
    parts.push(
      `<g data-bench="${escapeXml(row.bench)}">`,
      `<text x="8" y="${y + 17}">${escapeXml(label)}</text>`,
      `<rect x="${LABEL_WIDTH}" y="${y + 5}" width="${(x(fraction) - LABEL_WIDTH).toFixed(1)}" height="${ROW_HEIGHT - 10}" fill="${colour}"/>`,
      fraction > scale
        ? `<text x="${(x(scale) - 12).toFixed(1)}" y="${y + 17}" fill="#ffffff">»</text>`
        : '',
      `<text x="${LABEL_WIDTH + BAR_WIDTH + 8}" y="${y + 17}">${escapeXml(`${formatNumber(row.ratio)} (target ${targetText(row)}) ${row.pass ? 'pass' : 'FAIL'}`)}</text>`,
      `</g>`,
    );
  });
  if (rows.length === 0) {
    parts.push(`<text x="8" y="${TOP + 17}">no benchmark wrote a summary</text>`);
  }
  const bottom = TOP + Math.max(rows.length, 1) * ROW_HEIGHT;
  const line = x(1).toFixed(1);
  parts.push(
    `<line x1="${line}" y1="${TOP}" x2="${line}" y2="${bottom}" stroke="#000000" stroke-dasharray="4 3"/>`,
    `<text x="${line}" y="${bottom + 16}" text-anchor="middle">target</text>`,
    `<text x="${LABEL_WIDTH}" y="${bottom + 16}" text-anchor="middle">0</text>`,
    `<text x="${LABEL_WIDTH + BAR_WIDTH}" y="${bottom + 16}" text-anchor="middle">${formatNumber(scale)}×</text>`,
    '</svg>',
  );
  return `${parts.filter((p) => p !== '').join('\n')}\n`;
}
