// OpenAI Responses API of `dsv4 serve` on the tiny random model, driven by the official openai
// client (responses.create / responses.stream / retrieve / delete) and raw HTTP. Weights are
// random: checks are about shapes, the event order, state (previous_response_id, reasoning
// round trips) and errors; tool calls / JSON come from constrained decoding.
// Usage: node server_responses_test.mjs DSV4_BIN MODEL_DIR
import { createRequire } from 'node:module';
const require = createRequire(new URL('../oracle/package.json', import.meta.url));
const OpenAI = require('openai').default ?? require('openai');
import { startServer, stopServer, check, failed } from './server_harness.mjs';

const [bin, modelDir] = process.argv.slice(2);
const srv = await startServer(bin, modelDir, ['--parallel', '2', '-c', '4096', '--strict-model']);
const openai = new OpenAI({ apiKey: 'none', baseURL: srv.base + '/v1', maxRetries: 0 });

async function raw(path, { method = 'POST', body } = {}) {
  const r = await fetch(srv.base + path, { method, body, headers: body ? { 'content-type': 'application/json' } : {} });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch {}
  return { status: r.status, text, json };
}

const weather = { type: 'function', name: 'get_weather', description: 'Weather of a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };
const clock = { type: 'function', name: 'get_time', description: 'Time now', parameters: { type: 'object', properties: {} } };

function checkUsage(u, what) {
  check(u && Number.isInteger(u.input_tokens) && u.input_tokens > 0 && Number.isInteger(u.output_tokens), `${what}: usage tokens`, u);
  check(u.total_tokens === u.input_tokens + u.output_tokens, `${what}: total_tokens`, u);
  check(Number.isInteger(u.input_tokens_details?.cached_tokens) && Number.isInteger(u.output_tokens_details?.reasoning_tokens), `${what}: usage details`, u);
}

// The documented event grammar: created, in_progress, items (added, parts, deltas, done), end.
function checkEventOrder(events, what) {
  const types = events.map((e) => e.type);
  check(events.every((e, i) => e.sequence_number === i), `${what}: sequence_number counts from 0`, events.map((e) => e.sequence_number));
  check(types[0] === 'response.created' && types[1] === 'response.in_progress', `${what}: created, in_progress first`, types.slice(0, 3));
  const last = types[types.length - 1];
  check(['response.completed', 'response.incomplete'].includes(last), `${what}: ends with completed / incomplete`, last);
  let open = null;
  let index = 0;
  for (const e of events.slice(2, -1)) {
    if (e.type === 'response.output_item.added') {
      check(open === null && e.output_index === index, `${what}: item ${index} added after the previous one is done`, e);
      open = { item: e.item, phase: 'added', text: '' };
      continue;
    }
    check(open !== null, `${what}: ${e.type} inside an item`, e);
    if (!open) continue;
    check(e.output_index === index, `${what}: ${e.type} output_index`, e);
    const t = open.item.type;
    if (e.type === 'response.content_part.added') check(t !== 'function_call' && open.phase === 'added', `${what}: part added first`, e), open.phase = 'part';
    else if (e.type === 'response.output_text.delta') check(t === 'message' && open.phase === 'part', `${what}: text delta in a message part`, e), open.text += e.delta;
    else if (e.type === 'response.reasoning_text.delta') check(t === 'reasoning' && open.phase === 'part', `${what}: reasoning delta in a reasoning part`, e), open.text += e.delta;
    else if (e.type === 'response.function_call_arguments.delta') check(t === 'function_call', `${what}: arguments delta in a call`, e), open.text += e.delta;
    else if (e.type === 'response.output_text.done' || e.type === 'response.reasoning_text.done') check(e.text === open.text, `${what}: ${e.type} text = deltas`, e), open.phase = 'textdone';
    else if (e.type === 'response.function_call_arguments.done') check(e.arguments === open.text && t === 'function_call', `${what}: arguments done = deltas`, e), open.phase = 'partdone';
    else if (e.type === 'response.content_part.done') check(open.phase === 'textdone', `${what}: part done after text done`, e), open.phase = 'partdone';
    else if (e.type === 'response.output_item.done') {
      check(open.phase === 'partdone' && e.item.id === open.item.id && e.item.type === t, `${what}: item done closes the item`, e);
      open = null;
      index++;
    } else check(false, `${what}: unexpected event ${e.type}`, e);
  }
  check(open === null, `${what}: every item done`);
  const fin = events[events.length - 1].response;
  check(fin?.output?.length === index, `${what}: final response holds every item`, fin?.output);
  return fin;
}

try {
  // ---- plain create (string input), default thinking: reasoning item + message
  const r1 = await openai.responses.create({ model: 'deepseek-v4-flash', input: 'Hello, who are you?', max_output_tokens: 12, seed: 7 });
  check(r1.object === 'response' && r1.id.startsWith('resp_') && ['completed', 'incomplete'].includes(r1.status), 'create: response shape', r1);
  check(r1.output[0]?.type === 'reasoning' && r1.output[0].content?.[0]?.type === 'reasoning_text', 'create (thinking): reasoning item first', r1.output);
  check(r1.output.some((o) => o.type === 'message' && o.role === 'assistant' && o.content[0]?.type === 'output_text'), 'create: message item', r1.output);
  check(typeof r1.output_text === 'string', 'create: SDK output_text', r1);
  check(r1.status !== 'incomplete' || r1.incomplete_details?.reason === 'max_output_tokens', 'incomplete -> reason max_output_tokens', r1);
  check(r1.max_output_tokens === 12 && r1.store === true, 'create: request fields echoed', r1);
  checkUsage(r1.usage, 'create');
  check(r1.usage.output_tokens_details.reasoning_tokens > 0, 'create: reasoning tokens counted', r1.usage);

  // ---- reasoning.effort mapping: none / minimal / low / medium -> no reasoning, xhigh / max -> effort prefix
  const eff = {};
  for (const e of ['none', 'low', 'medium', 'high', 'max', 'xhigh']) {
    eff[e] = await openai.responses.create({ input: 'Hi', reasoning: { effort: e }, max_output_tokens: 4, seed: 1 });
  }
  for (const e of ['none', 'low', 'medium']) check(!eff[e].output.some((o) => o.type === 'reasoning') && eff[e].usage.output_tokens_details.reasoning_tokens === 0, `effort ${e}: no reasoning`, eff[e].output);
  check(eff.high.output[0]?.type === 'reasoning', 'effort high: reasoning', eff.high.output);
  check(eff.max.usage.input_tokens > eff.high.usage.input_tokens && eff.xhigh.usage.input_tokens === eff.max.usage.input_tokens, 'effort max / xhigh: the max prefix', [eff.max.usage, eff.high.usage]);
  check(eff.none.usage.input_tokens === eff.low.usage.input_tokens && eff.none.reasoning.effort === 'none', 'effort none == low prompt, echoed', eff.none.reasoning);

  // ---- retrieve / delete
  const got = await openai.responses.retrieve(r1.id);
  check(got.id === r1.id && JSON.stringify(got.output) === JSON.stringify(r1.output), 'retrieve returns the stored response', got);
  const del = await raw(`/v1/responses/${r1.id}`, { method: 'DELETE' });
  check(del.status === 200 && del.json?.deleted === true, 'delete', del.text);
  const gone = await raw(`/v1/responses/${r1.id}`, { method: 'GET' });
  check(gone.status === 404 && gone.json?.error?.message.includes(r1.id), 'deleted response -> 404', gone.text);
  const noStore = await openai.responses.create({ input: 'Hi', store: false, max_output_tokens: 2, reasoning: { effort: 'none' } });
  check((await raw(`/v1/responses/${noStore.id}`, { method: 'GET' })).status === 404, 'store: false is not stored');

  // ---- tools: forced function call, then function_call_output round trips (chat mode: the random
  // model never closes its reasoning, so forced calls are made without it)
  // (a) stateless: the client sends the function_call item back
  const input0 = [{ role: 'user', content: 'What is the weather in Paris?' }];
  const tools = [weather, clock];
  const t1 = await openai.responses.create({ input: input0, tools, tool_choice: 'required', reasoning: { effort: 'none' },
    store: false, max_output_tokens: 60, seed: 3 });
  const call = t1.output.find((o) => o.type === 'function_call');
  check(call && ['get_weather', 'get_time'].includes(call.name) && call.call_id.startsWith('call_') && call.id.startsWith('fc_'), 'required: a function_call item', t1.output);
  let argsOk = false;
  try { argsOk = typeof JSON.parse(call?.arguments) === 'object'; } catch {}
  check(argsOk, 'function_call arguments are a JSON object', call);
  const output = { type: 'function_call_output', call_id: call?.call_id, output: '{"temp": 21}' };
  const t2 = await openai.responses.create({ input: [...input0, ...t1.output, output], tools, reasoning: { effort: 'none' }, store: false, max_output_tokens: 6, seed: 4 });
  checkUsage(t2.usage, 'tool round trip');
  check(t2.usage.input_tokens_details.cached_tokens >= t1.usage.input_tokens + t1.usage.output_tokens - 1,
        'stateless round trip: the second request reuses the whole first exchange', [t1.usage, t2.usage]);
  // (b) reasoning items round-trip exactly: a thinking turn's reasoning (include encrypted_content)
  // replayed before the call, as encrypted_content alone or as its reasoning_text content, renders
  // the same prompt, and a longer one than without it (tool-call turns keep their reasoning).
  const th = await openai.responses.create({ input: input0, tools, reasoning: { effort: 'high' }, include: ['reasoning.encrypted_content'],
    store: false, max_output_tokens: 24, seed: 3 });
  const rs = th.output.find((o) => o.type === 'reasoning');
  check(rs && typeof rs.encrypted_content === 'string' && rs.encrypted_content.length > 0 && rs.content[0].text.length > 0, 'include: reasoning.encrypted_content', rs);
  const withR = async (r) => (await openai.responses.create({ input: [...input0, ...(r ? [r] : []), call, output], tools,
    reasoning: { effort: 'high' }, store: false, max_output_tokens: 1 })).usage.input_tokens;
  const nEnc = await withR({ type: 'reasoning', id: rs?.id, summary: [], encrypted_content: rs?.encrypted_content });
  const nText = await withR({ type: 'reasoning', id: rs?.id, summary: [], content: rs?.content });
  const nNone = await withR(null);
  check(nEnc === nText && nEnc > nNone, 'reasoning replayed by encrypted_content == by content, and rendered', [nEnc, nText, nNone]);
  // (c) stateful: previous_response_id carries the call (and would carry reasoning)
  const s1 = await openai.responses.create({ input: input0, tools, tool_choice: 'required', reasoning: { effort: 'none' },
    instructions: 'You are terse.', max_output_tokens: 60, seed: 3 });
  const scall = s1.output.find((o) => o.type === 'function_call');
  const s2 = await openai.responses.create({ previous_response_id: s1.id, instructions: 'You are terse.', tools, reasoning: { effort: 'none' },
    input: [{ type: 'function_call_output', call_id: scall?.call_id, output: '{"temp": 21}' }], max_output_tokens: 6, seed: 4 });
  check(s2.previous_response_id === s1.id, 'previous_response_id echoed', s2);
  check(s2.usage.input_tokens_details.cached_tokens >= s1.usage.input_tokens + s1.usage.output_tokens - 1,
        'previous_response_id: the stored exchange is the prompt prefix', [s1.usage, s2.usage]);
  const missing = await raw('/v1/responses', { body: JSON.stringify({ previous_response_id: 'resp_nope', input: 'x' }) });
  check(missing.status === 404 && missing.json?.error?.message.includes('resp_nope'), 'unknown previous_response_id -> 404', missing.text);

  // ---- text.format json_schema by constrained decoding
  const schema = { type: 'object', properties: { city: { type: 'string', maxLength: 12 }, days: { type: 'integer' } }, required: ['city', 'days'] };
  const js = await openai.responses.create({ input: 'Give JSON', reasoning: { effort: 'none' }, text: { format: { type: 'json_schema', name: 'w', schema } },
    max_output_tokens: 80, seed: 5 });
  let parsed = null;
  try { parsed = JSON.parse(js.output_text); } catch {}
  check(parsed && typeof parsed.city === 'string' && Number.isInteger(parsed.days), 'json_schema output follows the schema', js.output_text);

  // ---- streaming: the documented event order, deltas = final texts, SDK final response
  for (const [label, extra] of [['thinking', { reasoning: { effort: 'high' } }], ['chat', { reasoning: { effort: 'none' } }],
                                ['tool', { tools: [weather], tool_choice: 'required', reasoning: { effort: 'none' } }]]) {
    const st = openai.responses.stream({ input: 'Tell me a story', max_output_tokens: 40, seed: 9, ...extra });
    const events = [];
    for await (const e of st) events.push(e);
    const fin = checkEventOrder(events, `stream ${label}`);
    const sdkFinal = await st.finalResponse();
    check(sdkFinal.id === fin?.id && sdkFinal.output.length === fin.output.length, `stream ${label}: SDK final response`, sdkFinal);
    checkUsage(fin?.usage, `stream ${label}`);
    if (label === 'tool') check(fin?.output.some((o) => o.type === 'function_call'), 'stream tool: a function_call item', fin?.output);
    if (label === 'chat') check(!fin?.output.some((o) => o.type === 'reasoning'), 'stream chat: no reasoning item', fin?.output);
    const stored = await openai.responses.retrieve(fin.id);
    check(JSON.stringify(stored.output) === JSON.stringify(fin.output), `stream ${label}: stored = streamed`, stored.output);
  }

  // ---- bad input: clear 4xx
  const bad = [
    ['no input', {}, 400, 'input'],
    ['input wrong type', { input: 5 }, 400, 'input'],
    ['image part', { input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'http://x/y.png' }] }] }, 400, 'input_image'],
    ['hosted tool', { input: 'x', tools: [{ type: 'web_search' }] }, 400, 'web_search'],
    ['unknown item', { input: [{ type: 'computer_call' }] }, 400, 'computer_call'],
    ['bad effort', { input: 'x', reasoning: { effort: 'huge' } }, 400, 'reasoning.effort'],
    ['foreign encrypted_content', { input: [{ type: 'reasoning', encrypted_content: 'gAAAAB...' }, { role: 'user', content: 'x' }] }, 400, 'encrypted_content'],
    ['bad schema format', { input: 'x', text: { format: { type: 'json_schema', name: 'x' } } }, 400, 'schema'],
    ['unknown model with --strict-model', { input: 'x', model: 'gpt-17' }, 404, 'gpt-17'],
  ];
  for (const [what, body, status, needle] of bad) {
    const r = await raw('/v1/responses', { body: JSON.stringify(body) });
    check(r.status === status && r.json?.error?.message?.includes(needle), `bad input: ${what} -> ${status}`, `${r.status} ${r.text.slice(0, 300)}`);
  }
  check((await raw('/v1/responses/resp_x/cancel', {})).status === 404, 'cancel of an unknown id -> 404');

  // ---- cancel a response in flight, and a client that leaves mid-stream frees its slot
  const metric = async (name) => Number((await raw('/metrics', { method: 'GET' })).text.match(new RegExp(`^${name} (\\d+)`, 'm'))?.[1] ?? -1);
  const c0 = await metric('dsv4_requests_cancelled_total');
  const long = openai.responses.stream({ input: 'Write a long essay', max_output_tokens: 2000, reasoning: { effort: 'none' } });
  let rid = null, n = 0, last = null;
  for await (const e of long) {
    if (e.type === 'response.created') rid = e.response.id;
    if (++n === 4) {
      const c = await raw(`/v1/responses/${rid}/cancel`, {});
      check(c.status === 200 && c.json?.status === 'cancelled' && c.json?.id === rid, 'cancel a response in flight', c.text);
    }
    last = e;
  }
  check(last?.type === 'response.incomplete' && last.response.status === 'cancelled', 'a cancelled stream ends with status cancelled', last);
  const ac = new AbortController();
  const gone2 = await openai.responses.create({ input: 'Write a long essay', max_output_tokens: 2000, stream: true, reasoning: { effort: 'none' } }, { signal: ac.signal });
  let k = 0;
  try { for await (const e of gone2) if (++k >= 5) ac.abort(); } catch {}
  let freed = false;
  for (let i = 0; i < 300 && !freed; i++) {
    const m = (await raw('/metrics', { method: 'GET' })).text;
    freed = /^dsv4_active_slots 0$/m.test(m) && (await metric('dsv4_requests_cancelled_total')) === c0 + 2;
    if (!freed) await new Promise((r) => setTimeout(r, 100));
  }
  check(freed, 'a Responses client that disconnects mid-stream frees its slot');
} catch (e) {
  check(false, 'unexpected exception', String(e?.stack ?? e));
}
const code = await stopServer(srv);
check(code === 0, 'SIGTERM: clean exit', `${code}\n${srv.log().slice(-2000)}`);
if (failed()) { console.error(`${failed()} check(s) failed`); process.exit(1); }
console.log('server_responses_test: all checks passed');
