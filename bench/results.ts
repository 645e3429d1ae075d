// What every benchmark shares: a description of the machine, and appending a dated entry to its
// section of bench/RESULTS.md (newest entry last).
import { execSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

export function machine(): { cpu: string; nproc: string } {
  const cpu = cpus()[0]?.model ?? 'unknown';
  let nproc = String(cpus().length);
  try {
    nproc = execSync('nproc', { encoding: 'utf8' }).trim();
  } catch {
    // keep the os.cpus() count
  }
  return { cpu, nproc };
}

/** Appends `entry` at the end of the `## <heading>` section, creating it (with `intro`) if absent. */
export function appendResults(heading: string, intro: string, entry: string): void {
  const file = join(__dirname, 'RESULTS.md');
  const title = `## ${heading}`;
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark results\n';
  if (!text.includes(title)) text = `${text.trimEnd()}\n\n${title}\n\n${intro}\n`;
  const start = text.indexOf(title);
  const next = text.indexOf('\n## ', start + title.length);
  const end = next < 0 ? text.length : next + 1;
  const section = `${text.slice(start, end).trimEnd()}\n\n${entry}\n`;
  text = text.slice(0, start) + section + (next < 0 ? '' : `\n${text.slice(end)}`);
  writeFileSync(file, text);
}
