// max_tokens, usage and stop strings under MTP speculation, through the HTTP API (raw HTTP, no
// npm clients): `dsv4 serve --spec mtp --draft 3` and `--spec none` side by side on the tiny
// model. For Completions and Chat Completions, JSON and stream, greedy and sampled, max_tokens
// 1, 2, 3, 4, 5, 8: at most max_tokens tokens, usage.completion_tokens = the tokens sent (their
// logprobs), finish_reason "length" exactly when the budget is used up; greedy answers (text,
// finish, usage) = the --spec none server's. Stop strings from the middle of a greedy answer cut
// it where --spec none cuts it. Two requests at once (decoded together, then the longer alone).
// Usage: node server_spec_limits_test.mjs <dsv4 binary> <model dir>
import { startServer, stopServer, check, failed, postJson as post } from './server_harness.mjs';

const [bin, modelDir] = process.argv.slice(2);
if (!bin || !modelDir) {
  console.error('usage: server_spec_limits_test.mjs <dsv4> <model dir>');
  process.exit(2);
}

// One request -> { text, finish, usage, emitted } (emitted: tokens with logprobs sent, in the
// streams summed over the chunks).
async function ask(server, api, body) {
  const path = api === 'completions' ? '/v1/completions' : '/v1/chat/completions';
  const res = await post(server, path, body);
  if (res.status !== 200) throw new Error(`${path} ${res.status}: ${res.text.slice(0, 400)}`);
  if (!body.stream) {
    const j = JSON.parse(res.text);
    const c = j.choices[0];
    if (api === 'completions') return { text: c.text, finish: c.finish_reason, usage: j.usage, emitted: c.logprobs?.tokens?.length ?? 0 };
    return { text: c.message.content ?? '', finish: c.finish_reason, usage: j.usage, emitted: c.logprobs?.content?.length ?? 0 };
  }
  let text = '', finish = null, usage = null, emitted = 0;
  for (const line of res.text.split('\n')) {
    if (!line.startsWith('data: {')) continue;
    const j = JSON.parse(line.slice(6));
    if (j.usage) usage = j.usage;
    for (const c of j.choices ?? []) {
      if (api === 'completions') {
        text += c.text ?? '';
        emitted += c.logprobs?.tokens?.length ?? 0;
      } else {
        text += c.delta?.content ?? '';
        emitted += c.logprobs?.content?.length ?? 0;
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, finish, usage, emitted };
}

function request(api, maxTokens, temperature, stream, extra = {}) {
  const b = { model: 'deepseek-v4-flash', max_tokens: maxTokens, temperature, seed: 11, stream, ...extra };
  if (api === 'completions') Object.assign(b, { prompt: 'Once upon a time', logprobs: 0 });
  else Object.assign(b, { messages: [{ role: 'user', content: 'Tell me a story.' }], thinking: { type: 'disabled' }, logprobs: true });
  if (stream) b.stream_options = { include_usage: true };
  return b;
}

function checkLimits(r, maxTokens, what) {
  const n = r.usage?.completion_tokens;
  check(Number.isInteger(n) && n >= 1 && n <= maxTokens, `${what}: 1 <= completion_tokens <= max_tokens`, r.usage);
  check(r.emitted === n, `${what}: completion_tokens = tokens sent`, { emitted: r.emitted, usage: r.usage });
  // ("stop" at max_tokens too when the last token is EOS)
  check(r.finish === 'length' ? n === maxTokens : r.finish === 'stop', `${what}: finish "length" only at max_tokens, else "stop"`,
        { finish: r.finish, n });
}

const [spec, plain] = await Promise.all([
  startServer(bin, modelDir, ['--spec', 'mtp', '--draft', '3', '--parallel', '2', '-c', '512', '-q']),
  startServer(bin, modelDir, ['--spec', 'none', '--parallel', '2', '-c', '512', '-q']),
]);
try {
  let drafted = 0;
  for (const api of ['completions', 'chat']) {
    for (const stream of [false, true]) {
      for (const temperature of [0, 0.8]) {
        for (const maxTokens of [1, 2, 3, 4, 5, 8]) {
          const what = `${api}${stream ? ' stream' : ''} T=${temperature} max_tokens=${maxTokens}`;
          const body = request(api, maxTokens, temperature, stream);
          const got = await ask(spec, api, body);
          checkLimits(got, maxTokens, `--spec mtp ${what}`);
          drafted += got.usage?.speculative?.drafted_tokens ?? 0;
          if (temperature !== 0) continue;
          const want = await ask(plain, api, body);
          checkLimits(want, maxTokens, `--spec none ${what}`);
          check(got.text === want.text && got.finish === want.finish && got.usage?.completion_tokens === want.usage?.completion_tokens,
                `${what}: greedy answer = --spec none's`, { spec: [got.text, got.finish, got.usage], plain: [want.text, want.finish, want.usage] });
        }
      }
    }
  }
  check(drafted > 0, '--spec mtp: requests drafted tokens', drafted);

  // Stop strings from the middle of the plain greedy answer (the cut falls inside a verified batch).
  for (const api of ['completions', 'chat']) {
    for (const stream of [false, true]) {
      const full = (await ask(plain, api, request(api, 24, 0, stream))).text;
      check(full.length >= 16, `${api} stop: plain answer long enough`, full);
      for (const at of [3, 7, 12]) {
        const body = request(api, 24, 0, stream, { stop: [full.slice(at, at + 2)] });
        const [got, want] = await Promise.all([ask(spec, api, body), ask(plain, api, body)]);
        const what = `${api}${stream ? ' stream' : ''} stop ${JSON.stringify(full.slice(at, at + 2))}`;
        check(want.finish === 'stop', `${what}: --spec none stops`, want);
        check(got.text === want.text && got.finish === want.finish && got.usage?.completion_tokens === want.usage?.completion_tokens,
              `${what}: = --spec none`, { spec: [got.text, got.finish, got.usage], plain: [want.text, want.finish, want.usage] });
        check(got.emitted === got.usage?.completion_tokens, `${what}: completion_tokens = tokens sent`, got);
      }
    }
  }

  // Two requests at once: decoded together in batched steps, then the longer one alone (and
  // speculating); whichever step the shorter one ends in, neither passes its max_tokens.
  for (let nb = 1; nb < 8; ++nb) {
    const [a, b] = await Promise.all([ask(spec, 'completions', request('completions', 8, 0, false)),
                                      ask(spec, 'completions', { ...request('completions', nb, 0, false), prompt: 'Name a colour' })]);
    checkLimits(a, 8, `concurrent: max_tokens 8 beside ${nb}`);
    checkLimits(b, nb, `concurrent: max_tokens ${nb} beside 8`);
  }
} catch (e) {
  check(false, 'unexpected exception', String(e?.stack ?? e));
}
for (const [name, s] of [['--spec mtp', spec], ['--spec none', plain]]) {
  const code = await stopServer(s);
  check(code === 0, `${name}: SIGTERM: clean exit`, `${code}\n${s.log().slice(-2000)}`);
}
if (failed()) {
  console.error(`${failed()} check(s) failed`);
  process.exit(1);
}
console.log('server_spec_limits_test: all checks passed');
