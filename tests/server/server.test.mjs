// server.test.mjs: end-to-end tests of `inferno serve` through the official `openai` npm client (node:test,
// no other framework). Starts the real binary ($INFERNO_BINARY) on a free port with stories260K.gguf from
// $INFERNO_SHARED/models and checks what a client sees: the model list; chat and completions with usage and
// finish_reason (greedy text equal to llama.cpp's golden continuation); streaming (role first, one delta per
// token, finish_reason, [DONE]); embeddings (unit norm, deterministic, float and base64 agree); 16 concurrent
// streams each equal to a lone request; a client that disconnects mid-stream is cancelled and frees its KV
// cells; malformed JSON, wrong field types, oversized bodies, unknown models; metrics that move; and, on a
// second server, API keys, CORS, --max-prompt-tokens and a full queue. Both servers must exit 0 on SIGTERM.
//
// Left out: load and latency figures (bench/loadgen.mjs), on-demand loading from models_dir (the shell test
// covers it with curl), the shutdown sequence (tests/cli/test_server.sh).
//
// usage: INFERNO_BINARY=build/inferno INFERNO_SHARED=../shared node --test tests/server/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';

const BIN = process.env.INFERNO_BINARY;
const SHARED = process.env.INFERNO_SHARED;
const MODEL_PATH = SHARED ? path.join(SHARED, 'models', 'stories260K.gguf') : '';
const MODEL = 'stories260K';
const MISSING = !BIN || !fs.existsSync(BIN) ? 'INFERNO_BINARY is not set or not built'
    : !fs.existsSync(MODEL_PATH) ? `${MODEL_PATH} not found` : null;
// llama.cpp's greedy continuation of "Once upon a time" on this model (see tests/cli/test_run.sh).
const GOLDEN_32 = ', there was a little girl named Lily. She loved to play outside in the park. One day, she saw';

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'inferno-server-test-'));

// Starts `inferno serve` on port 0 and resolves once /health says ok. stop() sends SIGTERM and resolves with
// the exit code.
async function startServer(extra = []) {
    const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: path.join(home, 'xdg') };
    for (const k of Object.keys(env)) if (k.startsWith('INFERNO_')) delete env[k];
    const args = ['serve', '--model', MODEL_PATH, '--host', '127.0.0.1', '--port', '0', '--threads', '1', ...extra];
    const proc = spawn(BIN, args, { env, cwd: home, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve(signal ? `signal ${signal}` : code)));
    const port = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no port after 30 s; log:\n${log}`)), 30000);
        proc.stderr.on('data', (d) => {
            log += d;
            const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log);
            if (m) {
                clearTimeout(timer);
                resolve(Number(m[1]));
            }
        });
        exited.then((code) => reject(new Error(`the server exited (${code}) before listening; log:\n${log}`)));
    });
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
        const r = await fetch(`${url}/health`).catch(() => null);
        if (r && r.status === 200) break;
        if (i > 300) throw new Error(`not ready after 30 s; log:\n${log}`);
        await new Promise((res) => setTimeout(res, 100));
    }
    return {
        url, port, log: () => log,
        stop: async () => { proc.kill('SIGTERM'); return exited; },
    };
}

function client(url, apiKey = 'unused') {
    return new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, timeout: 120000 });
}

// Prometheus text -> Map of 'name{labels}' -> number.
async function metrics(url, headers = {}) {
    const r = await fetch(`${url}/metrics`, { headers });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/plain/);
    const m = new Map();
    for (const line of (await r.text()).split('\n')) {
        if (!line || line.startsWith('#')) continue;
        const i = line.lastIndexOf(' ');
        m.set(line.slice(0, i), Number(line.slice(i + 1)));
    }
    return m;
}

async function postRaw(url, route, body, headers = {}) {
    const r = await fetch(`${url}${route}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, headers: r.headers, text, json };
}

// Expects the promise to fail with an OpenAI APIError of the given status (and param when given).
async function expectApiError(promise, status, param) {
    await assert.rejects(promise, (e) => {
        assert.ok(e instanceof OpenAI.APIError, `not an APIError: ${e}`);
        assert.equal(e.status, status, `status of: ${e.message}`);
        if (param !== undefined) assert.equal(e.param, param, `param of: ${e.message}`);
        assert.equal(typeof e.error?.message, 'string');
        assert.equal(typeof e.error?.type, 'string');
        return true;
    });
}

// Reads a chat stream: the chunks and the concatenated content.
async function readChat(stream) {
    const chunks = [];
    let text = '';
    for await (const c of stream) {
        chunks.push(c);
        text += c.choices[0]?.delta?.content ?? '';
    }
    return { chunks, text };
}

function assertClose(a, b, tol) {
    assert.equal(a.length, b.length);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `element ${i}: ${a[i]} vs ${b[i]}`);
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// ---------------------------------------------------------------------------------------------------------
// The main server
// ---------------------------------------------------------------------------------------------------------
let srv, oa;
const opts = { skip: MISSING ?? false };

before(async () => {
    if (MISSING) return;
    srv = await startServer(['--parallel', '16', '--max-body', '65536', '--max-json-depth', '32']);
    oa = client(srv.url);
});

after(async () => {
    if (srv) {
        const code = await srv.stop();
        assert.equal(code, 0, `exit code after SIGTERM; log:\n${srv.log()}`);
        assert.match(srv.log(), /shutting down/);
    }
    fs.rmSync(home, { recursive: true, force: true });
});

test('GET /health and /v1/models', opts, async () => {
    const h = await fetch(`${srv.url}/health`);
    assert.equal(h.status, 200);
    assert.deepEqual(await h.json(), { status: 'ok' });
    const ids = [];
    for await (const m of oa.models.list()) {
        ids.push(m.id);
        assert.equal(m.object, 'model');
    }
    assert.ok(ids.includes(MODEL), `models: ${ids}`);
});

test('completions: greedy text equals llama.cpp, usage and finish_reason', opts, async () => {
    const r = await oa.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 32, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].text, GOLDEN_32);
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.deepEqual(r.usage, { prompt_tokens: 5, completion_tokens: 32, total_tokens: 37 }); // BOS + 4 tokens

    // A stop string ends the text before it, with finish_reason stop.
    const s = await oa.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 32, temperature: 0,
        stop: ['Lily'] });
    assert.equal(s.choices[0].text, ', there was a little girl named ');
    assert.equal(s.choices[0].finish_reason, 'stop');
    assert.ok(s.usage.completion_tokens < 32);

    // Several prompts: one choice each, in order; a prompt of token ids gives the same text as its string.
    const tok = await postRaw(srv.url, '/tokenize', JSON.stringify({ content: 'Once upon a time', add_special: true }));
    assert.equal(tok.status, 200);
    assert.equal(tok.json.tokens.length, 5);
    assert.equal(tok.json.tokens[0], 1); // BOS
    const m = await oa.completions.create({ model: MODEL, prompt: ['Once upon a time', 'The cat'], max_tokens: 8,
        temperature: 0 });
    assert.deepEqual(m.choices.map((c) => c.index), [0, 1]);
    const ids = await oa.completions.create({ model: MODEL, prompt: tok.json.tokens, max_tokens: 8, temperature: 0 });
    assert.equal(ids.choices[0].text, m.choices[0].text);
    assert.equal(m.choices[0].text, GOLDEN_32.slice(0, m.choices[0].text.length));

    // Log-probabilities: greedy picks the most likely token, so each chosen one heads its top list.
    const lp = await oa.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 4, temperature: 0,
        logprobs: 3 });
    const L = lp.choices[0].logprobs;
    assert.equal(L.tokens.length, 4);
    assert.equal(L.tokens.join(''), lp.choices[0].text);
    for (let i = 0; i < 4; i++) {
        assert.ok(L.token_logprobs[i] <= 0);
        const best = Math.max(...Object.values(L.top_logprobs[i]));
        assert.ok(Math.abs(best - L.token_logprobs[i]) < 1e-5);
    }
});

test('chat completions (non-stream): message, usage, finish_reason', opts, async () => {
    const req = { model: MODEL, messages: [{ role: 'system', content: 'You tell stories.' },
        { role: 'user', content: 'Once upon a time' }], max_tokens: 16, temperature: 0 };
    const r = await oa.chat.completions.create(req);
    assert.equal(r.object, 'chat.completion');
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.model, MODEL);
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(typeof r.choices[0].message.content, 'string');
    assert.ok(r.choices[0].message.content.length > 0);
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.usage.completion_tokens, 16);
    assert.ok(r.usage.prompt_tokens > 5);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    // Same request, same answer (greedy); max_completion_tokens is the newer spelling of max_tokens.
    const again = await oa.chat.completions.create({ ...req, max_tokens: undefined, max_completion_tokens: 16 });
    assert.equal(again.choices[0].message.content, r.choices[0].message.content);
    // Content as an array of text parts renders like the plain string.
    const parts = await oa.chat.completions.create({ ...req, messages: [req.messages[0],
        { role: 'user', content: [{ type: 'text', text: 'Once upon a time' }] }] });
    assert.equal(parts.choices[0].message.content, r.choices[0].message.content);
    // n = 2 with a seed: two choices, reproducible.
    const n2 = await oa.chat.completions.create({ ...req, n: 2, temperature: 1, seed: 42 });
    const n2b = await oa.chat.completions.create({ ...req, n: 2, temperature: 1, seed: 42 });
    assert.deepEqual(n2.choices.map((c) => c.index), [0, 1]);
    assert.deepEqual(n2.choices.map((c) => c.message.content), n2b.choices.map((c) => c.message.content));
    assert.equal(n2.usage.completion_tokens, 32);
});

test('chat completions (stream): role first, one delta per token, finish_reason, [DONE]', opts, async () => {
    const req = { model: MODEL, messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 24,
        temperature: 0 };
    const whole = await oa.chat.completions.create(req);
    const stream = await oa.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
    const { chunks, text } = await readChat(stream);
    assert.equal(chunks[0].object, 'chat.completion.chunk');
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.ok(chunks.every((c) => c.id === chunks[0].id));
    const content = chunks.filter((c) => c.choices[0]?.delta?.content);
    assert.equal(content.length, 24, 'one content chunk per generated token');
    assert.equal(text, whole.choices[0].message.content);
    const fin = chunks.filter((c) => c.choices[0]?.finish_reason);
    assert.equal(fin.length, 1);
    assert.equal(fin[0].choices[0].finish_reason, 'length');
    const last = chunks[chunks.length - 1];
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, whole.usage);

    // The wire format itself: data: lines, the finish chunk before [DONE], nothing after it.
    const raw = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST',
        body: JSON.stringify({ ...req, max_tokens: 4, stream: true }) });
    assert.equal(raw.status, 200);
    assert.match(raw.headers.get('content-type'), /^text\/event-stream/);
    const events = (await raw.text()).split('\n\n').filter((e) => e);
    assert.ok(events.every((e) => e.startsWith('data: ')), events.join('|'));
    assert.equal(events[events.length - 1], 'data: [DONE]');
    const finish = JSON.parse(events[events.length - 2].slice(6));
    assert.equal(finish.choices[0].finish_reason, 'length');
    assert.equal(events.length, 1 + 4 + 1 + 1); // role, 4 tokens, finish, [DONE]

    // Completions stream too, and it equals the golden text.
    const cs = await oa.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 32, temperature: 0,
        stream: true });
    let ctext = '', cfin = null;
    for await (const c of cs) {
        ctext += c.choices[0].text;
        cfin = c.choices[0].finish_reason ?? cfin;
    }
    assert.equal(ctext, GOLDEN_32);
    assert.equal(cfin, 'length');
});

test('embeddings: unit norm, same input same vector, float and base64 agree', opts, async () => {
    const input = ['Once upon a time', 'Once upon a time', 'The cat sat on the mat.'];
    // The openai client asks for base64 and decodes it; ask for floats explicitly too.
    const b = await oa.embeddings.create({ model: MODEL, input });
    const f = await oa.embeddings.create({ model: MODEL, input, encoding_format: 'float' });
    for (const r of [b, f]) {
        assert.equal(r.object, 'list');
        assert.equal(r.data.length, 3);
        assert.deepEqual(r.data.map((d) => d.index), [0, 1, 2]);
        for (const d of r.data) {
            assert.equal(d.embedding.length, 64); // n_embd of stories260K
            const norm = Math.sqrt(d.embedding.reduce((s, x) => s + x * x, 0));
            assert.ok(Math.abs(norm - 1) < 1e-3, `norm ${norm}`);
        }
        // Same input, same vector, up to the last bits: the two may share a forward step with different
        // neighbours, and batch shape changes the order of float sums.
        assertClose(r.data[0].embedding, r.data[1].embedding, 1e-5);
        const dot = r.data[0].embedding.reduce((s, x, i) => s + x * r.data[2].embedding[i], 0);
        assert.ok(dot < 0.9999, 'different inputs give different vectors');
    }
    assertClose(b.data[0].embedding, f.data[0].embedding, 1e-5);
    const t3 = await postRaw(srv.url, '/tokenize', JSON.stringify({ content: input[2], add_special: true }));
    assert.equal(f.usage.prompt_tokens, 5 + 5 + t3.json.tokens.length);
    assert.equal(f.usage.total_tokens, f.usage.prompt_tokens);
    // A single string; and the same vector whatever else is in the batch.
    const one = await oa.embeddings.create({ model: MODEL, input: 'Once upon a time', encoding_format: 'float' });
    assert.equal(one.data.length, 1);
    assertClose(one.data[0].embedding, f.data[0].embedding, 1e-5);
});

test('16 concurrent streams each get exactly the text of a lone request', opts, async () => {
    const prompts = ['Once upon a time', 'The little dog', 'Tom and Sue went', 'One day, a bird'];
    const req = (p) => ({ model: MODEL, prompt: p, max_tokens: 40, temperature: 0, stream: true });
    const collect = async (p) => {
        let t = '', n = 0;
        for await (const c of await oa.completions.create(req(p))) {
            t += c.choices[0].text;
            if (c.choices[0].text) n++;
        }
        return { t, n };
    };
    const lone = [];
    for (const p of prompts) lone.push(await collect(p));
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => collect(prompts[i % 4])));
    results.forEach((r, i) => assert.equal(r.t, lone[i % 4].t, `stream ${i} differs from the lone request`));
    assert.ok(lone.every((l) => l.t.length > 0));
});

test('a client that disconnects mid-stream is cancelled and frees its KV cells', opts, async () => {
    const before = await metrics(srv.url);
    const cancelledKey = 'inferno_requests_finished_total{reason="cancelled"}';
    const stream = await oa.chat.completions.create({ model: MODEL, stream: true, max_tokens: 4000, ignore_eos: true,
        temperature: 0, messages: [{ role: 'user', content: 'Once upon a time' }] });
    let n = 0;
    for await (const c of stream) {
        if (c.choices[0]?.delta?.content && ++n === 3) break; // leaving the loop aborts the response
    }
    assert.equal(n, 3);
    let m;
    for (let i = 0; i < 100; i++) {
        m = await metrics(srv.url);
        if (m.get(cancelledKey) > before.get(cancelledKey) && m.get(`inferno_kv_cells_used{model="${MODEL}"}`) === 0)
            break;
        await sleep(50);
    }
    assert.equal(m.get(cancelledKey), before.get(cancelledKey) + 1, 'the request was cancelled');
    assert.equal(m.get(`inferno_kv_cells_used{model="${MODEL}"}`), 0, 'KV cells back to 0');
    assert.equal(m.get(`inferno_running_sequences{model="${MODEL}"}`), 0);
    assert.ok(m.get(`inferno_kv_cells_total{model="${MODEL}"}`) > 0);
    // Far fewer tokens than asked were generated: the cancellation came at once.
    const gen = m.get('inferno_generated_tokens_total') - before.get('inferno_generated_tokens_total');
    assert.ok(gen < 1000, `${gen} tokens generated after the disconnect`);
    // The server goes on serving.
    for (let i = 0; i < 3; i++) {
        const r = await oa.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 32, temperature: 0 });
        assert.equal(r.choices[0].text, GOLDEN_32);
    }
});

test('bad requests: malformed JSON, bad UTF-8, wrong types, body and depth caps, unknown model', opts, async () => {
    for (const body of ['{"model": ', '{"a":1,}', '[1, 2]', '{"a":1} x', '', "{'a': 1}"]) {
        const r = await postRaw(srv.url, '/v1/chat/completions', body);
        assert.equal(r.status, 400, `body ${JSON.stringify(body)}: ${r.text}`);
        assert.equal(r.json.error.type, 'invalid_request_error');
        assert.ok(r.json.error.message.length > 0);
        assert.ok('param' in r.json.error && 'code' in r.json.error);
    }
    const badUtf8 = Buffer.concat([Buffer.from('{"prompt": "'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    assert.equal((await postRaw(srv.url, '/v1/completions', badUtf8)).status, 400);

    const msgs = [{ role: 'user', content: 'hi' }];
    const bad = [
        [{ max_tokens: 'ten' }, 'max_tokens'], [{ temperature: 'hot' }, 'temperature'], [{ top_p: 2 }, 'top_p'],
        [{ stream: 'yes' }, 'stream'], [{ stop: 5 }, 'stop'], [{ seed: 1.5 }, 'seed'], [{ n: 0 }, 'n'],
        [{ messages: 'hi' }, 'messages'], [{ messages: [] }, 'messages'],
        [{ messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
        [{ messages: [{ role: 'robot', content: 'x' }] }, 'messages[0].role'],
        [{ max_tokens: 1e9 }, 'max_tokens'], [{ top_logprobs: 3 }, 'top_logprobs'],
    ];
    for (const [fields, param] of bad)
        await expectApiError(oa.chat.completions.create({ model: MODEL, messages: msgs, ...fields }), 400, param);
    await expectApiError(oa.completions.create({ model: MODEL, prompt: 7 }), 400, 'prompt');
    await expectApiError(oa.completions.create({ model: MODEL, prompt: [1, 99999] }), 400, 'prompt');
    await expectApiError(oa.embeddings.create({ model: MODEL, input: {} }), 400, 'input');
    await expectApiError(oa.embeddings.create({ model: MODEL, input: 'x', encoding_format: 'hex' }), 400, 'encoding_format');
    // A prompt longer than the model's context (2048 per sequence): 400 context_length_exceeded.
    await assert.rejects(oa.completions.create({ model: MODEL, prompt: 'Once upon a time '.repeat(600), max_tokens: 1 }),
        (e) => e.status === 400 && e.code === 'context_length_exceeded' && e.param === 'prompt');
    // Unknown fields are ignored.
    const ok = await oa.chat.completions.create({ model: MODEL, messages: msgs, max_tokens: 2, some_new_field: { a: 1 } });
    assert.equal(ok.choices.length, 1);

    // 413 past --max-body 65536, with the body drained so the client reads the answer.
    await expectApiError(oa.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x'.repeat(100000) }] }), 413);
    // Nesting past --max-json-depth 32.
    const deep = `{"model":"${MODEL}","prompt":"x","extra":${'['.repeat(40)}${']'.repeat(40)}}`;
    assert.equal((await postRaw(srv.url, '/v1/completions', deep)).status, 400);

    // Unknown model: 404 model_not_found (no models_dir file of that name either).
    await assert.rejects(oa.chat.completions.create({ model: 'no-such-model', messages: msgs }), (e) => {
        assert.ok(e instanceof OpenAI.NotFoundError);
        assert.equal(e.code, 'model_not_found');
        assert.equal(e.param, 'model');
        return true;
    });
    // Unknown route and wrong method.
    assert.equal((await fetch(`${srv.url}/v1/nothing`)).status, 404);
    const wm = await fetch(`${srv.url}/v1/chat/completions`);
    assert.equal(wm.status, 405);
    assert.equal(wm.headers.get('allow'), 'POST');
});

test('tokenize and detokenize round trip; /v1/status', opts, async () => {
    const t = await postRaw(srv.url, '/tokenize', JSON.stringify({ content: 'Once upon a time' }));
    assert.equal(t.status, 200);
    assert.equal(t.json.tokens.length, 4); // no BOS without add_special
    const d = await postRaw(srv.url, '/detokenize', JSON.stringify({ tokens: t.json.tokens }));
    assert.equal(d.status, 200);
    assert.equal(d.json.content, 'Once upon a time');
    const bad = await postRaw(srv.url, '/detokenize', JSON.stringify({ tokens: [1, -5] }));
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.param, 'tokens[1]');
    assert.equal((await postRaw(srv.url, '/tokenize', JSON.stringify({ content: 5 }))).json.error.param, 'content');

    const s = await (await fetch(`${srv.url}/v1/status`)).json();
    assert.equal(s.state, 'ready');
    const m = s.models.find((x) => x.name === MODEL);
    assert.equal(m.n_params, 292800);
    assert.equal(m.n_embd, 64);
    assert.equal(m.n_parallel, 16);
    assert.equal(m.file_bytes, fs.statSync(MODEL_PATH).size);
    assert.ok(m.kv_cells_total > 0 && m.session_bytes > 0);
    assert.equal(s.devices[0].type, 'cpu');
    assert.ok(s.devices[0].info.length > 0);
    assert.ok(s.memory.rss_bytes > 0 && s.memory.models_bytes >= m.file_bytes);
});

test('metrics counters move', opts, async () => {
    const key = 'inferno_http_requests_total{route="/v1/completions",status="200"}';
    const a = await metrics(srv.url);
    const r = await oa.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
    // Requests are counted when their connection is done with them, a moment after the client has the body.
    let b;
    for (let i = 0; i < 50; i++) {
        b = await metrics(srv.url);
        if (b.get(key) === (a.get(key) ?? 0) + 1) break;
        await sleep(20);
    }
    assert.equal(b.get(key), (a.get(key) ?? 0) + 1);
    assert.equal(b.get('inferno_generated_tokens_total') - a.get('inferno_generated_tokens_total'), r.usage.completion_tokens);
    assert.equal(b.get('inferno_prompt_tokens_total') - a.get('inferno_prompt_tokens_total'), r.usage.prompt_tokens);
    const cnt = 'inferno_request_duration_seconds_count{route="/v1/completions"}';
    assert.equal(b.get(cnt), a.get(cnt) + 1);
    assert.equal(b.get('inferno_time_to_first_token_seconds_count'), a.get('inferno_time_to_first_token_seconds_count') + 1);
    assert.equal(b.get('inferno_time_to_first_token_seconds_bucket{le="+Inf"}'), b.get('inferno_time_to_first_token_seconds_count'));
    assert.ok(b.get('inferno_http_requests_total{route="/v1/chat/completions",status="400"}') > 0);
    assert.ok(b.get('inferno_http_requests_total{route="/v1/chat/completions",status="413"}') > 0);
    assert.equal(b.get(`inferno_queue_depth{model="${MODEL}"}`), 0);
    // 8 tokens: the prompt's step, then one step per token but the last.
    const steps = `inferno_engine_steps_total{model="${MODEL}"}`;
    assert.ok(b.get(steps) - a.get(steps) >= 8, `${b.get(steps) - a.get(steps)} engine steps for 8 tokens`);
    for (const part of ['forward', 'sample', 'output', 'other']) {
        const k = `inferno_engine_step_seconds_total{model="${MODEL}",part="${part}"}`;
        assert.ok(b.get(k) >= a.get(k), `${k} went back`);
        if (part === 'forward') assert.ok(b.get(k) > a.get(k), `${k} did not move`);
    }
    assert.ok(b.has('inferno_tokens_per_second'));
    assert.equal(b.get('inferno_models_loaded'), 1);
});

// ---------------------------------------------------------------------------------------------------------
// A second server: API key, CORS, one sequence and no queue.
// ---------------------------------------------------------------------------------------------------------
test('API key, CORS, prompt cap and a full queue (second server)', opts, async () => {
    const s2 = await startServer(['--api-key', 'sekrit', '--cors-origin', 'http://app.example', '--parallel', '1',
        '--max-queue', '0', '--max-prompt-tokens', '64']);
    try {
        const msgs = [{ role: 'user', content: 'hi' }];
        await assert.rejects(client(s2.url, 'wrong').chat.completions.create({ model: MODEL, messages: msgs }),
            (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
        const none = await postRaw(s2.url, '/v1/completions', JSON.stringify({ prompt: 'x' }));
        assert.equal(none.status, 401);
        assert.equal(none.headers.get('www-authenticate'), 'Bearer');
        assert.equal((await fetch(`${s2.url}/v1/models`)).status, 401);
        assert.equal((await fetch(`${s2.url}/health`)).status, 200); // /health stays open
        const good = client(s2.url, 'sekrit');
        const r = await good.chat.completions.create({ model: MODEL, messages: msgs, max_tokens: 4 });
        assert.equal(r.usage.completion_tokens, 4);
        // --max-prompt-tokens 64.
        await assert.rejects(good.completions.create({ model: MODEL, prompt: 'Once upon a time '.repeat(20) }),
            (e) => e.status === 400 && e.code === 'context_length_exceeded' && /max-prompt-tokens/.test(e.message));

        // CORS: preflight without a key, and the allowed origin echoed on replies; others get nothing.
        const pre = await fetch(`${s2.url}/v1/chat/completions`, { method: 'OPTIONS', headers: {
            Origin: 'http://app.example', 'Access-Control-Request-Method': 'POST',
            'Access-Control-Request-Headers': 'authorization, content-type' } });
        assert.equal(pre.status, 204);
        assert.equal(pre.headers.get('access-control-allow-origin'), 'http://app.example');
        assert.match(pre.headers.get('access-control-allow-methods'), /POST/);
        assert.match(pre.headers.get('access-control-allow-headers'), /authorization/);
        const h = await fetch(`${s2.url}/health`, { headers: { Origin: 'http://app.example' } });
        assert.equal(h.headers.get('access-control-allow-origin'), 'http://app.example');
        const other = await fetch(`${s2.url}/health`, { headers: { Origin: 'http://evil.example' } });
        assert.equal(other.headers.get('access-control-allow-origin'), null);

        // One sequence, no queue: while a stream runs, another request gets 429 with Retry-After.
        const stream = await good.chat.completions.create({ model: MODEL, messages: msgs, stream: true,
            max_tokens: 4000, ignore_eos: true });
        const it = stream[Symbol.asyncIterator]();
        await it.next();
        await it.next();
        const busy = await postRaw(s2.url, '/v1/completions', JSON.stringify({ prompt: 'x', max_tokens: 2 }),
            { Authorization: 'Bearer sekrit' });
        assert.equal(busy.status, 429, busy.text);
        assert.equal(busy.headers.get('retry-after'), '1');
        assert.equal(busy.json.error.code, 'queue_full');
        stream.controller.abort();
        // Once the stream is cancelled the slot is free again.
        let ok = null;
        for (let i = 0; i < 100 && !ok; i++) {
            ok = await good.completions.create({ model: MODEL, prompt: 'x', max_tokens: 2 }).catch(() => null);
            if (!ok) await sleep(50);
        }
        assert.ok(ok, 'the slot came back after the cancelled stream');
    } finally {
        const code = await s2.stop();
        assert.equal(code, 0, `exit code of the second server; log:\n${s2.log()}`);
    }
});
