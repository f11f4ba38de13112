// Oracle for the dsv4 tokenizer tests: Hugging Face `tokenizers` (the Rust library, through
// the Node binding @anush008/tokenizers) run on the same tokenizer.json.
//
//   node hf_tokenizers.js encode TOKENIZER IN.jsonl OUT.jsonl
//       IN lines: {"text": "...", "parse_special": true|false}; OUT lines: [ids...]
//   node hf_tokenizers.js decode TOKENIZER IN.jsonl OUT.jsonl
//       IN lines: {"ids": [...], "skip_special": true|false}; OUT lines: "text"
//   node hf_tokenizers.js bench TOKENIZER TEXT_FILE REPEATS
//       prints {"bytes": N, "ids": N, "seconds": best, "mb_per_s": ...} for encoding the file
//
// TOKENIZER may be gzip-compressed. Lines are split on '\n' only (texts hold U+2028 etc.).
// parse_special=false means "match no added token at all"; HF has no such switch (its
// encode_special_tokens only ignores tokens flagged special), so a second tokenizer without
// added tokens is built for it.
'use strict';
const fs = require('fs');
const zlib = require('zlib');
const { Tokenizer } = require('@anush008/tokenizers');

function loadJson(path) {
  let buf = fs.readFileSync(path);
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
  return buf.toString('utf8');
}

function readLines(path) {
  return fs.readFileSync(path, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

async function main() {
  const [mode, tokPath, a, b] = process.argv.slice(2);
  const json = loadJson(tokPath);
  const withAdded = Tokenizer.fromString(json);
  let withoutAdded = null;
  const plain = () => {
    if (!withoutAdded) {
      const j = JSON.parse(json);
      j.added_tokens = [];
      withoutAdded = Tokenizer.fromString(JSON.stringify(j));
    }
    return withoutAdded;
  };
  if (mode === 'encode') {
    const out = [];
    for (const rec of readLines(a)) {
      const t = rec.parse_special ? withAdded : plain();
      const enc = await t.encode(rec.text, null, { addSpecialTokens: false });
      out.push(JSON.stringify(enc.getIds()));
    }
    fs.writeFileSync(b, out.join('\n') + '\n');
  } else if (mode === 'decode') {
    const out = [];
    for (const rec of readLines(a)) out.push(JSON.stringify(await withAdded.decode(rec.ids, rec.skip_special)));
    fs.writeFileSync(b, out.join('\n') + '\n');
  } else if (mode === 'bench') {
    const text = fs.readFileSync(a, 'utf8');
    const bytes = Buffer.byteLength(text, 'utf8');
    const repeats = Math.max(1, parseInt(b || '3', 10));
    let best = Infinity, n = 0;
    for (let r = 0; r < repeats; ++r) {
      const t0 = process.hrtime.bigint();
      const enc = await withAdded.encode(text, null, { addSpecialTokens: false });
      n = enc.getLength();
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      best = Math.min(best, s);
    }
    console.log(JSON.stringify({ bytes, ids: n, seconds: best, mb_per_s: bytes / 1e6 / best }));
  } else {
    console.error('usage: node hf_tokenizers.js encode|decode|bench TOKENIZER ...');
    process.exit(2);
  }
}

main().catch((e) => {
  console.error('hf_tokenizers.js: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
