// scripts/eval-tools-openai.mjs end to end. (1) Against a scripted mock of
// /v1/chat/completions: the tool loop runs the task's tools through `dsv4 tasks tool`, sends
// every assistant turn back with its reasoning_content, grades through `dsv4 tasks grade`
// (a right trajectory passes, a wrong one fails), handles hallucinated tools, bad
// arguments, max rounds and HTTP errors, and writes the report. (2) Against `dsv4 serve` on
// the tiny random model: the requests go through in thinking and non-thinking mode, and
// forced tool calls (tool_choice required) reach the tool subcommand.
// Usage: node eval_tools_openai_test.mjs DSV4_BIN MODEL_DIR
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { startServer, stopServer, check, failed } from './server_harness.mjs';

const [bin, modelDir] = process.argv.slice(2);
const SCRIPT = new URL('../../scripts/eval-tools-openai.mjs', import.meta.url).pathname;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dsv4-eval-tools-'));
const tasksFile = path.join(dir, 'tasks.jsonl');

// A math task first (no tools: skipped), then five tool tasks.
execFileSync(bin, ['tasks', 'write', '--suite', 'math.arith', '--split', 'heldout', '--n', '1', '--out', path.join(dir, 'm.jsonl')]);
execFileSync(bin, ['tasks', 'write', '--suite', 'tools.multi', '--split', 'heldout', '--n', '5', '--seed', '11', '--out', path.join(dir, 't.jsonl')]);
fs.writeFileSync(tasksFile, fs.readFileSync(path.join(dir, 'm.jsonl'), 'utf8') + fs.readFileSync(path.join(dir, 't.jsonl'), 'utf8'));
const tasks = fs.readFileSync(path.join(dir, 't.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

function runScript(args) {
  const r = spawnSync(process.execPath, [SCRIPT, '--dsv4', bin, '--tasks', tasksFile, ...args], { encoding: 'utf8', timeout: 120000 });
  return { code: r.status, out: r.stdout + r.stderr };
}

// What a task's tool answers, worked out here from the task's tool_env (not by the library).
function expectedResult(task, name, args) {
  const env = task.tool_env;
  if (name === 'list_files') return Object.keys(env.files).sort().join('\n');
  if (name === 'read_file') return env.files[args.path];
  if (name === 'lookup') return String(env.lookup[args.key]);
  if (name === 'calculator') {
    if (!/^[\d\s+\-*/().]+$/.test(args.expression)) throw new Error('unexpected expression ' + args.expression);
    return String(Function(`return (${args.expression});`)());
  }
  throw new Error('unexpected tool ' + name);
}

// ---- (1) the scripted mock
const requests = [];
const reasoningOf = (t, round) => `thinking about task ${t} in round ${round}`;
const callId = (t, round, k) => `call_${t}_${round}_${k}`;
function reply(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
function message(msg, finish) {
  return { id: 'x', object: 'chat.completion', created: 0, model: 'dsv4',
           choices: [{ index: 0, message: { role: 'assistant', ...msg }, finish_reason: finish }] };
}
function toolCall(t, round, k, name, args) {
  return { id: callId(t, round, k), type: 'function', function: { name, arguments: args } };
}
// Task 0: the expected trajectory with reasoning in every turn (passes). Task 1: a tool the
// task does not offer, then arguments that are not JSON and no reasoning, then a wrong
// answer (fails, reasoning not carried). Task 2: calls list_files forever (max rounds).
// Task 3: HTTP 500. Task 4: not asked for (--n 4).
function scripted(t, round, body) {
  const task = tasks[t];
  const calls = task.grader.calls;
  if (t === 0) {
    if (round <= calls.length)
      return message({ content: '', reasoning_content: reasoningOf(t, round),
                       tool_calls: [toolCall(t, round, 0, calls[round - 1].name, JSON.stringify(calls[round - 1].arguments))] }, 'tool_calls');
    return message({ content: `The answer is ${task.grader.answer}.`, reasoning_content: reasoningOf(t, round) }, 'stop');
  }
  if (t === 1) {
    if (round === 1) return message({ content: '', reasoning_content: reasoningOf(t, round), tool_calls: [toolCall(t, round, 0, 'web_search', '{"q": "box"}')] }, 'tool_calls');
    if (round === 2) return message({ content: 'calling', tool_calls: [toolCall(t, round, 0, calls[0].name, '{bad')] }, 'tool_calls');
    return message({ content: 'The answer is 1.', reasoning_content: reasoningOf(t, round) }, 'stop');
  }
  if (t === 2) return message({ content: '', reasoning_content: reasoningOf(t, round), tool_calls: [toolCall(t, round, 0, 'list_files', '{}')] }, 'tool_calls');
  return null;
}

// Checks one request's conversation: the prompt, then for each earlier round the assistant
// turn as the mock sent it (reasoning_content included) and the tool results.
function checkConversation(t, body) {
  const task = tasks[t];
  const what = `task ${t} request ${body.messages.length}`;
  check(body.model === 'dsv4' && body.reasoning_effort === 'high' && body.temperature === 0 && body.max_tokens === 64,
        `${what}: model / reasoning_effort / temperature / max_tokens`, body);
  check(isDeepStrictEqual(body.tools, task.tools), `${what}: the task's tools`, body.tools);
  check(body.tool_choice === undefined, `${what}: no tool_choice by default`, body.tool_choice);
  check(isDeepStrictEqual(body.messages.slice(0, task.messages.length), task.messages), `${what}: the prompt first`, body.messages);
  let i = task.messages.length, round = 0;
  while (i < body.messages.length) {
    round++;
    const sent = scripted(t, round, body).choices[0].message;
    const a = body.messages[i++];
    check(a.role === 'assistant' && a.content === sent.content, `${what}: assistant turn ${round}`, a);
    // Reasoning is carried back verbatim; a tool-calling turn without it gets "" (thinking mode).
    check(a.reasoning_content === (sent.reasoning_content ?? ''), `${what}: reasoning_content of turn ${round} carried back`, a);
    check(isDeepStrictEqual(a.tool_calls, sent.tool_calls), `${what}: tool_calls of turn ${round}`, a);
    for (const c of sent.tool_calls ?? []) {
      const m = body.messages[i++];
      check(m?.role === 'tool' && m.tool_call_id === c.id, `${what}: a tool message answers ${c.id}`, m);
      let want;
      if (c.function.name === 'web_search') want = (s) => s.startsWith('error: --name') && s.includes("'web_search'");
      else if (c.function.arguments === '{bad') want = (s) => s.startsWith('error: --arguments: not valid JSON');
      else {
        const exp = expectedResult(task, c.function.name, JSON.parse(c.function.arguments));
        want = (s) => s === exp;
      }
      check(typeof m?.content === 'string' && want(m.content), `${what}: the result of ${c.function.name}`, m?.content);
    }
  }
  return round + 1;
}

const mock = http.createServer((req, res) => {
  let data = '';
  req.on('data', (d) => { data += d; });
  req.on('end', () => {
    if (req.method === 'GET' && req.url === '/v1/models') return reply(res, 200, { object: 'list', data: [{ id: 'dsv4', object: 'model' }] });
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') return reply(res, 404, { error: { message: 'not found' } });
    const body = JSON.parse(data);
    const t = tasks.findIndex((x) => x.messages.at(-1).content === body.messages.find((m) => m.role === 'user')?.content);
    requests.push(t);
    if (t < 0 || t === 3) return reply(res, 500, { error: { message: 'scripted failure', type: 'server_error' } });
    const round = checkConversation(t, body);
    reply(res, 200, scripted(t, round, body));
  });
});
await new Promise((r) => mock.listen(0, '127.0.0.1', r));
const mockBase = `http://127.0.0.1:${mock.address().port}`;

let srv;
try {
  const out = path.join(dir, 'mock-report.json');
  // Spawned asynchronously: the mock answers in this process.
  const r = await new Promise((resolve) =>
    execFile(process.execPath, [SCRIPT, '--dsv4', bin, '--tasks', tasksFile, '--base', mockBase, '--n', '4', '--mode', 'think-high',
                                '--max-rounds', '4', '--max-tokens', '64', '--concurrency', '2', '--out', out],
             { timeout: 120000 }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, out: stdout + stderr })));
  check(r.code === 0, 'mock run exits 0', r.out);
  check(/think-high 1\/4 passed = 25\.0% \(Wilson 95% 4\.6-69\.9%\)/.test(r.out), 'summary line', r.out);
  const rep = JSON.parse(fs.readFileSync(out, 'utf8'));
  check(fs.readdirSync(dir).filter((f) => f.includes('.tmp.')).length === 0, 'no temp file left');
  check(rep.n === 4 && rep.passed === 1 && rep.failed === 3 && rep.errors === 1 && rep.accuracy === 0.25, 'report counts', rep);
  // Wilson score interval for 1 of 4 at z = 1.96: (0.045587, 0.699358), worked out by hand.
  check(Math.abs(rep.wilson95[0] - 0.0455873) < 1e-6 && Math.abs(rep.wilson95[1] - 0.6993582) < 1e-6, 'Wilson interval', rep.wilson95);
  check(rep.mode === 'think-high' && rep.reasoning_effort === 'high' && rep.max_rounds === 4 && rep.tasks_file === tasksFile, 'report options', rep);
  check(isDeepStrictEqual(rep.tasks.map((x) => x.id), tasks.slice(0, 4).map((x) => x.id)), 'the first 4 tool tasks, in order (the math task skipped)', rep.tasks.map((x) => x.id));
  const [t0, t1, t2, t3] = rep.tasks;
  const k = tasks[0].grader.calls.length;
  check(k >= 2 && k <= 3, 'task 0 needs 2-3 calls (fits --max-rounds 4)', k);
  check(t0.passed === true && t0.error === null && t0.rounds === k + 1 && t0.tool_calls === k && t0.reasoning_carried === true,
        'task 0: the right trajectory passes, reasoning carried', t0);
  check(t0.calls.every((c, i) => c.name === tasks[0].grader.calls[i].name && c.error === false &&
                                 c.result === expectedResult(tasks[0], c.name, tasks[0].grader.calls[i].arguments)), 'task 0: the tool results', t0.calls);
  check(t0.answer === `The answer is ${tasks[0].grader.answer}.` && t0.finish_reasons.at(-1) === 'stop', 'task 0: answer, finish', t0);
  check(t1.passed === false && t1.error === null && t1.rounds === 3 && t1.tool_calls === 2 && t1.reasoning_carried === false,
        'task 1: fails, reasoning not carried', t1);
  check(t1.calls[0]?.error === true && t1.calls[1]?.error === true, 'task 1: both calls answered with errors', t1.calls);
  check(t2.passed === false && t2.rounds === 4 && t2.tool_calls === 3 && /after 4 rounds/.test(t2.detail), 'task 2: max rounds', t2);
  check(t3.passed === false && typeof t3.error === 'string' && /500/.test(t3.error) && t3.rounds === 1, 'task 3: HTTP error recorded', t3);
  check(isDeepStrictEqual(rep.reasoning_carried, { tasks: 3, carried: 2 }) && rep.tool_calls === k + 5, 'report totals', rep);
  check(requests.filter((x) => x === 0).length === k + 1 && requests.filter((x) => x === 2).length === 4 &&
        !requests.includes(4) && !requests.includes(-1), 'requests per task', requests);

  // Bad options: exit 2, naming the option.
  let b = runScript(['--base', mockBase, '--out', out, '--mode', 'fast']);
  check(b.code === 2 && b.out.includes("--mode 'fast'"), 'bad --mode', b.out);
  b = runScript(['--base', 'http://127.0.0.1:1', '--out', out]);
  check(b.code === 2 && b.out.includes('cannot reach the server'), 'unreachable --base', b.out);
  b = spawnSync(process.execPath, [SCRIPT, '--dsv4', bin, '--tasks', path.join(dir, 'm.jsonl'), '--base', mockBase, '--out', out], { encoding: 'utf8' });
  check(b.status === 2 && b.stderr.includes('no tool tasks'), 'a file without tool tasks', b.stderr);

  // ---- (2) the real server on the tiny random model
  srv = await startServer(bin, modelDir, ['--parallel', '2', '-c', '2048']);
  const outThink = path.join(dir, 'think.json');
  let s = runScript(['--base', srv.base, '--n', '2', '--mode', 'think-high', '--max-tokens', '24', '--max-rounds', '2', '--out', outThink]);
  check(s.code === 0, 'dsv4 serve, think-high: exits 0', s.out);
  const rt = JSON.parse(fs.readFileSync(outThink, 'utf8'));
  check(rt.n === 2 && rt.errors === 0 && rt.tasks.every((x) => x.rounds >= 1 && typeof x.passed === 'boolean'), 'dsv4 serve, think-high: 2 tasks, no errors', rt);
  check(rt.tasks.every((x) => x.messages.filter((m) => m.role === 'assistant').every((m) => typeof m.reasoning_content === 'string')),
        'dsv4 serve, think-high: every assistant turn has reasoning_content', rt.tasks.map((x) => x.messages.at(-1)));
  const outForced = path.join(dir, 'forced.json');
  s = runScript(['--base', srv.base, '--n', '2', '--mode', 'non-think', '--max-tokens', '48', '--max-rounds', '2',
                 '--tool-choice', 'required', '--out', outForced]);
  check(s.code === 0, 'dsv4 serve, forced tool calls: exits 0', s.out);
  const rf = JSON.parse(fs.readFileSync(outForced, 'utf8'));
  check(rf.errors === 0 && rf.tool_calls >= 2 && rf.tasks.every((x) => x.rounds === 2 && x.passed === false), 'dsv4 serve, forced: calls made, then max rounds', rf);
  check(rf.reasoning_effort === 'none' && rf.tool_choice === 'required' && rf.tasks.every((x) => x.reasoning_carried === null &&
        x.messages.every((m) => m.reasoning_content === undefined)), 'dsv4 serve, non-think: no reasoning sent or carried', rf);
  for (const x of rf.tasks) {
    const toolMsgs = x.messages.filter((m) => m.role === 'tool');
    check(toolMsgs.length === x.tool_calls && x.calls.every((c, i) => typeof c.result === 'string' && c.result.length > 0 && toolMsgs[i].content === c.result),
          `dsv4 serve, forced: ${x.id}: every call answered through dsv4 tasks tool`, x);
    for (const c of x.calls)
      if (c.name === 'list_files') check(c.result === expectedResult(tasks.find((t) => t.id === x.id), 'list_files', {}), 'list_files result', c);
  }
} finally {
  mock.close();
  if (srv) await stopServer(srv);
  fs.rmSync(dir, { recursive: true, force: true });
}
if (failed()) { console.error(`${failed()} check(s) failed`); process.exit(1); }
console.log('eval_tools_openai_test: ok');
