// The prefix cache survives a restart: `dsv4 serve --prefix-cache-dir DIR` writes its cache on
// SIGTERM (exit 0, files in DIR), a new server on DIR serves the next turn of the conversation
// from it (cached_tokens > 0, disk hits in /metrics) with the same output as a server without a
// cache, corrupt files in DIR are skipped with a warning, and a SIGTERM during a generation
// still exits 0 and writes that sequence.
// Usage: node server_prefix_cache_restart_test.mjs DSV4_BIN MODEL_DIR
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, stopServer, check, failed } from './server_harness.mjs';

const [bin, modelDir] = process.argv.slice(2);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dsv4-pcache-'));
const cacheFiles = () => fs.readdirSync(dir).filter((f) => f.endsWith('.dsv4pc'));
const common = ['--parallel', '2', '-c', '1024'];

async function chat(srv, body) {
  const r = await fetch(srv.base + '/v1/chat/completions', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'deepseek-v4-flash', ...body }),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch {}
  return { status: r.status, text, json };
}
async function metric(srv, name) {
  const t = await (await fetch(srv.base + '/metrics')).text();
  const m = t.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

const user = (t) => ({ role: 'user', content: t });
const turn1 = { messages: [user('Tell me a short story about a lighthouse keeper.')], max_tokens: 24, seed: 5 };
let servers = [];
try {
  // ---- first server: one turn, then SIGTERM
  const a = await startServer(bin, modelDir, [...common, '--prefix-cache-dir', dir]);
  servers.push(a);
  const r1 = await chat(a, turn1);
  check(r1.status === 200, 'turn 1: 200', r1.text);
  check(cacheFiles().length === 0, 'nothing on disk before shutdown (RAM budget not exceeded)', cacheFiles());
  const codeA = await stopServer(a);
  check(codeA === 0, 'SIGTERM: exit code 0', `${codeA}\n${a.log().slice(-2000)}`);
  check(/prefix cache: wrote 1 entries/.test(a.log()), 'shutdown wrote the cache', a.log().slice(-2000));
  const files = cacheFiles();
  check(files.length === 1, 'one cache file after shutdown', fs.readdirSync(dir));
  check(!fs.readdirSync(dir).some((f) => f.includes('.tmp.')), 'no temp files left');

  // ---- corrupt files next to it: garbage and a truncated copy
  fs.writeFileSync(path.join(dir, 'garbage.dsv4pc'), 'definitely not a session file');
  const good = fs.readFileSync(path.join(dir, files[0]));
  fs.writeFileSync(path.join(dir, 'truncated.dsv4pc'), good.subarray(0, Math.floor(good.length / 2)));

  // ---- second server on the same directory: the next turn reuses the cached prefix
  const m1 = r1.json.choices[0].message;
  const turn2 = {
    messages: [...turn1.messages, { role: 'assistant', content: m1.content, reasoning_content: m1.reasoning_content },
               user('And what happened next?')],
    max_tokens: 24, seed: 9,
  };
  const b = await startServer(bin, modelDir, [...common, '--prefix-cache-dir', dir]);
  servers.push(b);
  const warnings = b.log().split('\n').filter((l) => l.includes('prefix cache: skipping'));
  check(warnings.length === 2 && warnings.some((l) => l.includes('garbage.dsv4pc')) && warnings.some((l) => l.includes('truncated.dsv4pc')),
        'one warning per corrupt file at startup', b.log());
  check(/prefix cache: 1 entries/.test(b.log()), 'startup indexed the good file', b.log());
  const r2 = await chat(b, turn2);
  check(r2.status === 200, 'turn 2: 200', r2.text);
  const cached = r2.json?.usage?.prompt_tokens_details?.cached_tokens;
  check(cached > 0, 'turn 2 after restart: cached_tokens > 0', r2.json?.usage);
  check(await metric(b, 'dsv4_prefix_cache_disk_hits_total') === 1, '/metrics: one disk hit');
  check(await metric(b, 'dsv4_prefix_cache_disk_hit_tokens_total') === cached, '/metrics: disk hit tokens = cached_tokens');
  check(await metric(b, 'dsv4_prefix_cache_disk_skipped_files_total') === 2, '/metrics: two skipped files');

  // ---- SIGTERM during a generation: exit 0, the sequence is written too
  const long = fetch(b.base + '/v1/chat/completions', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'deepseek-v4-flash', messages: [user('Count to one thousand.')], max_tokens: 900, seed: 1,
                           stream: true }),
  }).then(async (r) => ({ status: r.status, text: await r.text() }), (e) => ({ status: 0, text: String(e) }));
  for (let i = 0; i < 200 && (await metric(b, 'dsv4_active_slots')) < 1; i++) await new Promise((r) => setTimeout(r, 25));
  await new Promise((r) => setTimeout(r, 300));
  const codeB = await stopServer(b);
  check(codeB === 0, 'SIGTERM during a generation: exit code 0', `${codeB}\n${b.log().slice(-2000)}`);
  const lr = await long;
  check(lr.status === 200 && lr.text.includes('data: [DONE]'), 'the in-flight stream ended cleanly', lr.text.slice(-500));
  // (The in-flight request shares the chat template's first tokens with turn 2, so it took that
  // entry over: one sequence in the cache.)
  check(/finish=cancelled/.test(b.log()), 'the in-flight request was cancelled', b.log().slice(-2000));
  check(/prefix cache: wrote 1 entries/.test(b.log()), 'shutdown wrote the in-flight sequence', b.log().slice(-2000));
  check(cacheFiles().length === 3 && !cacheFiles().includes(files[0]), 'a new cache file (+ the two corrupt ones, left alone)',
        fs.readdirSync(dir));

  // ---- reference: a server without a cache gives the same turn 2
  const c = await startServer(bin, modelDir, common);
  servers.push(c);
  const r3 = await chat(c, turn2);
  check(r3.json?.usage?.prompt_tokens_details?.cached_tokens === 0, 'no cache: cached_tokens 0', r3.json?.usage);
  check(JSON.stringify(r3.json?.choices?.[0]?.message) === JSON.stringify(r2.json?.choices?.[0]?.message),
        'turn 2 from the disk cache == turn 2 without a cache', { cached: r2.json?.choices?.[0]?.message, fresh: r3.json?.choices?.[0]?.message });
  check(r3.json?.usage?.completion_tokens === r2.json?.usage?.completion_tokens, 'same completion length');
  check(await stopServer(c) === 0, 'reference server: exit 0');
} catch (e) {
  check(false, 'exception', e.stack);
} finally {
  for (const s of servers) if (s.proc.exitCode === null) s.proc.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
}
if (failed()) { console.error(`${failed()} check(s) failed`); process.exit(1); }
console.log('server_prefix_cache_restart_test: all checks passed');
