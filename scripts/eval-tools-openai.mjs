#!/usr/bin/env node
// Tool use end to end (issue 12): the official `openai` npm client runs the tool loop against
// an OpenAI-compatible server (`dsv4 serve`) on held-out tool tasks. The simulated tools and
// the graders are the task library's, reached through `dsv4 tasks tool` / `dsv4 tasks grade`.
// Reasoning is carried across tool calls: every assistant turn goes back to the server with
// its `reasoning_content` (docs/tasks-format.md, /v1/chat/completions in the README).
//
//   dsv4 tasks write --suite tools.multi --split heldout --n 100 --out heldout-tools.jsonl
//   node scripts/eval-tools-openai.mjs --base http://127.0.0.1:8080 --tasks heldout-tools.jsonl \
//       --n 100 --mode think-high --dsv4 build/dsv4 --out tools-report.json
//
// Prints one summary line; the report (JSON, written atomically) has the accuracy, its Wilson
// 95% interval and one record per task. Exit status: 0 when the run completed (whatever the
// accuracy; --min-accuracy makes a lower one exit 1), 2 on bad options or an unusable setup.
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const USAGE = `usage: node scripts/eval-tools-openai.mjs --base URL --tasks FILE.jsonl --out REPORT.json
  [--n N] [--mode non-think|think-high|think-max] [--max-rounds 8] [--max-tokens 4096]
  [--dsv4 PATH] [--model dsv4] [--api-key KEY] [--concurrency 1] [--timeout-s 600]
  [--min-accuracy F] [--tool-choice auto|required]`;

// reasoning_effort per mode, as src/train/eval/modes.cc sends it.
const EFFORT = { 'non-think': 'none', 'think-high': 'high', 'think-max': 'max' };
const MODE_ALIASES = { chat: 'non-think', none: 'non-think', high: 'think-high', max: 'think-max' };

class UsageError extends Error {}

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      base: { type: 'string' }, tasks: { type: 'string' }, out: { type: 'string' },
      n: { type: 'string' }, mode: { type: 'string', default: 'think-high' },
      'max-rounds': { type: 'string', default: '8' }, 'max-tokens': { type: 'string', default: '4096' },
      dsv4: { type: 'string' }, model: { type: 'string', default: 'dsv4' },
      'api-key': { type: 'string' }, concurrency: { type: 'string', default: '1' },
      'timeout-s': { type: 'string', default: '600' }, 'min-accuracy': { type: 'string' },
      'tool-choice': { type: 'string', default: 'auto' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) { console.log(USAGE); process.exit(0); }
  for (const k of ['base', 'tasks', 'out'])
    if (!values[k]) throw new UsageError(`--${k} is required`);
  const int = (k, min) => {
    const v = values[k];
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v) || Number(v) < min) throw new UsageError(`--${k} '${v}': expected an integer >= ${min}`);
    return Number(v);
  };
  const mode = MODE_ALIASES[values.mode] ?? values.mode;
  if (!(mode in EFFORT)) throw new UsageError(`--mode '${values.mode}': expected non-think, think-high or think-max`);
  let minAccuracy;
  if (values['min-accuracy'] !== undefined) {
    minAccuracy = Number(values['min-accuracy']);
    if (!(minAccuracy >= 0 && minAccuracy <= 1)) throw new UsageError(`--min-accuracy '${values['min-accuracy']}': expected a number in [0, 1]`);
  }
  const toolChoice = values['tool-choice'];
  if (toolChoice !== 'auto' && toolChoice !== 'required') throw new UsageError(`--tool-choice '${toolChoice}': expected auto or required`);
  const timeoutS = Number(values['timeout-s']);
  if (!(timeoutS > 0)) throw new UsageError(`--timeout-s '${values['timeout-s']}': expected a positive number`);
  let base = values.base.replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(base)) throw new UsageError(`--base '${values.base}': expected http://host:port[/v1]`);
  if (!base.endsWith('/v1')) base += '/v1';
  const dsv4 = values.dsv4 ?? path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'build', 'dsv4');
  if (!fs.existsSync(dsv4)) throw new UsageError(`--dsv4 '${dsv4}': no such file (the dsv4 binary for the tool / grade subcommands)`);
  return {
    base, tasksFile: values.tasks, out: values.out, n: int('n', 1), mode, effort: EFFORT[mode],
    maxRounds: int('max-rounds', 1), maxTokens: int('max-tokens', 1), dsv4, model: values.model,
    apiKey: values['api-key'] ?? process.env.OPENAI_API_KEY ?? 'none', concurrency: int('concurrency', 1),
    timeoutS, minAccuracy, toolChoice,
  };
}

// The official client: the repository's pinned copy (tests/oracle, scripts/setup.sh
// --with-test-oracles), else one the user installed where Node finds it.
async function loadOpenAI() {
  try {
    const require = createRequire(new URL('../tests/oracle/package.json', import.meta.url));
    const m = require('openai');
    return m.default ?? m;
  } catch {}
  try {
    const m = await import('openai');
    return m.default ?? m.OpenAI;
  } catch {
    throw new UsageError("the 'openai' npm package is not installed: run `bash scripts/setup.sh --with-test-oracles` (or npm install openai)");
  }
}

// The tool tasks of a JSONL task file (tasks with a non-empty `tools`), in file order.
function readToolTasks(file) {
  let text;
  try { text = fs.readFileSync(file, 'utf8'); } catch (e) { throw new UsageError(`--tasks ${file}: ${e.message}`); }
  const out = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let t;
    try { t = JSON.parse(line); } catch (e) { throw new UsageError(`${file}:${i + 1}: not valid JSON (${e.message})`); }
    if (typeof t?.id !== 'string') throw new UsageError(`${file}:${i + 1}: 'id' must be a string`);
    if (!Array.isArray(t.messages) || !t.messages.length) throw new UsageError(`${file}:${i + 1}: 'messages' must be a non-empty array`);
    if (t.tools !== undefined && !Array.isArray(t.tools)) throw new UsageError(`${file}:${i + 1}: 'tools' must be an array`);
    if (Array.isArray(t.tools) && t.tools.length) out.push(t);
  });
  return out;
}

// Wilson score interval of k successes in n trials at 95% (z = 1.959964).
function wilson95(k, n) {
  if (n === 0) return [0, 1];
  const z = 1.959963984540054, p = k / n, z2n = (z * z) / n;
  const mid = (p + z2n / 2) / (1 + z2n);
  const half = (z / (1 + z2n)) * Math.sqrt((p * (1 - p)) / n + z2n / (4 * n));
  return [Math.max(0, mid - half), Math.min(1, mid + half)];
}

function run(bin, args, input) {
  return new Promise((resolve) => {
    const child = execFile(bin, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }));
    if (input !== undefined) child.stdin.end(input);
  });
}

// One tool call through `dsv4 tasks tool`. A call the task cannot take (a tool it does not
// offer, arguments that are not JSON) is answered with the error text, as a real tool would;
// any other failure (file, id) is the harness's and aborts the task.
async function callTool(opts, task, name, args) {
  const r = await run(opts.dsv4, ['tasks', 'tool', '--tasks', opts.tasksFile, '--id', task.id, '--name', name,
                                  '--arguments', args === undefined || args === '' ? '{}' : args]);
  if (r.code === 0) return { result: r.stdout, error: false };
  const msg = r.stderr.trim().replace(/^dsv4 tasks: error: /, '');
  if (/^--(name|arguments): /.test(msg)) return { result: 'error: ' + msg, error: true };
  throw new Error(`dsv4 tasks tool failed (exit ${r.code}): ${r.stderr.trim()}`);
}

async function grade(opts, task, messages) {
  const r = await run(opts.dsv4, ['tasks', 'grade', '--tasks', opts.tasksFile, '--id', task.id], JSON.stringify(messages));
  if (r.code !== 0) throw new Error(`dsv4 tasks grade failed (exit ${r.code}): ${r.stderr.trim()}`);
  return JSON.parse(r.stdout);
}

// The tool loop of one task: request, append the assistant turn (with reasoning_content),
// run its tool calls, append the results, until a reply without tool calls or max rounds.
async function runTask(client, opts, task) {
  const thinks = opts.mode !== 'non-think';
  const messages = task.messages.map((m) => ({ ...m }));
  const rec = { id: task.id, passed: false, detail: '', error: null, rounds: 0, tool_calls: 0, calls: [],
                reasoning_carried: null, finish_reasons: [], answer: '' };
  let afterTool = 0, afterToolWithReasoning = 0, sawToolResult = false, finished = false;
  try {
    while (rec.rounds < opts.maxRounds) {
      rec.rounds++;
      const resp = await client.chat.completions.create({
        model: opts.model, messages, tools: task.tools, reasoning_effort: opts.effort,
        max_tokens: opts.maxTokens, temperature: 0,
        // 'required' (a harness check on an untrained model) makes every turn call a tool.
        ...(opts.toolChoice === 'required' ? { tool_choice: 'required' } : {}),
      });
      const msg = resp?.choices?.[0]?.message;
      if (!msg) throw new Error('the reply has no choices[0].message');
      rec.finish_reasons.push(resp.choices[0].finish_reason ?? null);
      const reasoning = typeof msg.reasoning_content === 'string' ? msg.reasoning_content : undefined;
      if (sawToolResult) {
        afterTool++;
        if (reasoning) afterToolWithReasoning++;
      }
      const calls = Array.isArray(msg.tool_calls) ? msg.tool_calls : [];
      const assistant = { role: 'assistant', content: msg.content ?? '' };
      // Carried back verbatim; in thinking mode the server needs the field on a tool-calling turn.
      if (reasoning !== undefined) assistant.reasoning_content = reasoning;
      else if (thinks && calls.length) assistant.reasoning_content = '';
      if (calls.length) assistant.tool_calls = calls;
      messages.push(assistant);
      rec.answer = assistant.content;
      if (!calls.length) { finished = true; break; }
      if (rec.rounds >= opts.maxRounds) break;
      for (const c of calls) {
        const name = c?.function?.name;
        if (typeof name !== 'string') throw new Error('a tool call without function.name: ' + JSON.stringify(c));
        const args = c.function.arguments;
        const { result, error } = await callTool(opts, task, name, typeof args === 'string' ? args : JSON.stringify(args ?? {}));
        rec.calls.push({ name, arguments: args, result, error });
        messages.push({ role: 'tool', tool_call_id: c.id ?? '', content: result });
      }
      rec.tool_calls = rec.calls.length;
      sawToolResult = true;
    }
    const g = await grade(opts, task, messages);
    rec.passed = g.passed === true;
    rec.detail = finished ? g.detail : `no final answer after ${opts.maxRounds} rounds (the model kept calling tools)`;
  } catch (e) {
    rec.error = e.message ?? String(e);
    rec.detail = rec.error;
    rec.passed = false;
  }
  if (thinks && afterTool > 0) rec.reasoning_carried = afterToolWithReasoning === afterTool;
  rec.messages = messages;
  return rec;
}

function writeAtomic(file, text) {
  const tmp = `${file}.tmp.${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

async function main() {
  const opts = parseOptions(process.argv.slice(2));
  const all = readToolTasks(opts.tasksFile);
  if (!all.length) throw new UsageError(`${opts.tasksFile}: no tool tasks (tasks with a non-empty 'tools')`);
  const tasks = opts.n === undefined ? all : all.slice(0, opts.n);
  if (opts.n !== undefined && tasks.length < opts.n)
    console.error(`eval-tools: ${opts.tasksFile} has only ${tasks.length} tool tasks (asked for ${opts.n})`);
  const OpenAI = await loadOpenAI();
  const client = new OpenAI({ apiKey: opts.apiKey, baseURL: opts.base, maxRetries: 0, timeout: opts.timeoutS * 1000 });
  try {
    await client.models.list();
  } catch (e) {
    throw new UsageError(`--base ${opts.base}: cannot reach the server (${e.message})`);
  }
  const t0 = Date.now();
  const records = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      records[i] = await runTask(client, opts, tasks[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, tasks.length) }, worker));
  const passed = records.filter((r) => r.passed).length;
  const carriedApplicable = records.filter((r) => r.reasoning_carried !== null);
  const report = {
    base: opts.base, model: opts.model, mode: opts.mode, reasoning_effort: opts.effort, tool_choice: opts.toolChoice,
    tasks_file: opts.tasksFile, max_rounds: opts.maxRounds, max_tokens: opts.maxTokens,
    n: records.length, passed, failed: records.length - passed,
    errors: records.filter((r) => r.error !== null).length,
    accuracy: records.length ? passed / records.length : 0,
    wilson95: wilson95(passed, records.length),
    tool_calls: records.reduce((s, r) => s + r.tool_calls, 0),
    reasoning_carried: { tasks: carriedApplicable.length, carried: carriedApplicable.filter((r) => r.reasoning_carried).length },
    seconds: (Date.now() - t0) / 1000,
    tasks: records,
  };
  writeAtomic(opts.out, JSON.stringify(report, null, 1) + '\n');
  const pct = (x) => (100 * x).toFixed(1);
  console.log(`eval-tools: ${opts.mode} ${passed}/${records.length} passed = ${pct(report.accuracy)}% ` +
              `(Wilson 95% ${pct(report.wilson95[0])}-${pct(report.wilson95[1])}%), ${report.tool_calls} tool calls, ` +
              `reasoning carried in ${report.reasoning_carried.carried}/${report.reasoning_carried.tasks}, ` +
              `${report.errors} errors -> ${opts.out}`);
  if (opts.minAccuracy !== undefined && report.accuracy < opts.minAccuracy) return 1;
  return 0;
}

main().then((code) => process.exit(code), (e) => {
  console.error(`eval-tools: error: ${e.message}`);
  if (e instanceof UsageError) console.error(USAGE);
  else console.error(e.stack);
  process.exit(2);
});
