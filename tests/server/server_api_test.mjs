// Integration test of `dsv4 serve` on the tiny random model: the official openai and
// @anthropic-ai/sdk clients plus raw HTTP. Weights are random, so checks are about shapes,
// semantics and determinism, and tool calls / JSON come from constrained decoding.
// Usage: node server_api_test.mjs DSV4_BIN MODEL_DIR
import { createRequire } from 'node:module';
// The clients are installed in tests/oracle (package.json + lock file, scripts/setup.sh).
const require = createRequire(new URL('../oracle/package.json', import.meta.url));
const OpenAI = require('openai').default ?? require('openai');
const Anthropic = require('@anthropic-ai/sdk').default ?? require('@anthropic-ai/sdk');
import { startServer, stopServer, check, failed, postJson } from './server_harness.mjs';

const [bin, modelDir] = process.argv.slice(2);
const KEY = 'test-key-123';
const srv = await startServer(bin, modelDir, ['--api-key', KEY, '--parallel', '4', '-c', '2048', '--max-body-mb', '1']);
const openai = new OpenAI({ apiKey: KEY, baseURL: srv.base + '/v1', maxRetries: 0 });
const anthropic = new Anthropic({ apiKey: KEY, baseURL: srv.base, maxRetries: 0 });

async function raw(path, { method = 'POST', body, headers = {}, key = KEY } = {}) {
  const h = { ...headers };
  if (key) h.authorization = `Bearer ${key}`;
  if (body !== undefined && !h['content-type']) h['content-type'] = 'application/json';
  const r = await fetch(srv.base + path, { method, body, headers: h });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch {}
  return { status: r.status, text, json };
}

const user = (t) => ({ role: 'user', content: t });
const weatherTool = {
  type: 'function',
  function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
};
const timeTool = { type: 'function', function: { name: 'get_time', description: 'Time now', parameters: { type: 'object', properties: {} } } };

function checkUsage(u, what) {
  check(u && Number.isInteger(u.prompt_tokens) && u.prompt_tokens > 0, `${what}: usage.prompt_tokens`, u);
  check(u.prompt_cache_hit_tokens + u.prompt_cache_miss_tokens === u.prompt_tokens, `${what}: hit + miss = prompt_tokens`, u);
  check(u.prompt_tokens_details?.cached_tokens === u.prompt_cache_hit_tokens, `${what}: cached_tokens = hit`, u);
  check(u.total_tokens === u.prompt_tokens + u.completion_tokens, `${what}: total_tokens`, u);
  check(Number.isInteger(u.completion_tokens_details?.reasoning_tokens) && u.completion_tokens_details.reasoning_tokens <= u.completion_tokens,
        `${what}: reasoning_tokens`, u);
  checkSpec(u, what);
}

// usage.speculative (dsv4 extension, every API): always present; accepted <= drafted.
function checkSpec(u, what) {
  const s = u?.speculative;
  check(s && Number.isInteger(s.drafted_tokens) && Number.isInteger(s.accepted_tokens) &&
        s.drafted_tokens >= s.accepted_tokens && s.accepted_tokens >= 0, `${what}: usage.speculative`, u);
}

try {
  // ---- auth
  check((await raw('/health', { method: 'GET', key: null })).status === 200, '/health needs no key');
  const noKey = await raw('/v1/models', { method: 'GET', key: null });
  check(noKey.status === 401 && noKey.json?.error?.type === 'authentication_error', 'no key -> 401', noKey.text);
  check((await raw('/v1/models', { method: 'GET', key: 'wrong' })).status === 401, 'wrong key -> 401');
  const xkey = await fetch(srv.base + '/v1/models', { headers: { 'x-api-key': KEY } });
  check(xkey.status === 200, 'x-api-key accepted');
  const models = await openai.models.list();
  check(models.data.length === 1 && models.data[0].id === 'deepseek-v4-flash', 'models.list', models.data);

  // ---- non-streaming chat in the three reasoning modes
  const base = { model: 'deepseek-v4-flash', messages: [user('Hello, who are you?')], max_tokens: 8, seed: 7 };
  const think = await openai.chat.completions.create({ ...base });
  const m0 = think.choices[0].message;
  check(typeof m0.reasoning_content === 'string', 'thinking (default): reasoning_content present', m0);
  check(think.usage.completion_tokens_details.reasoning_tokens > 0, 'thinking: reasoning tokens counted', think.usage);
  checkUsage(think.usage, 'thinking');
  check(typeof think.id === 'string' && think.object === 'chat.completion', 'chat.completion shape', think);
  check(['stop', 'length'].includes(think.choices[0].finish_reason), 'finish_reason', think.choices[0].finish_reason);
  const chat = await openai.chat.completions.create({ ...base, thinking: { type: 'disabled' } });
  check(!('reasoning_content' in chat.choices[0].message), 'thinking disabled: no reasoning_content', chat.choices[0].message);
  check(chat.choices[0].message.content.length > 0, 'thinking disabled: content', chat.choices[0].message);
  check(chat.usage.completion_tokens_details.reasoning_tokens === 0, 'chat: no reasoning tokens', chat.usage);
  const kw = await openai.chat.completions.create({ ...base, chat_template_kwargs: { thinking: false } });
  check(kw.choices[0].message.content === chat.choices[0].message.content, 'chat_template_kwargs.thinking=false == thinking disabled (same seed)');
  const none = await openai.chat.completions.create({ ...base, reasoning_effort: 'none' });
  check(none.choices[0].message.content === chat.choices[0].message.content, 'reasoning_effort none == thinking disabled');
  const max = await openai.chat.completions.create({ ...base, reasoning_effort: 'max' });
  check(max.usage.prompt_tokens > think.usage.prompt_tokens, 'reasoning_effort max adds the effort prefix to the prompt', [max.usage, think.usage]);
  check(typeof max.choices[0].message.reasoning_content === 'string', 'max: reasoning_content');
  const xhigh = await openai.chat.completions.create({ ...base, reasoning_effort: 'xhigh' });
  check(xhigh.usage.prompt_tokens === max.usage.prompt_tokens, 'xhigh maps to max');
  const again = await openai.chat.completions.create({ ...base });
  check(again.choices[0].message.reasoning_content === m0.reasoning_content, 'same seed -> same output');
  check(again.usage.prompt_cache_hit_tokens > 0, 'repeated prompt hits the prefix cache', again.usage);

  // ---- streaming, same seed: the deltas add up to the non-streaming answer
  for (const [label, extra, ref] of [['thinking', {}, think], ['chat', { thinking: { type: 'disabled' } }, chat], ['max', { reasoning_effort: 'max' }, max]]) {
    const stream = await openai.chat.completions.create({ ...base, ...extra, stream: true, stream_options: { include_usage: true } });
    let content = '', reasoning = '', usage = null, finish = null, first = true;
    for await (const c of stream) {
      if (c.usage) usage = c.usage;
      const ch = c.choices[0];
      if (!ch) continue;
      if (first) { check(ch.delta.role === 'assistant', `${label} stream: first chunk has the role`, c); first = false; }
      content += ch.delta.content ?? '';
      reasoning += ch.delta.reasoning_content ?? '';
      if (ch.finish_reason) finish = ch.finish_reason;
    }
    check(content === (ref.choices[0].message.content ?? ''), `${label} stream content == non-stream`, [content, ref.choices[0].message.content]);
    check(reasoning === (ref.choices[0].message.reasoning_content ?? ''), `${label} stream reasoning == non-stream`);
    check(finish === ref.choices[0].finish_reason, `${label} stream finish_reason`, finish);
    check(usage && usage.completion_tokens === ref.usage.completion_tokens, `${label} stream include_usage`, usage);
    if (usage) checkUsage(usage, `${label} stream`);
  }

  // ---- tool loop: required -> tool call; tool result -> answer, hitting the cache
  const tmsgs = [user('What is the weather in Paris?')];
  const t1 = await openai.chat.completions.create({ model: 'deepseek-v4-flash', messages: tmsgs, tools: [weatherTool, timeTool],
    tool_choice: "required", thinking: { type: "disabled" }, max_tokens: 40, seed: 3 });
  const tc = t1.choices[0].message.tool_calls;
  check(t1.choices[0].finish_reason === 'tool_calls', 'required: finish_reason tool_calls', t1.choices[0]);
  check(tc?.length >= 1 && ['get_weather', 'get_time'].includes(tc[0].function.name), 'required: a tool call', tc);
  let argsOk = true;
  try { JSON.parse(tc[0].function.arguments); } catch { argsOk = false; }
  check(argsOk && tc[0].id.startsWith('call_'), 'tool call arguments are JSON, id present', tc?.[0]);
  const t2msgs = [...tmsgs, t1.choices[0].message, { role: 'tool', tool_call_id: tc[0].id, content: '{"temp": 21}' }];
  const t2 = await openai.chat.completions.create({ model: 'deepseek-v4-flash', messages: t2msgs, tools: [weatherTool, timeTool],
    thinking: { type: 'disabled' }, max_tokens: 8, seed: 4 });
  check(t2.usage.prompt_cache_hit_tokens >= t1.usage.prompt_tokens + t1.usage.completion_tokens,
        'tool loop: the second request reuses the whole first exchange', [t1.usage, t1.choices[0].message, t2.usage]);
  check(typeof t2.choices[0].message.content === 'string' || t2.choices[0].message.tool_calls, 'tool loop: answer');
  // streamed tool call: id + name first, then argument fragments
  const ts = await openai.chat.completions.create({ model: 'deepseek-v4-flash', messages: tmsgs, tools: [weatherTool, timeTool],
    tool_choice: { type: 'function', function: { name: 'get_time' } }, thinking: { type: "disabled" }, max_tokens: 40, seed: 3, stream: true });
  let sawStart = false, streamFinish = null, args = '';
  for await (const c of ts) {
    const d = c.choices[0]?.delta;
    for (const call of d?.tool_calls ?? []) {
      if (call.id) { sawStart = call.function.name === 'get_time'; }
      args += call.function?.arguments ?? '';
    }
    if (c.choices[0]?.finish_reason) streamFinish = c.choices[0].finish_reason;
  }
  check(sawStart && streamFinish === 'tool_calls', 'named tool_choice, streamed: id + name first, finish tool_calls', [sawStart, streamFinish]);
  try { JSON.parse(args); } catch { check(false, 'streamed tool arguments form JSON', args); }
  // a forced call is complete and follows the tool's schema, even on random weights
  const cityTool = { type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object',
    properties: { city: { type: 'string', maxLength: 8 }, unit: { type: 'string', enum: ['C', 'F'] }, days: { type: 'integer' } }, required: ['city', 'days'] } } };
  for (const seed of [5, 6, 7]) {
    const wc = await openai.chat.completions.create({ model: 'deepseek-v4-flash', messages: tmsgs, tools: [cityTool, timeTool],
      tool_choice: { type: 'function', function: { name: 'get_weather' } }, thinking: { type: 'disabled' }, max_tokens: 100, seed });
    const call = wc.choices[0].message.tool_calls?.[0];
    let a = null;
    try { a = JSON.parse(call.function.arguments); } catch {}
    check(wc.choices[0].finish_reason === 'tool_calls' && wc.usage.completion_tokens < 100 && call?.function?.name === 'get_weather' &&
          typeof a?.city === 'string' && a.city.length <= 8 && Number.isInteger(a?.days) && (a.unit === undefined || ['C', 'F'].includes(a.unit)) &&
          Object.keys(a).every((k) => ['city', 'unit', 'days'].includes(k)),
          `named tool_choice (seed ${seed}): one complete call whose arguments follow the schema`, [wc.usage, wc.choices[0]]);
  }
  // thinking mode: a tool-call turn without reasoning_content is a 400 (as the official API)
  const missing = await raw('/v1/chat/completions', { body: JSON.stringify({ messages: [...tmsgs,
    { role: 'assistant', content: '', tool_calls: [{ id: 'x', type: 'function', function: { name: 'get_time', arguments: '{}' } }] },
    { role: 'tool', tool_call_id: 'x', content: '1' }], tools: [timeTool], max_tokens: 2 }) });
  check(missing.status === 400 && missing.json?.error?.message === 'The reasoning_content in the thinking mode must be passed back to the API.',
        'missing reasoning_content on a tool-call turn -> 400', missing.text);

  // ---- JSON schema by constrained decoding
  const schema = { type: 'object', properties: { city: { type: 'string', maxLength: 12 }, days: { type: 'integer' }, ok: { type: 'boolean' } } };
  const js = await openai.chat.completions.create({ model: 'deepseek-v4-flash', messages: [user('Give JSON')], thinking: { type: 'disabled' },
    response_format: { type: 'json_schema', json_schema: { name: 'w', schema } }, max_tokens: 120, seed: 5 });
  let parsed = null;
  try { parsed = JSON.parse(js.choices[0].message.content); } catch {}
  check(parsed && typeof parsed.city === 'string' && Number.isInteger(parsed.days) && typeof parsed.ok === 'boolean',
        'json_schema response parses and follows the schema', js.choices[0].message.content);

  // ---- logprobs
  const lp = await openai.chat.completions.create({ ...base, thinking: { type: 'disabled' }, logprobs: true, top_logprobs: 3 });
  const lpc = lp.choices[0].logprobs?.content;
  check(lpc?.length === lp.usage.completion_tokens, 'logprobs: one entry per token', lp.choices[0].logprobs);
  check(lpc?.every((e) => e.logprob <= 0 && e.top_logprobs.length === 3 && Array.isArray(e.bytes)), 'logprobs: entries', lpc?.[0]);

  // ---- Anthropic SDK
  // `seed` is not an Anthropic field; the server accepts it (the SDK sends extra fields as given).
  const a1 = await anthropic.messages.create({ model: 'deepseek-v4-flash', max_tokens: 8, messages: [{ role: 'user', content: 'Hi' }],
    thinking: { type: 'disabled' }, seed: 11 });
  check(a1.type === 'message' && a1.content[0]?.type === 'text' && ['end_turn', 'max_tokens'].includes(a1.stop_reason), 'anthropic create', a1);
  check(Number.isInteger(a1.usage.input_tokens) && Number.isInteger(a1.usage.output_tokens), 'anthropic usage', a1.usage);
  checkSpec(a1.usage, 'anthropic');
  const a2 = await anthropic.messages.create({ model: 'deepseek-v4-flash', max_tokens: 8, messages: [{ role: 'user', content: 'Hi' }],
    thinking: { type: 'enabled', budget_tokens: 1024 } });
  check(a2.content[0]?.type === 'thinking', 'anthropic thinking block', a2.content);
  // stop sequences, made deterministic by reusing a seeded output: stopping at a piece of it
  // must cut the same output right before that piece.
  const a1text = a1.content[0]?.text ?? '';
  if ([...a1text].length >= 4) {
    const piece = [...a1text].slice(2, 4).join('');
    const a3 = await anthropic.messages.create({ model: 'deepseek-v4-flash', max_tokens: 8, messages: [{ role: 'user', content: 'Hi' }],
      thinking: { type: 'disabled' }, stop_sequences: [piece], seed: 11 });
    check(a3.stop_reason === 'stop_sequence' && a3.stop_sequence === piece && (a3.content[0]?.text ?? '') === a1text.slice(0, a1text.indexOf(piece)),
          'anthropic stop_sequences', [a1text, piece, a3]);
  }
  const ctext = chat.choices[0].message.content;
  if ([...ctext].length >= 4) {
    const piece = [...ctext].slice(2, 4).join('');
    const st = await openai.chat.completions.create({ ...base, thinking: { type: 'disabled' }, stop: [piece] });
    check(st.choices[0].finish_reason === 'stop' && st.choices[0].message.content === ctext.slice(0, ctext.indexOf(piece)),
          'openai stop strings', [ctext, piece, st.choices[0]]);
  }
  const as = anthropic.messages.stream({ model: 'deepseek-v4-flash', max_tokens: 8, messages: [{ role: 'user', content: 'Hi' }], thinking: { type: 'disabled' } });
  const af = await as.finalMessage();
  check(af.content[0]?.text === a1.content[0].text || af.content.length > 0, 'anthropic stream final message', af);
  // Seeded, so the run is reproducible. The forced call is complete (the city's maxLength bounds
  // what the random model writes), so the next request reuses the whole exchange.
  const toolW = { name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } } } };
  const at = await anthropic.messages.create({ model: 'deepseek-v4-flash', max_tokens: 80, messages: [{ role: "user", content: "Weather?" }],
    thinking: { type: 'disabled' }, tools: [toolW], tool_choice: { type: 'tool', name: 'get_weather' }, seed: 7 });
  const tu = at.content.find((b) => b.type === 'tool_use');
  check(at.stop_reason === 'tool_use' && at.usage.output_tokens < 80 && tu?.name === 'get_weather' && typeof tu.input === 'object',
        'anthropic forced tool_use', at);
  const at2 = await anthropic.messages.create({ model: 'deepseek-v4-flash', max_tokens: 8, thinking: { type: 'disabled' }, tools: [toolW],
    messages: [{ role: 'user', content: 'Weather?' }, { role: 'assistant', content: at.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu?.id ?? 'x', content: 'sunny' }] }], seed: 7 });
  check(at2.usage.cache_read_input_tokens >= at.usage.input_tokens + at.usage.cache_read_input_tokens + at.usage.output_tokens,
        'anthropic tool loop reuses the first exchange', [at.usage, at2.usage]);
  // A well-formed tool exchange replayed with one more turn: the whole first request is reused.
  const hist = [{ role: 'user', content: 'Weather in Oslo?' },
    { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Oslo' } }] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny', is_error: false }] }];
  const ht1 = await anthropic.messages.create({ model: 'deepseek-v4-flash', max_tokens: 4, thinking: { type: 'disabled' }, tools: [toolW], messages: hist, seed: 7 });
  const ht2 = await anthropic.messages.create({ model: 'deepseek-v4-flash', max_tokens: 4, thinking: { type: 'disabled' }, tools: [toolW], seed: 7,
    messages: [...hist, { role: 'assistant', content: 'It is sunny.' }, { role: 'user', content: 'Thanks' }] });
  check(ht2.usage.cache_read_input_tokens >= ht1.usage.input_tokens + ht1.usage.cache_read_input_tokens,
        'anthropic replayed tool exchange is reused whole', [ht1.usage, ht2.usage]);
  // today's Anthropic clients: system-role messages inside `messages` (merged into the system
  // prompt in order), adaptive thinking + output_config.effort, ignored fields, count_tokens
  const count = (b) => anthropic.messages.countTokens({ model: 'deepseek-v4-flash', ...b });
  const sysIn = { system: 'Rule A.', messages: [{ role: 'system', content: 'Rule B.' }, { role: 'user', content: 'Hi' }] };
  const merged = { system: 'Rule A.\n\nRule B.', messages: [{ role: 'user', content: 'Hi' }] };
  const [cIn, cMerged] = [await count(sysIn), await count(merged)];
  check(Number.isInteger(cIn.input_tokens) && cIn.input_tokens === cMerged.input_tokens, 'a system-role message is merged into the system prompt', [cIn, cMerged]);
  const a4 = await anthropic.messages.create({ model: 'deepseek-v4-flash', max_tokens: 6, ...sysIn, thinking: { type: 'adaptive' },
    output_config: { effort: 'high' }, metadata: { user_id: 'u1' }, context_management: { edits: [{ type: 'clear_tool_uses_20250919' }] },
    service_tier: 'auto', seed: 2 });
  check(a4.content[0]?.type === 'thinking' && a4.usage.input_tokens + a4.usage.cache_read_input_tokens === cIn.input_tokens + 0,
        'adaptive + effort high: thinking; count_tokens == input tokens; unknown fields ignored', [a4, cIn]);
  const eff = async (effort) => (await count({ ...sysIn, thinking: { type: 'adaptive' }, output_config: { effort } })).input_tokens;
  const [eLow, eMed, eHigh, eMax] = [await eff('low'), await eff('medium'), await eff('high'), await eff('max')];
  check(eMed === eHigh && eMax > eHigh && eLow === cIn.input_tokens - 0 && eHigh === cIn.input_tokens, 'effort medium == high, max adds the prefix', [eLow, eMed, eHigh, eMax]);
  const aLow = await anthropic.messages.create({ model: 'deepseek-v4-flash', max_tokens: 6, ...sysIn, thinking: { type: 'adaptive' }, output_config: { effort: 'low' } });
  check(aLow.content.every((b) => b.type !== 'thinking') && aLow.content[0]?.type === 'text', 'adaptive + effort low: no thinking', aLow.content);
  // tool_use -> tool_result with is_error and a content array; cache_control marks ignored
  const tools = Array.from({ length: 24 }, (_, i) => ({ name: `tool_${i}`, description: `Tool number ${i}`,
    input_schema: { type: 'object', properties: { arg: { type: 'string' } } }, ...(i === 23 ? { cache_control: { type: 'ephemeral' } } : {}) }));
  const ae1 = await anthropic.messages.create({ model: 'deepseek-v4-flash', max_tokens: 40, thinking: { type: 'disabled' }, tools,
    tool_choice: { type: 'any' }, messages: [{ role: 'user', content: [{ type: 'text', text: 'Run something', cache_control: { type: 'ephemeral' } }] }], seed: 6 });
  const tu2 = ae1.content.find((b) => b.type === 'tool_use');
  check(ae1.stop_reason === 'tool_use' && tu2?.name?.startsWith('tool_'), 'tool_choice any: a tool_use block', ae1.content);
  const ae2 = await anthropic.messages.create({ model: 'deepseek-v4-flash', max_tokens: 6, thinking: { type: 'disabled' }, tools,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Run something', cache_control: { type: 'ephemeral' } }] }, { role: 'assistant', content: ae1.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu2?.id ?? 'x', is_error: true, content: [{ type: 'text', text: 'Error: ' }, { type: 'text', text: 'no such file' }] }] }] });
  check(ae2.type === 'message' && ae2.usage.cache_read_input_tokens >= ae1.usage.input_tokens + ae1.usage.cache_read_input_tokens + ae1.usage.output_tokens,
        'tool_result with is_error and a content array: accepted, the exchange reused', [ae1.usage, ae2.usage]);
  const img = await raw('/v1/messages', { body: JSON.stringify({ max_tokens: 4, messages: [{ role: 'user', content: [{ type: 'text', text: 'a' },
    { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } }] }] }) });
  check(img.status === 400 && img.json?.error?.message.includes("messages[0].content[1]") && img.json.error.message.includes("'image'"), 'an image block -> 400 naming the block', img.text);
  const srvTool = await raw('/v1/messages', { body: JSON.stringify({ max_tokens: 4, tools: [{ type: 'web_search_20250305', name: 'web_search' }], messages: [{ role: 'user', content: 'a' }] }) });
  check(srvTool.status === 400 && srvTool.json?.error?.message.includes('web_search_20250305'), 'a server tool -> 400 naming its type', srvTool.text);
  const aerr = await raw('/v1/messages', { body: JSON.stringify({ max_tokens: 4, messages: 'x' }) });
  check(aerr.status === 400 && aerr.json?.type === 'error' && aerr.json?.error?.type === 'invalid_request_error', 'anthropic error shape', aerr.text);

  // ---- raw completions, tokenize / detokenize
  const comp = await raw('/v1/completions', { body: JSON.stringify({ prompt: 'The capital of France is', max_tokens: 4, seed: 1 }) });
  check(comp.status === 200 && comp.json?.object === 'text_completion' && typeof comp.json.choices[0].text === 'string', '/v1/completions', comp.text);
  const tk = await raw('/tokenize', { body: JSON.stringify({ content: 'Hello world' }) });
  const dt = await raw('/detokenize', { body: JSON.stringify({ tokens: tk.json?.tokens }) });
  check(tk.status === 200 && dt.json?.content === 'Hello world', 'tokenize / detokenize round trip', [tk.text, dt.text]);

  // ---- bad input: OpenAI-shaped errors with the right status
  const chatBody = (o) => JSON.stringify({ messages: [user('hi')], max_tokens: 2, ...o });
  const bad = [
    ['invalid JSON', { body: '{"messages": [' }, 400],
    ['body not an object', { body: '[1,2]' }, 400],
    ['messages wrong type', { body: JSON.stringify({ messages: 'hi' }) }, 400],
    ['empty messages', { body: JSON.stringify({ messages: [] }) }, 400],
    ['unknown role', { body: JSON.stringify({ messages: [{ role: 'wizard', content: 'x' }] }) }, 400],
    ['content wrong type', { body: JSON.stringify({ messages: [{ role: 'user', content: 5 }] }) }, 400],
    ['temperature wrong type', { body: chatBody({ temperature: 'hot' }) }, 400],
    ['temperature out of range', { body: chatBody({ temperature: 3 }) }, 400],
    ['max_tokens 0', { body: chatBody({ max_tokens: 0 }) }, 400],
    ['prompt over the context', { body: JSON.stringify({ messages: [user('word '.repeat(5000))] }) }, 400],
    ['n = 2', { body: chatBody({ n: 2 }) }, 400],
    ['tool_choice names an unknown tool', { body: chatBody({ tools: [timeTool], tool_choice: { type: 'function', function: { name: 'nope' } } }) }, 400],
    ['invalid UTF-8', { body: Buffer.concat([Buffer.from('{"messages":[{"role":"user","content":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}]}')]) }, 400],
    ['body too large', { body: JSON.stringify({ messages: [user('x'.repeat(2 << 20))] }) }, 413],
  ];
  for (const [what, req, status] of bad) {
    const r = await raw('/v1/chat/completions', req);
    check(r.status === status && typeof r.json?.error?.message === 'string' && typeof r.json.error.type === 'string', `bad input: ${what} -> ${status}`, `${r.status} ${r.text.slice(0, 300)}`);
  }
  // ---- context and max_tokens: a prompt over the context is a 400 with both numbers; a
  // max_tokens beyond what is left is clamped (finish reason length), as llama.cpp does
  const over = await raw('/v1/chat/completions', { body: JSON.stringify({ messages: [user('word '.repeat(5000))] }) });
  check(over.status === 400 && /maximum context length is 2048 tokens/.test(over.json?.error?.message) && /requested \d{4} tokens/.test(over.json.error.message),
        'prompt over the context: 400 naming the context and the prompt length', over.text);
  const probe = await openai.chat.completions.create({ messages: [user('word '.repeat(1900))], max_tokens: 1, thinking: { type: 'disabled' } });
  const nWords = 1900 + (2048 - 12 - probe.usage.prompt_tokens);  // " word" is one token: leaves 12 tokens of room
  const clamped = await openai.chat.completions.create({ messages: [user('word '.repeat(nWords))], max_tokens: 384000, thinking: { type: 'disabled' }, seed: 1 });
  check(clamped.usage.prompt_tokens === 2036 && clamped.choices[0].finish_reason === 'length' && clamped.usage.completion_tokens === 12,
        'max_tokens beyond the context: clamped to the room left, finish_reason length', [clamped.usage, clamped.choices[0].finish_reason]);
  const cc = await raw('/v1/completions', { body: JSON.stringify({ prompt: 'word'.repeat(1) + ' word'.repeat(2047 - 10), max_tokens: 100000 }) });
  check(cc.status === 200 && cc.json?.choices?.[0]?.finish_reason === 'length' && cc.json.usage.prompt_tokens + cc.json.usage.completion_tokens === 2048,
        '/v1/completions: max_tokens clamped to the context', cc.text.slice(0, 300));
  // any model name is served (reported as the served id); agents send their own model names
  const anyModel = await openai.chat.completions.create({ ...base, model: 'gpt-17', thinking: { type: 'disabled' } });
  check(anyModel.model === 'deepseek-v4-flash' && anyModel.choices[0].message.content === chat.choices[0].message.content, 'an unknown model name is served by the model', anyModel.model);

  const nf = await raw('/v1/nothing', { method: 'GET' });
  check(nf.status === 404 && nf.json?.error, 'unknown route -> 404 JSON', nf.text);
  check((await raw('/health', { method: 'GET', key: null })).status === 200, 'server alive after bad input');

  // ---- cancellation: a streaming client that disconnects frees its slot
  const before = await raw('/metrics', { method: 'GET' });
  const cancelled0 = Number(before.text.match(/^dsv4_requests_cancelled_total (\d+)/m)?.[1] ?? -1);
  const ac = new AbortController();
  const long = await openai.chat.completions.create({ ...base, max_tokens: 1500, stream: true }, { signal: ac.signal });
  let got = 0;
  try { for await (const c of long) { if (++got >= 3) { ac.abort(); } } } catch {}
  let freed = false;
  for (let i = 0; i < 300 && !freed; i++) {
    const m = (await raw('/metrics', { method: 'GET' })).text;
    freed = /^dsv4_active_slots 0$/m.test(m) && Number(m.match(/^dsv4_requests_cancelled_total (\d+)/m)?.[1]) === cancelled0 + 1;
    if (!freed) await new Promise((r) => setTimeout(r, 100));
  }
  check(freed, 'a disconnected streaming client is cancelled and frees its slot (polled for 30 s: a bound, not a timing)');

  // ---- metrics
  const met = (await raw('/metrics', { method: 'GET' })).text;
  check(/^dsv4_prompt_cache_hit_tokens_total [1-9]/m.test(met), '/metrics reports cache hits', met.slice(0, 400));
  check(/^# TYPE dsv4_requests_total counter$/m.test(met), '/metrics is Prometheus text');
} catch (e) {
  check(false, 'unexpected exception', String(e?.stack ?? e));
}
const code = await stopServer(srv);
check(code === 0, 'SIGTERM: clean exit', `${code}\n${srv.log().slice(-2000)}`);

// ---- usage.speculative under --spec mtp (every greedy request drafts) and --spec none (never):
// one greedy request per API (Chat Completions JSON and stream, Anthropic Messages, Responses);
// the two servers run side by side.
async function specUsages(spec) {
  const s = await startServer(bin, modelDir, ['--spec', spec, '--parallel', '1', '-c', '512']);
  const post = (path, body) => postJson(s, path, body);
  const out = {};
  try {
    const msgs = [{ role: 'user', content: 'Count to twenty.' }];
    const greedy = { model: 'deepseek-v4-flash', max_tokens: 12, temperature: 0 };
    const chat = await post('/v1/chat/completions', { ...greedy, messages: msgs, thinking: { type: 'disabled' } });
    out.chat = JSON.parse(chat.text).usage;
    const st = await post('/v1/chat/completions', { ...greedy, messages: msgs, thinking: { type: 'disabled' }, stream: true,
      stream_options: { include_usage: true } });
    const chunks = st.text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)));
    out.stream = chunks.at(-1)?.usage;
    const msg = await post('/v1/messages', { ...greedy, messages: msgs, thinking: { type: 'disabled' } });
    out.anthropic = JSON.parse(msg.text).usage;
    const resp = await post('/v1/responses', { model: 'deepseek-v4-flash', max_output_tokens: 12, temperature: 0, input: 'Count to twenty.',
      reasoning: { effort: 'none' } });
    out.responses = JSON.parse(resp.text).usage;
  } catch (e) {
    check(false, `--spec ${spec}: unexpected exception`, String(e?.stack ?? e));
  }
  const c = await stopServer(s);
  check(c === 0, `--spec ${spec}: SIGTERM: clean exit`, `${c}\n${s.log().slice(-2000)}`);
  return out;
}
const [specMtp, specNone] = await Promise.all([specUsages('mtp'), specUsages('none')]);
for (const api of ['chat', 'stream', 'anthropic', 'responses']) {
  checkSpec(specMtp[api], `--spec mtp ${api}`);
  check(specMtp[api]?.speculative?.drafted_tokens > 0, `--spec mtp ${api}: drafted_tokens > 0`, specMtp[api]);
}
check(JSON.stringify(specMtp.chat?.speculative) === JSON.stringify(specMtp.stream?.speculative),
      '--spec mtp: streamed usage.speculative = non-streamed (same greedy request)', [specMtp.chat, specMtp.stream]);
for (const api of ['chat', 'stream', 'anthropic', 'responses']) {
  checkSpec(specNone[api], `--spec none ${api}`);
  check(specNone[api]?.speculative?.drafted_tokens === 0, `--spec none ${api}: drafted_tokens 0`, specNone[api]);
}
if (!/request [0-9a-f-]+ \/v1\/chat\/completions prompt=\d+ cached=\d+ generated=\d+ prefill=[\d.]+ tok\/s decode=[\d.]+ tok\/s finish=/.test(srv.log()))
  check(false, 'one log line per request', srv.log().slice(0, 1000));
if (failed()) { console.error(`${failed()} check(s) failed`); process.exit(1); }
console.log('server_api_test: all checks passed');
