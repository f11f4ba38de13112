#!/usr/bin/env node
// Markdown tables for the default model's card from the reports of scripts/train-default.sh:
//   node scripts/default-model/eval-tables.mjs WORK_DIR
// 1. the student per suite and reasoning mode (accuracy, 95% Wilson interval, tokens);
// 2. the stage table in think-high: base -> specialist (SFT) -> RL -> student per domain, and
//    the student's share of its specialist's accuracy;
// 3. the shipped FP8 / FP4 student against its unquantised master weights (F32 GGUF), per suite
//    and mode: what the quantised export loses.
import fs from 'node:fs';
import path from 'node:path';

const work = process.argv[2];
if (!work) { console.error('usage: eval-tables.mjs WORK_DIR'); process.exit(2); }
const read = (name) => {
  const p = path.join(work, 'eval', name + '.json');
  if (!fs.existsSync(p)) return null;
  try { return JSON.parse(fs.readFileSync(p, 'utf8')); } catch (e) { throw new Error(`${p}: ${e.message}`); }
};
const pct = (x) => (100 * x).toFixed(1) + '%';
const find = (rep, suite, mode) => rep?.results.find((r) => r.suite === suite && r.mode === mode);

const student = read('default');
if (!student) { console.error(`${work}/eval/default.json: no report (run scripts/train-default.sh first)`); process.exit(1); }
const suites = [...new Set(student.results.map((r) => r.suite))];
const modes = student.modes;
console.log('| suite | ' + modes.join(' | ') + ' |');
console.log('|---|' + modes.map(() => '---|').join(''));
for (const s of suites) {
  const cells = modes.map((m) => {
    const r = find(student, s, m);
    return r ? `${pct(r.accuracy)} [${pct(r.ci95[0])}, ${pct(r.ci95[1])}] (${r.mean_completion_tokens.toFixed(0)} tok)` : '-';
  });
  console.log(`| ${s} (n=${find(student, s, modes[0])?.n ?? '-'}) | ${cells.join(' | ')} |`);
}

const domains = { math: ['math.arith', 'math.multistep'], code: ['code.trace'], logic: ['logic.order'],
  instruct: ['instruct.format'], tools: ['tools.multi'], chat: ['chat.identity'] };
const base = read('base');
const rl = read('rl-math');
console.log('\n| suite (think-high) | base | SFT specialist | RL (GRPO) | student | student / specialist |');
console.log('|---|---|---|---|---|---|');
for (const [d, ss] of Object.entries(domains)) {
  const sft = read('sft-' + d);
  for (const s of ss) {
    const acc = (rep) => { const r = find(rep, s, 'think-high'); return r ? r.accuracy : null; };
    const b = acc(base), f = acc(sft), g = d === 'math' ? acc(rl) : null, st = acc(student);
    const teacher = g ?? f;
    const share = teacher ? pct(st / teacher) : '-';
    const fmt = (x) => (x === null ? '-' : pct(x));
    console.log(`| ${s} | ${fmt(b)} | ${fmt(f)} | ${fmt(g)} | ${fmt(st)} | ${share} |`);
  }
}

const master = read('default-master');
if (master) {
  console.log('\n| suite | mode | FP8 / FP4 export (shipped) | F32 master weights | export - master |');
  console.log('|---|---|---|---|---|');
  for (const s of suites) {
    for (const m of modes) {
      const q = find(student, s, m), f = find(master, s, m);
      if (!q || !f) continue;
      const d = 100 * (q.accuracy - f.accuracy);
      console.log(`| ${s} | ${m} | ${pct(q.accuracy)} | ${pct(f.accuracy)} | ${d >= 0 ? '+' : ''}${d.toFixed(1)} points |`);
    }
  }
}
