// Drives the web console in headless Chromium (Debian's chromium, puppeteer-core): the token
// form, the flows view against /flows, a flow's pipeline and live tap, a dead letter replayed.
// Usage: node console_check.mjs BASE_URL TOKEN SCREENSHOT_DIR; exits 1 with the reason.
import puppeteer from 'puppeteer-core';
import { mkdirSync } from 'node:fs';

const [base, token, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const fail = (why) => { console.error('FAIL: ' + why); process.exitCode = 1; };
const api = async (path) => (await fetch(base + path, { headers: { Authorization: 'Bearer ' + token } })).json();

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu'],  // root in CI: no user namespace sandbox
  headless: true,
});
try {
  const page = await browser.newPage();
  const errors = [];
  let signedIn = false;  // before, the API's 401s are the point: the page asks for the token
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (signedIn && m.type() === 'error') errors.push(m.text() + ' (' + (m.location()?.url || '') + ')'); });
  page.setDefaultTimeout(15000);

  // Off loopback the data wants the token: the page asks for it.
  await page.goto(base + '/', { waitUntil: 'load' });
  await page.waitForSelector('#login:not([hidden])');
  await page.screenshot({ path: `${shots}/1-token.png` });
  await page.type('#token', token);
  signedIn = true;
  await page.click('#login button');

  // The flows view: every flow, and its counters as /flows says (a finished flow's are fixed).
  await page.waitForSelector('#flows tbody tr');
  const flows = (await api('/flows')).flows;
  const done = flows.find((f) => f.name === 'done');
  await page.waitForFunction(() => document.querySelectorAll('#flows tbody tr').length >= 3);
  const row = await page.$eval('tr[data-flow="done"]', (tr) =>
    Object.fromEntries([...tr.querySelectorAll('td[data-field]')].map((td) => [td.dataset.field, td.textContent])));
  if (row.emitted !== done.emitted.toLocaleString('en-US') || row.delivered !== done.delivered.toLocaleString('en-US'))
    fail(`flow done shows emitted ${row.emitted}, delivered ${row.delivered}; /flows says ${done.emitted}, ${done.delivered}`);
  const rejects = await page.$eval('tr[data-flow="rejects"] td[data-field="dead_lettered"]', (td) => Number(td.textContent));
  if (!(rejects > 0)) fail(`the flow rejects shows ${rejects} dead letters`);
  // Live: the endless flow's in/s is measured between two refreshes.
  await page.waitForFunction(() => Number(document.querySelector('tr[data-flow="live"] td[data-field="in_rate"]').textContent) > 0);
  await page.screenshot({ path: `${shots}/2-flows.png`, fullPage: true });

  // A flow's page: its pipeline with counters, its config, and a live tap.
  await page.click('tr[data-flow="live"] a');
  await page.waitForSelector('#pipeline [data-stage="source"]');
  const stages = await page.$$eval('#pipeline [data-stage]', (els) => els.map((e) => e.dataset.stage));
  for (const s of ['source', 'steps[0]', 'sinks.out', 'dead_letter']) if (!stages.includes(s)) fail(`the pipeline has no ${s}: ${stages}`);
  const config = await page.$eval('#config', (e) => e.textContent);
  if (!config.includes('generate')) fail('the config is not shown: ' + config);
  await page.select('#tap-stage', 'sinks.out');
  await page.click('#tap-start');
  await page.waitForSelector('#tap-events li pre');
  const event = await page.$eval('#tap-events li pre', (e) => e.textContent);
  if (!event.includes('"payload"')) fail('the tap shows no event: ' + event);
  await page.screenshot({ path: `${shots}/3-flow.png`, fullPage: true });

  // The dead letters: one replayed from the page (it is refused again: the flow did not change).
  await page.goto(base + '/console/#/dlq', { waitUntil: 'load' });
  await page.waitForSelector('#letters tbody tr');
  const id = await page.$eval('#letters tbody tr', (tr) => tr.dataset.letter);
  await page.click(`tr[data-letter="${id}"] a`);
  await page.waitForFunction(() => document.querySelector('#letter').textContent.includes('"reason"'));
  await page.click(`tr[data-letter="${id}"] button.replay`);
  await page.waitForFunction(() => document.querySelector('#dlq-status').textContent.includes('"replayed":1'));
  const letter = await api('/dlq/' + id);
  if (letter.replays !== 1) fail(`letter ${id} has replays ${letter.replays} after the page replayed it`);
  await page.screenshot({ path: `${shots}/4-dead-letters.png`, fullPage: true });

  if (errors.length) fail('the page logged errors: ' + errors.join('; '));
} catch (e) {
  fail(e.stack || String(e));
} finally {
  await browser.close();
}
