// A report as one self-contained HTML file: inline CSS, inline SVG charts, no script and no URL, so
// it opens the same from a laptop, a mail attachment or an archive years later. Written atomically
// (a temporary file beside it, then a rename): a reader never sees half a page, and a failed write
// leaves any previous report in place.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ReportTable } from './tables';

/** A chart, or the one line that says why it is not drawn. */
export type Figure = { title: string; svg: string; note: string | null } | { title: string; skipped: string };

export interface ReportPage {
  title: string;
  /** Short lines under the title: what is compared, when the page was made. */
  lines: string[];
  tables: ReportTable[];
  figures: Figure[];
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1b1b1b; max-width: 1200px; margin: 24px auto; padding: 0 20px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #ddd; }
h3 { font-size: 14px; margin: 0 0 4px; }
.lines { color: #555; margin: 0; padding: 0; list-style: none; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 12px 3px 0; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; white-space: nowrap; }
thead th { font-weight: 600; border-bottom: 1px solid #bbb; }
tbody th { font-weight: 500; }
td.num, th.num { text-align: right; }
td.prose { white-space: normal; min-width: 24em; max-width: 48em; }
td.token { white-space: normal; overflow-wrap: anywhere; min-width: 16em; }
details summary { cursor: pointer; color: #333; margin-bottom: 6px; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 20px 28px; }
figure { margin: 0; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption, .skipped { color: #555; font-size: 13px; }
.skipped { font-style: italic; margin: 0 0 12px; }
`;

export function renderReport(page: ReportPage): string {
  const drawn = page.figures.filter((f) => 'svg' in f);
  const skipped = page.figures.filter((f) => 'skipped' in f);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(page.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escape(page.title)}</h1>
<ul class="lines">${page.lines.map((l) => `<li>${escape(l)}</li>`).join('')}</ul>
${page.tables.map(renderTable).join('\n')}
<h2>charts</h2>
${skipped.map((f) => `<p class="skipped">${escape(f.title)}: not drawn — ${escape(f.skipped)}</p>`).join('\n')}
<div class="figures">
${drawn.map((f) => `<figure><h3>${escape(f.title)}</h3>${f.svg}${f.note ? `<figcaption>${escape(f.note)}</figcaption>` : ''}</figure>`).join('\n')}
</div>
</body>
</html>
`;
}

function renderTable(t: ReportTable): string {
  const heading = t.title === null ? '' : `<h2>${escape(t.title)}</h2>`;
  if (!t.rows.length) return t.whenEmpty === undefined ? '' : `${heading}<p>${escape(t.whenEmpty)}</p>`;
  const head = t.header.some((h) => h) ? `<thead><tr>${t.header.map((h, i) => `<th scope="col"${t.numeric && i > 0 ? ' class="num"' : ''}>${escape(h)}</th>`).join('')}</tr></thead>` : '';
  const cell = (text: string) => `<td${t.numeric ? ' class="num"' : wraps(text)}>${escape(text)}</td>`;
  const body = t.rows.map(([label, ...cells]) => `<tr><th scope="row">${escape(label)}</th>${cells.map(cell).join('')}</tr>`).join('\n');
  const table = `<div class="scroll"><table>${head}<tbody>\n${body}\n</tbody></table></div>`;
  return t.folded ? `${heading}<details><summary>${t.rows.length} rows (click to show)</summary>${table}</details>` : `${heading}${table}`;
}

/** Sentences wrap at spaces; long tokens (a code version, say) anywhere, rather than push the table off the page. */
function wraps(text: string): string {
  if (text.length > 60 && text.includes(' ')) return ' class="prose"';
  return text.length > 32 && !text.includes(' ') ? ' class="token"' : '';
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Writes the page to `file` atomically; returns its absolute path. An unwritable place is one sentence. */
export function writeReport(file: string, html: string): string {
  const target = path.resolve(file);
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  try {
    const fd = fs.openSync(temp, 'wx');
    try {
      fs.writeSync(fd, html);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, target);
  } catch (err) {
    fs.rmSync(temp, { force: true });
    throw new Error(`cannot write the report to ${target}: ${why(err as NodeJS.ErrnoException)}`);
  }
  return target;
}

function why(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT':
      return `its directory ${path.dirname(path.resolve(err.path ?? '.'))} does not exist`;
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'the file system is read-only';
    case 'EISDIR':
      return 'it is a directory';
    case 'ENOTDIR':
      return 'a part of its path is not a directory';
    case 'ENOSPC':
      return 'the disk is full';
    default:
      return err.message;
  }
}
