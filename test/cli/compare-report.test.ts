// `sieve compare` with run and run:stage operands, and the HTML reports of `compare --html` and
// `show --html`, on two real runs (pretrain → prune → sparse-train → evaluate, differing only in the
// sparse-train learning rate). The reports are opened in headless Chromium (system package, driven by
// puppeteer-core): no console message, no page error, no request beyond the file itself, the charts
// present with their axis titles, and a screenshot (its path is printed as a test diagnostic).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import puppeteer from 'puppeteer-core';
import { openDb } from '../../activities/store/db';
import { recordMetrics } from '../../activities/store/writes';
import { DevServer } from '../../cli/temporal/dev-server';
import { CompareOutput, ErrorOutput, type ModelMeasures } from '../../schemas/cli';
import { lastJson, sieve, tempHome, writeRecipe } from './helpers';

const CHROMIUM = '/usr/bin/chromium';
const home = tempHome('compare-report');

const recipe = (sparseLr: string) => `name: cmp
seed: 1
model: { family: gpt2, layers: 1, dim: 32, heads: 2, context: 32, tokenizer: bytes }
data:
  corpus: moby-dick
  train: { items: [3, 40] }
  eval:
    tail: { corpus: moby-dick, items: [130, 138] }
stages:
  - { id: dense, kind: pretrain, steps: 40, batch: 8, lr: 3.0e-3, checkpointEvery: 40 }
  - { id: pruned, kind: prune, method: magnitude, from: dense }
  - { id: sparse, kind: sparse-train, method: srste, from: pruned, steps: 20, batch: 8, lr: ${sparseLr}, maskEvery: 5, checkpointEvery: 20 }
  - { id: report, kind: evaluate, from: [dense, pruned, sparse] }
`;

let a: string;
let b: string;

before(
  async () => {
    const ids: string[] = [];
    for (const lr of ['1.0e-3', '3.0e-3']) {
      const r = await sieve(home, ['run', writeRecipe(home, `lr-${lr}.yaml`, recipe(lr)), '--json']);
      assert.equal(r.code, 0, r.stderr);
      ids.push(lastJson<{ id: string }>(r.stdout).id);
    }
    [a, b] = ids;
    // Run b's measures pinned to known values, so that the tables' formatting can be checked exactly
    // (the evaluate stage records 2:4 share, size, bits per weight and speed since recently; the
    // values it measured are replaced). Run a keeps whatever its evaluate stage recorded.
    const { db, close } = openDb({ home });
    const measures = { dense: [0, 32, 87_936, 51_000], pruned: [1, 26.25, 72_064, 50_000], sparse: [1, 26.25, 72_064, 49_000] };
    recordMetrics(
      db,
      Object.entries(measures).flatMap(([model, [twoFour, bits, bytes, speed]]) => [
        { runId: b, stageId: 'report', name: `${model}/two_four`, value: twoFour },
        { runId: b, stageId: 'report', name: `${model}/bits_per_weight`, value: bits },
        { runId: b, stageId: 'report', name: `${model}/bytes`, value: bytes },
        { runId: b, stageId: 'report', name: `${model}/native/tokens_per_sec`, value: speed },
      ]),
    );
    close();
  },
  { timeout: 120_000 },
);
after(async () => {
  await new DevServer(home).stop();
});

const compare = async (args: string[]) => {
  const r = await sieve(home, ['compare', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r;
};
const compareJson = async (args: string[]) => CompareOutput.parse(JSON.parse((await compare([...args, '--json'])).stdout));
const model = (out: CompareOutput, label: string): ModelMeasures => out.models.find((m) => `${m.run}:${m.stage}` === label)!;

test('compare two runs: only the settings that differ, and every evaluated model with its measures', async () => {
  const out = await compareJson([a, b]);
  assert.deepEqual(out.runs.map((r) => [r.id, r.stage]), [[a, null], [b, null]]);
  assert.deepEqual(out.recipe.map((d) => [d.path, d.values]), [
    ['stages[sparse].lr', [0.001, 0.003]],
    ['stages[sparse].minLr', [0.001 / 10, 0.003 / 10]],
  ]);
  assert.deepEqual(out.models.map((m) => `${m.run}:${m.stage}`), ['dense', 'pruned', 'sparse'].flatMap((s) => [`${a}:${s}`]).concat(['dense', 'pruned', 'sparse'].map((s) => `${b}:${s}`)));
  for (const m of out.models) {
    assert.deepEqual(m.evaluatedBy, ['report']);
    assert.equal(m.perplexity.length, 1);
    const [ppl] = m.perplexity;
    assert.deepEqual([ppl.set, ppl.runtime], ['tail', 'native']);
    assert.ok(ppl.value! > 1 && ppl.value! < 256, `${m.stage}: perplexity ${ppl.value} between 1 and the byte vocabulary`);
  }
  const sparse = model(out, `${b}:sparse`);
  assert.deepEqual([sparse.twoFour, sparse.bitsPerWeight, sparse.bytes], [1, 26.25, 72_064]);
  assert.deepEqual(sparse.throughput.find((t) => t.runtime === 'native')?.tokensPerSec, 49_000);
  assert.ok(!sparse.perplexity.some((p) => p.runtime === 'onnxruntime'), 'no onnxruntime perplexity: the stage ran natively');
});

test('compare run:stage operands: the stage and its inputs only, and one models row each', async () => {
  const out = await compareJson([`${a}:sparse`, `${b}:sparse`]);
  assert.deepEqual(out.runs.map((r) => r.stage), ['sparse', 'sparse']);
  assert.deepEqual(out.stages.map((s) => s.id), ['dense', 'pruned', 'sparse'], 'the evaluate stage is not part of the model');
  assert.deepEqual(out.recipe.map((d) => d.path), ['stages[sparse].lr', 'stages[sparse].minLr']);
  assert.deepEqual(out.models.map((m) => `${m.run}:${m.stage}`), [`${a}:sparse`, `${b}:sparse`]);

  // Against the dense model of the same run, the stages the sparse model adds differ (absent on one side).
  const mixed = await compareJson([`${a}:dense`, `${a}:sparse`]);
  const diff = Object.fromEntries(mixed.recipe.map((d) => [d.path, d.values]));
  assert.deepEqual(diff['stages[sparse].method'], [null, 'srste']);
  assert.deepEqual(diff['stages[pruned].from'], [null, 'dense']);
  assert.equal(diff['stages[dense].lr'], undefined);

  const text = (await compare([`${a}:sparse`, `${b}:sparse`])).stdout;
  const table = text.slice(text.indexOf('\nmodels\n') + 1).split('\n\n')[0].split('\n');
  assert.match(table[1], /^\s+ppl tail\s+2:4 share\s+bits\/weight\s+size\s+tokens\/s native$/, 'only the columns some model has: no onnxruntime');
  assert.deepEqual(table[2].trim().split(/\s{2,}/).slice(0, 2), [`${a}:sparse`, model(out, `${a}:sparse`).perplexity[0].value!.toPrecision(4)]);
  assert.match(table[3], new RegExp(`^  ${b}:sparse\\s+\\d+\\.\\d+\\s+100%\\s+26\\.25\\s+70\\.4 KiB\\s+49000$`));
  assert.match(text, /recipe differences\n.*\n\s+stages\[sparse\]\.lr\s+0\.001\s+0\.003\n/);
});

test('a bad operand is one sentence naming it, with a non-zero exit', async () => {
  const cases: [string[], RegExp][] = [
    [['ghost', a], /^sieve: no run "ghost" in .*; `sieve history` lists the runs\.\n$/],
    [[`${a}:nope`, b], new RegExp(`^sieve: run "${a}" has no stage "nope"; its models are ${a}:dense, ${a}:pruned, ${a}:sparse\\.\\n$`)],
    [[`${a}:report`, b], new RegExp(`^sieve: stage "report" of run "${a}" produced no model \\(its kind, evaluate, makes a report, not a model\\); its models are`)],
  ];
  for (const [args, message] of cases) {
    const r = await sieve(home, ['compare', ...args]);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '');
  }
  const json = await sieve(home, ['compare', `${a}:report`, b, '--json']);
  assert.equal(ErrorOutput.parse(JSON.parse(json.stdout)).error.code, 'not-found');
});

test('--html to a place that cannot be written: one sentence, nothing printed, nothing left behind', async () => {
  const missing = path.join(home, 'no-such-dir', 'r.html');
  const r = await sieve(home, ['compare', a, b, '--html', missing]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `sieve: cannot write the report to ${missing}: its directory ${path.dirname(missing)} does not exist\n`);
  assert.equal(r.stdout, '');
  const dir = path.join(home, 'a-directory');
  fs.mkdirSync(dir);
  const onDir = await sieve(home, ['show', a, '--html', dir]);
  assert.equal(onDir.code, 1);
  assert.match(onDir.stderr, /^sieve: cannot write the report to .*a-directory: it is a directory\n$/);
  assert.deepEqual(fs.readdirSync(home).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');
});

test('compare --html: one self-contained page with the tables and four charts, clean in Chromium', async (t) => {
  const file = path.join(home, 'compare.html');
  const r = await compare([a, b, `${b}:sparse`, '--html', file]);
  assert.match(r.stderr, new RegExp(`report written to ${file}`));
  assert.match(r.stdout, /^models$/m, 'the tables are printed as well');
  const html = fs.readFileSync(file, 'utf8');
  assert.doesNotMatch(html, /<script|https?:|src=|href=/i, 'no script, no URL, nothing to fetch');

  const page = await inChromium(t, file, async (p) => ({
    svgs: await p.$$eval('figure svg', (svgs) => svgs.length),
    figures: await p.$$eval('figure h3', (hs) => hs.map((h) => h.textContent)),
    svgText: await p.$$eval('figure svg', (svgs) => svgs.map((s) => s.textContent ?? '')),
    skipped: await p.$$eval('.skipped', (ps) => ps.length),
    headings: await p.$$eval('h2', (hs) => hs.map((h) => h.textContent)),
  }));
  assert.equal(page.svgs, 4);
  assert.deepEqual(page.figures, ['training loss', 'mask flip rate', 'perplexity against bits per weight', 'perplexity against 2:4 share']);
  assert.equal(page.skipped, 0);
  assert.deepEqual(page.headings, ['recipe differences', 'stages', 'models', 'metrics', 'charts']);
  const [loss, flips, bits, twoFour] = page.svgText;
  assert.match(loss, /step/);
  assert.match(loss, /loss \(nats per token\)/);
  assert.match(loss, new RegExp(`${a}:dense`));
  assert.match(loss, new RegExp(`${a}:sparse`));
  assert.match(flips, /flip rate \(share changed\)/);
  assert.match(flips, /1e-\d/, 'a log axis, labelled in powers of ten');
  assert.match(bits, /bits per weight/);
  assert.match(bits, /perplexity on tail/);
  assert.match(bits, new RegExp(`${b}:sparse`), 'points are labelled');
  assert.match(twoFour, /2:4 share/);
  assert.match(twoFour, /100%/);
});

test('show --html: the run, its models and its charts', async (t) => {
  const file = path.join(home, 'show.html');
  const r = await sieve(home, ['show', b, '--html', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^run\\s+${b}`), 'the text is printed as well');
  const page = await inChromium(t, file, async (p) => ({
    figures: await p.$$eval('figure h3', (hs) => hs.map((h) => h.textContent)),
    headings: await p.$$eval('h2', (hs) => hs.map((h) => h.textContent)),
    models: await p.$$eval('h2', (hs) => hs.find((h) => h.textContent === 'models')?.nextElementSibling?.textContent),
  }));
  assert.deepEqual(page.figures, ['training loss', 'mask flip rate', 'perplexity against bits per weight', 'perplexity against 2:4 share']);
  assert.deepEqual(page.headings, ['stages', 'models', 'metrics', 'charts']);
  assert.match(page.models ?? '', /sparse[\d.]+100%26\.2570\.4 KiB49000/, 'labelled by stage id within one run');
});

test('a chart without data is one line saying so, not an empty frame', async (t) => {
  const file = path.join(home, 'dense.html');
  await compare([`${a}:dense`, `${b}:dense`, '--html', file]);
  const page = await inChromium(t, file, async (p) => ({
    figures: await p.$$eval('figure h3', (hs) => hs.map((h) => h.textContent)),
    skipped: await p.$$eval('.skipped', (ps) => ps.map((x) => x.textContent)),
    loss: await p.$eval('figure svg', (svg) => svg.textContent),
  }));
  assert.deepEqual(page.skipped, ['mask flip rate: not drawn — no stage recorded a mask flip rate (sparse-train stages with a hard mask do)']);
  assert.equal(page.figures[0], 'training loss');
  // Same seed, same settings: the same bits, so one line for both.
  assert.match(page.loss ?? '', new RegExp(`${a}:dense = ${b}:dense`));
});

/**
 * Opens `file` in headless Chromium with every request but the file's own refused, runs `read`, and
 * fails on any console message, page error or other request. Saves a full-page screenshot beside it.
 */
async function inChromium<T>(t: TestContext, file: string, read: (page: import('puppeteer-core').Page) => Promise<T>): Promise<T> {
  if (!fs.existsSync(CHROMIUM)) assert.fail(`no Chromium at ${CHROMIUM}: run cli/setup.sh, which installs it (CI does)`);
  // --no-sandbox: CI and containers run tests as root, where Chromium's sandbox refuses to start.
  const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const problems: string[] = [];
    page.on('console', (m) => problems.push(`console ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => problems.push(`page error: ${(e as Error).message}`));
    const url = `file://${file}`;
    await page.setRequestInterception(true);
    page.on('request', (req) => {
      if (req.url() === url) return void req.continue();
      problems.push(`request: ${req.url()}`);
      void req.abort();
    });
    await page.goto(url, { waitUntil: 'load' });
    const result = await read(page);
    const screenshot = file.replace(/\.html$/, '.png');
    await page.screenshot({ path: screenshot as `${string}.png`, fullPage: true });
    t.diagnostic(`screenshot: ${screenshot}`);
    assert.deepEqual(problems, []);
    return result;
  } finally {
    await browser.close();
  }
}
