// Shared helpers of the server tests: start `dsv4 serve` on a free loopback port, wait for it,
// stop it with SIGTERM, and a tiny assertion helper that names the failing check.
import { spawn } from 'node:child_process';
import http from 'node:http';

export async function startServer(bin, modelDir, extraArgs = []) {
  const args = ['serve', '-m', modelDir, '--host', '127.0.0.1', '--port', '0', ...extraArgs];
  const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start in 120 s:\n' + log)), 120000);
    proc.stderr.on('data', (d) => {
      log += d.toString();
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${log}`)); });
  });
  proc.stderr.removeAllListeners('data');
  const server = { proc, port, base: `http://127.0.0.1:${port}`, log: () => log };
  proc.stderr.on('data', (d) => { log += d.toString(); });
  return server;
}

export async function stopServer(server, timeoutMs = 20000) {
  if (server.proc.exitCode !== null) return server.proc.exitCode;
  const exited = new Promise((resolve) => server.proc.on('exit', (code, sig) => resolve(code ?? sig)));
  server.proc.kill('SIGTERM');
  const t = setTimeout(() => server.proc.kill('SIGKILL'), timeoutMs);
  const code = await exited;
  clearTimeout(t);
  return code;
}

let failures = 0;
export function check(cond, what, detail) {
  if (cond) return;
  failures++;
  console.error(`FAIL: ${what}` + (detail !== undefined ? `\n   ${typeof detail === 'string' ? detail : JSON.stringify(detail)}` : ''));
}
export function failed() { return failures; }

// POST a JSON body; resolves { status, text }. node:http without an agent sends Connection:
// close, so SIGTERM need not wait out keep-alives.
export function postJson(server, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(server.base + path, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
