// Replays the request shapes three kinds of agent CLI send (tests/server/fixtures/, written by
// make_fixtures.py) against `dsv4 serve` on the default-model preset at its default context:
// an Anthropic Messages agent (system-role message, adaptive thinking, 23 tools, max_tokens
// 32000), a Responses-API agent (instructions, replayed reasoning / function_call items,
// function tools), a Chat-Completions agent (~15K-token system prompt, max_tokens 384000).
// Each must get a complete, well-formed streamed answer. `-n 16` caps every answer at 16 tokens
// (the clients' huge max_tokens are clamped to it: finish reason length) so the test is short.
// Usage: node server_agent_fixtures_test.mjs DSV4_BIN MODEL_DIR
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const require = createRequire(new URL('../oracle/package.json', import.meta.url));
const OpenAI = require('openai').default ?? require('openai');
const Anthropic = require('@anthropic-ai/sdk').default ?? require('@anthropic-ai/sdk');
import { startServer, stopServer, check, failed } from './server_harness.mjs';

const [bin, modelDir] = process.argv.slice(2);
const fixture = (name) => JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8'));
const srv = await startServer(bin, modelDir, ['--parallel', '3', '-n', '16', '--numerics', 'precise', '--prefill-chunk', '2048']);

// Raw SSE reader (what agents written in other languages do): [{event, data}].
async function sse(path, body, headers = {}) {
  const r = await fetch(srv.base + path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
  const text = await r.text();
  const events = [];
  for (const block of text.split('\n\n')) {
    let event = null, data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data += line.slice(6);
    }
    if (data) events.push({ event, data: data === '[DONE]' ? '[DONE]' : JSON.parse(data) });
  }
  return { status: r.status, type: r.headers.get('content-type'), events, text };
}

async function anthropicAgent() {
  const body = fixture('anthropic_agent_cli.json');
  check(body.tools.length >= 20 && body.messages.some((m) => m.role === 'system') && body.max_tokens === 32000, 'anthropic fixture shape');
  // The SDK's streaming helper, as the agent uses it (beta headers and all).
  const client = new Anthropic({ apiKey: 'none', baseURL: srv.base, maxRetries: 0, defaultHeaders: { 'anthropic-beta': 'interleaved-thinking-2025-05-14,context-management-2025-06-27' } });
  const stream = client.messages.stream(body);
  const names = [];
  stream.on('streamEvent', (e) => names.push(e.type));
  const msg = await stream.finalMessage();
  check(names[0] === 'message_start' && names[names.length - 1] === 'message_stop' && names.includes('message_delta'), 'anthropic agent: event sequence', names);
  check(msg.content[0]?.type === 'thinking' && msg.stop_reason === 'max_tokens' && msg.usage.output_tokens === 16, 'anthropic agent: thinking answer clamped to -n', msg);
  check(msg.model === 'deepseek-v4-flash', 'anthropic agent: any model name is served, the served id reported', msg.model);
  const blocks = names.filter((n) => n === 'content_block_start').length;
  check(blocks === msg.content.length && names.filter((n) => n === 'content_block_stop').length === blocks, 'anthropic agent: every block opened and closed', names);
  return msg.usage.input_tokens;
}

async function responsesAgent() {
  const body = fixture('responses_agent_cli.json');
  check(body.input.some((i) => i.type === 'reasoning') && body.input.some((i) => i.type === 'function_call_output') && body.stream, 'responses fixture shape');
  const r = await sse('/v1/responses', body, { authorization: 'Bearer none', 'openai-beta': 'responses=experimental' });
  check(r.status === 200 && r.type?.startsWith('text/event-stream'), 'responses agent: SSE', `${r.status} ${r.text.slice(0, 300)}`);
  const ev = r.events.map((e) => e.data);
  check(r.events.every((e) => e.event === e.data.type), 'responses agent: event: lines name the type');
  check(ev.every((e, i) => e.sequence_number === i), 'responses agent: sequence_number', ev.map((e) => e.sequence_number));
  check(ev[0]?.type === 'response.created' && ev[1]?.type === 'response.in_progress', 'responses agent: created, in_progress', ev.slice(0, 2));
  const last = ev[ev.length - 1];
  check(last?.type === 'response.incomplete' && last.response.incomplete_details?.reason === 'max_output_tokens' && last.response.usage.output_tokens === 16,
        'responses agent: incomplete at the -n cap', last);
  const added = ev.filter((e) => e.type === 'response.output_item.added').length;
  check(added > 0 && added === ev.filter((e) => e.type === 'response.output_item.done').length && added === last?.response.output.length, 'responses agent: items added / done');
  const rs = last?.response.output.find((o) => o.type === 'reasoning');
  check(rs && typeof rs.encrypted_content === 'string', 'responses agent: reasoning with encrypted_content (include)', last?.response.output);
  return last?.response.usage.input_tokens;
}

async function chatAgent() {
  const body = fixture('chat_agent_cli.json');
  check(body.max_tokens === 384000 && body.messages[0].content.length > 50000, 'chat fixture shape');
  const client = new OpenAI({ apiKey: 'none', baseURL: srv.base + '/v1', maxRetries: 0 });
  const stream = await client.chat.completions.create(body);
  let chunks = 0, finish = null, usage = null, reasoning = '';
  for await (const c of stream) {
    chunks++;
    if (c.usage) usage = c.usage;
    if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
    reasoning += c.choices[0]?.delta?.reasoning_content ?? '';
  }
  check(finish === 'length' && usage?.completion_tokens === 16 && reasoning.length > 0, 'chat agent: streamed reasoning, clamped to -n, finish length', [finish, usage]);
  check(usage?.prompt_tokens > 15000, 'chat agent: the long system prompt fits the default context', usage);
  return usage?.prompt_tokens;
}

try {
  const n = await Promise.all([anthropicAgent(), responsesAgent(), chatAgent()]);
  console.log(`prompt tokens: anthropic ${n[0]}, responses ${n[1]}, chat ${n[2]}`);
} catch (e) {
  check(false, 'unexpected exception', String(e?.stack ?? e));
}
const code = await stopServer(srv);
check(code === 0, 'SIGTERM: clean exit', `${code}\n${srv.log().slice(-2000)}`);
if (failed()) { console.error(`${failed()} check(s) failed`); process.exit(1); }
console.log('server_agent_fixtures_test: all checks passed');
