// The chat web page of `dsv4 serve` (GET /) in a real headless browser: Debian's chromium driven
// by puppeteer-core (tests/oracle). Loads the page (no network beyond the server), sends a
// prompt in Think High mode and sees reasoning + stats, streams a Non-think answer and stops it
// (the server cancels the job and frees the slot), and shows the server's error without a key.
// Usage: node server_web_page_test.mjs DSV4_BIN MODEL_DIR   (CHROMIUM=path overrides /usr/bin/chromium)
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
const require = createRequire(new URL('../oracle/package.json', import.meta.url));
const puppeteer = require('puppeteer-core');
import { startServer, stopServer, check, failed } from './server_harness.mjs';

const [bin, modelDir] = process.argv.slice(2);
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
if (!existsSync(chromium)) {
  console.error(`server_web_page_test: ${chromium} not found (apt-get install chromium, or set CHROMIUM)`);
  process.exit(1);
}
const KEY = 'page-key';
const srv = await startServer(bin, modelDir, ['--api-key', KEY, '--parallel', '2', '-c', '4096']);
const metric = async (name) => {
  const t = await (await fetch(srv.base + '/metrics', { headers: { authorization: `Bearer ${KEY}` } })).text();
  return Number(t.match(new RegExp(`^${name} (\\d+)`, 'm'))?.[1] ?? -1);
};

const browser = await puppeteer.launch({ executablePath: chromium, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-extensions'] });
try {
  const page = await browser.newPage();
  const foreign = [];
  page.on('request', (r) => { if (!r.url().startsWith(srv.base)) foreign.push(r.url()); });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const resp = await page.goto(srv.base + '/', { waitUntil: 'load' });
  check(resp.status() === 200 && resp.headers()['content-type'].startsWith('text/html'), 'GET / serves the page without a key', resp.status());
  const state = () => page.evaluate(() => document.body.dataset.state);
  const waitState = (s, ms = 60000) => page.waitForFunction((x) => document.body.dataset.state === x, { timeout: ms }, s);
  const lastAssistant = () => page.evaluate(() => {
    const all = document.querySelectorAll('.msg.assistant');
    const m = all[all.length - 1];
    if (!m) return null;
    const d = m.querySelector('details.reasoning');
    return { content: m.querySelector('.content').textContent, reasoning: d.hidden ? null : d.textContent, open: d.open };
  });

  // without the key: the server's 401 is shown
  await page.type('#prompt', 'Hello');
  await page.keyboard.press('Enter');
  await waitState('error');
  const err = await page.$eval('.msg.error', (e) => e.textContent);
  check(/API key/.test(err) && (await page.$$('.msg.assistant')).length === 0, 'no key: the error message is shown', err);

  // Think High, 12 tokens: streamed reasoning in a collapsible block, stats
  await page.type('#api-key', KEY);
  await page.$eval('#api-key', (e) => e.dispatchEvent(new Event('change')));
  await page.waitForFunction(() => true);
  await page.select('#mode', 'high');
  await page.type('#max-tokens', '12');
  await page.type('#system', 'You are brief.');
  await page.type('#prompt', 'Who are you?');
  await page.click('#send');
  check((await state()) === 'streaming' || (await state()) === 'done', 'sending starts a stream');
  await waitState('done');
  const a1 = await lastAssistant();
  check(a1?.reasoning && a1.reasoning.length > 'Reasoning'.length, 'Think High: reasoning shown in a collapsible block', a1);
  const stats = await page.$eval('#stats', (e) => e.textContent);
  check(/^12 tokens · [\d.]+ tok\/s · prompt \d+ \(cached \d+\)/.test(stats) && /finish length/.test(stats), 'stats: tokens, tok/s, prompt, finish', stats);

  // Non-think, no limit: text streams in; Stop ends it and the server frees the slot
  const cancelled0 = await metric('dsv4_requests_cancelled_total');
  await page.select('#mode', 'none');
  await page.$eval('#max-tokens', (e) => { e.value = ''; });
  await page.type('#prompt', 'Write a long story.');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => {
    const all = document.querySelectorAll('.msg.assistant .content');
    return all.length === 2 && all[all.length - 1].textContent.length > 20;
  }, { timeout: 60000 });
  const seen = (await lastAssistant()).content.length;
  await page.click('#stop');
  await waitState('stopped');
  const after = (await lastAssistant()).content.length;
  await new Promise((r) => setTimeout(r, 800));
  const later = (await lastAssistant()).content.length;
  check(after >= seen && later === after && (await lastAssistant()).reasoning === null, 'Non-think: streamed text stops growing after Stop', [seen, after, later]);
  let freed = false;
  for (let i = 0; i < 300 && !freed; i++) {
    freed = (await metric('dsv4_active_slots')) === 0 && (await metric('dsv4_requests_cancelled_total')) === cancelled0 + 1;
    if (!freed) await new Promise((r) => setTimeout(r, 100));
  }
  check(freed, 'Stop cancels the job on the server and frees its slot');
  check(foreign.length === 0, 'the page loads nothing from outside the server', foreign);
  check(errors.length === 0, 'no page errors', errors);
} catch (e) {
  check(false, 'unexpected exception', String(e?.stack ?? e));
} finally {
  await browser.close();
}
const code = await stopServer(srv);
check(code === 0, 'SIGTERM: clean exit', `${code}\n${srv.log().slice(-2000)}`);
if (failed()) { console.error(`${failed()} check(s) failed`); process.exit(1); }
console.log('server_web_page_test: all checks passed');
