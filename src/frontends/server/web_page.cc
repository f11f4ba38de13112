#include "frontends/server/web_page.h"

namespace dsv4::server {

const char* chat_page_html() {
  return R"DSV4HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dsv4 chat</title>
<style>
  :root { --bg: #f7f7f8; --fg: #1d1d1f; --muted: #6b6b76; --line: #dcdce2; --accent: #2457d6; --user: #e8eefc; }
  @media (prefers-color-scheme: dark) {
    :root { --bg: #18181b; --fg: #ececf1; --muted: #9a9aa5; --line: #34343c; --accent: #7aa2ff; --user: #23283a; }
  }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, sans-serif; background: var(--bg); color: var(--fg); display: flex; height: 100vh; }
  aside { width: 280px; padding: 14px; border-right: 1px solid var(--line); display: flex; flex-direction: column; gap: 10px; overflow-y: auto; }
  main { flex: 1; display: flex; flex-direction: column; min-width: 0; }
  h1 { font-size: 18px; margin: 0; }
  label { font-size: 12px; color: var(--muted); display: block; margin-bottom: 3px; }
  textarea, select, input { width: 100%; font: inherit; color: inherit; background: transparent; border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px; }
  #system { min-height: 120px; resize: vertical; }
  #log { flex: 1; overflow-y: auto; padding: 16px 20px; }
  .msg { max-width: 860px; margin: 0 auto 14px; padding: 10px 14px; border-radius: 8px; white-space: pre-wrap; word-wrap: break-word; }
  .msg.user { background: var(--user); }
  .msg.error { color: #c62828; }
  details.reasoning { color: var(--muted); font-size: 13px; margin-bottom: 6px; border-left: 3px solid var(--line); padding-left: 8px; }
  details.reasoning summary { cursor: pointer; user-select: none; }
  form { display: flex; gap: 8px; padding: 12px 20px; border-top: 1px solid var(--line); }
  #prompt { flex: 1; min-height: 44px; max-height: 200px; resize: vertical; }
  button { font: inherit; border: 1px solid var(--line); border-radius: 6px; padding: 6px 14px; background: transparent; color: inherit; cursor: pointer; }
  button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
  button:disabled { opacity: .45; cursor: default; }
  #stats { font-size: 12px; color: var(--muted); padding: 0 20px 8px; min-height: 18px; }
</style>
</head>
<body data-state="idle">
<aside>
  <h1>dsv4 chat</h1>
  <div id="model" style="font-size:12px;color:var(--muted)"></div>
  <div><label for="mode">Reasoning</label>
    <select id="mode">
      <option value="none">Non-think</option>
      <option value="high" selected>Think High</option>
      <option value="max">Think Max</option>
    </select></div>
  <div><label for="system">System prompt</label><textarea id="system" placeholder="(none)"></textarea></div>
  <div><label for="max-tokens">Max tokens (empty: up to the context)</label><input id="max-tokens" type="number" min="1" placeholder=""></div>
  <div><label for="temperature">Temperature</label><input id="temperature" type="number" min="0" max="2" step="0.1" value="1"></div>
  <div><label for="api-key">API key (if the server needs one)</label><input id="api-key" type="password" autocomplete="off"></div>
  <button id="new-chat" type="button">New chat</button>
</aside>
<main>
  <div id="log"></div>
  <div id="stats"></div>
  <form id="form">
    <textarea id="prompt" placeholder="Message (Enter to send, Shift+Enter for a new line)"></textarea>
    <button id="send" class="primary" type="submit">Send</button>
    <button id="stop" type="button" disabled>Stop</button>
  </form>
</main>
<script>
"use strict";
const $ = (s) => document.querySelector(s);
const turns = [];
let controller = null;
const keyInput = $('#api-key');
keyInput.value = localStorage.getItem('dsv4-api-key') || '';
keyInput.addEventListener('change', () => localStorage.setItem('dsv4-api-key', keyInput.value));
const headers = () => {
  const h = { 'content-type': 'application/json' };
  if (keyInput.value) h.authorization = 'Bearer ' + keyInput.value;
  return h;
};
fetch('/v1/models', { headers: headers() }).then((r) => r.json()).then((j) => {
  const m = j.data && j.data[0];
  if (m) $('#model').textContent = m.id + ' \u00b7 context ' + m.context_length;
}).catch(() => {});

function setState(s) {
  document.body.dataset.state = s;
  const busy = s === 'streaming';
  $('#send').disabled = busy;
  $('#stop').disabled = !busy;
}

function addMessage(role, text) {
  const div = document.createElement('div');
  div.className = 'msg ' + role;
  if (text !== undefined) div.textContent = text;
  $('#log').appendChild(div);
  $('#log').scrollTop = $('#log').scrollHeight;
  return div;
}

async function send() {
  const text = $('#prompt').value.trim();
  if (!text || controller) return;
  $('#prompt').value = '';
  turns.push({ role: 'user', content: text });
  addMessage('user', text);
  const box = addMessage('assistant');
  const details = document.createElement('details');
  details.className = 'reasoning';
  details.open = true;
  const summary = document.createElement('summary');
  summary.textContent = 'Reasoning';
  const reasoningText = document.createElement('div');
  details.append(summary, reasoningText);
  const content = document.createElement('div');
  content.className = 'content';
  box.append(details, content);
  details.hidden = true;

  const mode = $('#mode').value;
  const body = { messages: [], stream: true, stream_options: { include_usage: true } };
  const system = $('#system').value.trim();
  if (system) body.messages.push({ role: 'system', content: system });
  body.messages.push(...turns);
  if (mode === 'none') body.thinking = { type: 'disabled' };
  else body.thinking = { type: 'enabled' };
  if (mode === 'max') body.reasoning_effort = 'max';
  const mt = parseInt($('#max-tokens').value, 10);
  if (mt > 0) body.max_tokens = mt;
  const temp = parseFloat($('#temperature').value);
  if (!Number.isNaN(temp)) body.temperature = temp;

  controller = new AbortController();
  setState('streaming');
  $('#stats').textContent = 'waiting\u2026';
  const t0 = performance.now();
  let tFirst = 0, deltas = 0, usage = null, answer = '', finish = null;
  try {
    const res = await fetch('/v1/chat/completions', { method: 'POST', headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (!res.ok) {
      let msg = res.status + ' ' + res.statusText;
      try { msg = (await res.json()).error.message; } catch (e) {}
      throw new Error(msg);
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let at;
      while ((at = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, at);
        buf = buf.slice(at + 2);
        for (const line of frame.split('\n')) {
          if (!line.startsWith('data: ')) continue;
          const data = line.slice(6);
          if (data === '[DONE]') continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          if (chunk.usage) usage = chunk.usage;
          const ch = chunk.choices && chunk.choices[0];
          if (!ch) continue;
          if (ch.finish_reason) finish = ch.finish_reason;
          const d = ch.delta || {};
          if (d.reasoning_content) {
            details.hidden = false;
            reasoningText.textContent += d.reasoning_content;
          }
          if (d.content) {
            if (!answer) details.open = false;
            answer += d.content;
            content.textContent = answer;
          }
          if (d.reasoning_content || d.content) {
            if (!tFirst) tFirst = performance.now();
            deltas++;
            $('#stats').textContent = deltas + ' pieces \u00b7 ' + ((performance.now() - t0) / 1000).toFixed(1) + ' s';
            $('#log').scrollTop = $('#log').scrollHeight;
          }
        }
      }
    }
    turns.push({ role: 'assistant', content: answer });
    const t1 = performance.now();
    let s = '';
    if (usage) {
      const secs = Math.max((t1 - (tFirst || t0)) / 1000, 1e-3);
      s = usage.completion_tokens + ' tokens \u00b7 ' + (usage.completion_tokens / secs).toFixed(1) + ' tok/s \u00b7 prompt ' +
          usage.prompt_tokens + ' (cached ' + usage.prompt_cache_hit_tokens + ') \u00b7 first token ' + (((tFirst || t1) - t0) / 1000).toFixed(2) + ' s';
      if (usage.completion_tokens_details) s += ' \u00b7 reasoning ' + usage.completion_tokens_details.reasoning_tokens;
    }
    if (finish) s += ' \u00b7 finish ' + finish;
    $('#stats').textContent = s;
    setState('done');
  } catch (e) {
    if (e.name === 'AbortError') {
      turns.push({ role: 'assistant', content: answer });
      $('#stats').textContent = 'stopped after ' + deltas + ' pieces';
      setState('stopped');
    } else {
      if (!answer && details.hidden) box.remove();
      addMessage('error', 'Error: ' + e.message);
      $('#stats').textContent = '';
      turns.pop();
      setState('error');
    }
  } finally {
    controller = null;
    if (document.body.dataset.state === 'streaming') setState('done');
  }
}

$('#form').addEventListener('submit', (e) => { e.preventDefault(); send(); });
$('#prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); send(); }
});
$('#stop').addEventListener('click', () => { if (controller) controller.abort(); });
$('#new-chat').addEventListener('click', () => {
  if (controller) controller.abort();
  turns.length = 0;
  $('#log').textContent = '';
  $('#stats').textContent = '';
  setState('idle');
});
</script>
</body>
</html>
)DSV4HTML";
}

}  // namespace dsv4::server
