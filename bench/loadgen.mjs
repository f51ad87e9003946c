#!/usr/bin/env node
// loadgen.mjs: a load generator for OpenAI-compatible streaming servers (`inferno serve`, llama.cpp's
// llama-server, anything that answers POST /v1/chat/completions or /v1/completions with "stream": true as
// server-sent events ending in `data: [DONE]`). For each concurrency level it runs that many client streams
// at once, each sending requests back to back, and reports:
//   aggregate tok/s   completion tokens of every request in the level / the level's wall time (first request
//                     sent to last request finished)
//   per-stream tok/s  median over requests of completion tokens / that request's latency (what one client
//                     sees, queueing and prefill included); decode tok/s: median of (tokens - 1) / (last
//                     delta - first delta), the rate once tokens flow
//   TTFT p50/p99      request sent -> first chunk with non-empty content (chat) or text (completions)
//   latency p50/p99   request sent -> `data: [DONE]` (or the end of the body)
//   errors            HTTP status other than 200, a network failure, a timeout, or an error in the stream
//   engine            inferno only, from its /metrics before and after the level: forward steps, the
//                     forward pass per step, and the scheduler's time outside it per step (sampling,
//                     detokenizing and callbacks, batch building), the overhead that limits batching
// Completion tokens come from the usage object the server sends in its last chunks (asked for with
// stream_options.include_usage, which llama.cpp and OpenAI honour); where a response carries none they are
// the count of content chunks, a lower bound where a server merges tokens that arrive together into one
// chunk, as inferno does for a slow reader (the JSON's tokens_from says which).
//
// Every prompt gets a request-unique prefix ("[17] ") unless --no-unique: llama.cpp reuses a slot's cached
// prompt prefix, and a benchmark that repeats prompts would measure that cache rather than prefill.
//
// Deliberately left out: dependencies (Node.js 20's fetch, SSE parsed by hand), open-loop arrival rates
// (each stream is closed-loop: it sends its next request when the last one ends), tokenizing prompts, and
// checking what the text says.
//
// usage: node bench/loadgen.mjs --url http://127.0.0.1:8080 --model NAME [options]; --help lists them.
// Exit status: 0 when every request succeeded, 1 when any failed (the report is printed either way), 2 for
// bad flags or an unreachable server.

import os from 'node:os';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';

const HELP = `usage: node bench/loadgen.mjs --url URL --model NAME [options]

  --url URL                 server base URL (default http://127.0.0.1:8080); /v1/... is appended
  --model NAME              model name sent in each request (default "default")
  --concurrency LIST        comma-separated stream counts, run in order (default 1,8,32)
  --requests-per-stream N   requests each stream sends (default 4)
  --duration S              instead: each stream sends requests until S seconds have passed, then finishes
                            the one in flight
  --max-tokens N            max_tokens of each request (default 32)
  --prompt TEXT             a prompt (repeat the flag for several; default: 16 built-in story openings)
  --prompts-file FILE       prompts, one per line (empty lines skipped)
  --chat | --completions    POST /v1/chat/completions (one user message) or /v1/completions (default)
  --temperature T           sampling temperature (default 0)
  --seed N                  seed sent with each request (default: none)
  --ignore-eos              send "ignore_eos": true (llama.cpp and inferno) so every request runs to
                            max_tokens
  --no-unique               send prompts as given (no "[n] " prefix; lets a server reuse cached prefixes)
  --no-usage                do not send stream_options.include_usage (count content chunks instead)
  --warmup N                requests sent (one at a time) before measuring (default 1)
  --timeout S               per-request limit in seconds (default 600)
  --api-key KEY             sent as "Authorization: Bearer KEY"
  --label TEXT              a note stored in the JSON (machine, build, ...)
  --json                    print one JSON object on stdout (progress goes to stderr)
  --json-out FILE           also write that JSON object to FILE (the table still goes to stdout)
  --help

Against llama.cpp: start llama-server -m MODEL.gguf --parallel 32 -c <32 x per-request context> and run
  node bench/loadgen.mjs --url http://HOST:PORT --model NAME --concurrency 1,8,32
(llama-server accepts any model name). Same flags, same prompts and max_tokens as against inferno.`;

const DEFAULT_PROMPTS = [
    'Once upon a time, there was a little girl named Lily.',
    'One day, a small dog found a big red ball in the park.',
    'Tom and his sister went to the beach to build a sand castle.',
    'The old cat sat by the window and watched the rain.',
    'A little bird wanted to fly over the tall green tree.',
    'Sam had a new toy truck. He liked to push it in the mud.',
    'Mia found a shiny key under her bed one morning.',
    'The sun was hot, so Ben and his mom went to get ice cream.',
    'There was a big bear who lived in a cave near the river.',
    'Lucy wanted to bake a cake for her best friend.',
    'In a small town, there was a boy who loved to draw.',
    'The frog jumped into the pond and saw a fish.',
    'Anna and Max played hide and seek in the garden.',
    'A kind old man gave the children a box of crayons.',
    'The little train went up the hill, puffing and puffing.',
    'Once there was a princess who lost her golden crown.',
];

// ---------------------------------------------------------------------------------------------------------
// Flags
// ---------------------------------------------------------------------------------------------------------
function usageError(msg) {
    process.stderr.write(`loadgen: ${msg}\n(run with --help for the flags)\n`);
    process.exit(2);
}

function parsePositive(flag, text, { integer = true, allowZero = false } = {}) {
    const v = Number(text);
    const okType = integer ? Number.isInteger(v) : Number.isFinite(v);
    if (text === undefined || text === '' || !okType || v < 0 || (!allowZero && v === 0)) {
        const what = `${allowZero ? 'non-negative' : 'positive'} ${integer ? 'integer' : 'number'}`;
        usageError(`${flag}: "${text}" is not a ${what}`);
    }
    return v;
}

function parseArgs(argv) {
    const o = {
        url: 'http://127.0.0.1:8080', model: 'default', concurrency: [1, 8, 32], requestsPerStream: 4,
        duration: 0, maxTokens: 32, prompts: [], mode: 'completions', temperature: 0, seed: null,
        ignoreEos: false, unique: true, usage: true, warmup: 1, timeout: 600, apiKey: '', label: '',
        json: false, jsonOut: '',
    };
    let rpsGiven = false;
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const val = () => {
            if (i + 1 >= argv.length) usageError(`${a} needs a value`);
            return argv[++i];
        };
        switch (a) {
        case '--url': o.url = val().replace(/\/+$/, ''); break;
        case '--model': o.model = val(); break;
        case '--concurrency': {
            const text = val();
            o.concurrency = text.split(',').map((s) => parsePositive('--concurrency', s.trim()));
            if (o.concurrency.some((c) => c > 4096)) usageError('--concurrency: at most 4096 streams');
            break;
        }
        case '--requests-per-stream': o.requestsPerStream = parsePositive(a, val()); rpsGiven = true; break;
        case '--duration': o.duration = parsePositive(a, val(), { integer: false }); break;
        case '--max-tokens': o.maxTokens = parsePositive(a, val()); break;
        case '--prompt': o.prompts.push(val()); break;
        case '--prompts-file': {
            const file = val();
            let text;
            try {
                text = fs.readFileSync(file, 'utf8');
            } catch (e) {
                usageError(`--prompts-file ${file}: ${e.message}`);
            }
            const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
            if (lines.length === 0) usageError(`--prompts-file ${file}: no prompts in it`);
            o.prompts.push(...lines);
            break;
        }
        case '--chat': o.mode = 'chat'; break;
        case '--completions': o.mode = 'completions'; break;
        case '--temperature':
            o.temperature = parsePositive(a, val(), { integer: false, allowZero: true });
            break;
        case '--seed': o.seed = parsePositive(a, val(), { allowZero: true }); break;
        case '--ignore-eos': o.ignoreEos = true; break;
        case '--no-unique': o.unique = false; break;
        case '--no-usage': o.usage = false; break;
        case '--warmup': o.warmup = parsePositive(a, val(), { allowZero: true }); break;
        case '--timeout': o.timeout = parsePositive(a, val(), { integer: false }); break;
        case '--api-key': o.apiKey = val(); break;
        case '--label': o.label = val(); break;
        case '--json': o.json = true; break;
        case '--json-out': o.jsonOut = val(); break;
        case '--help': case '-h': process.stdout.write(HELP + '\n'); process.exit(0); break;
        default: usageError(`unknown flag "${a}"`);
        }
    }
    if (o.duration > 0 && rpsGiven) usageError('--duration and --requests-per-stream exclude each other');
    if (!/^https?:\/\//.test(o.url)) usageError(`--url ${o.url}: must start with http:// or https://`);
    if (o.prompts.length === 0) o.prompts = DEFAULT_PROMPTS;
    return o;
}

// ---------------------------------------------------------------------------------------------------------
// One request: send it, read the event stream, time it
// ---------------------------------------------------------------------------------------------------------

// The request body for prompt text; fields servers do not know are ignored by both inferno and llama.cpp.
function requestBody(o, prompt) {
    const body = { model: o.model, stream: true, max_tokens: o.maxTokens, temperature: o.temperature };
    if (o.mode === 'chat') body.messages = [{ role: 'user', content: prompt }];
    else body.prompt = prompt;
    if (o.usage) body.stream_options = { include_usage: true };
    if (o.seed !== null) body.seed = o.seed;
    if (o.ignoreEos) body.ignore_eos = true;
    return body;
}

// The text a chunk carries: choices[0].delta.content (chat) or choices[0].text (completions); '' if none.
function chunkText(chunk) {
    const c = Array.isArray(chunk.choices) && chunk.choices.length > 0 ? chunk.choices[0] : null;
    if (!c) return '';
    if (c.delta && typeof c.delta.content === 'string') return c.delta.content;
    if (typeof c.text === 'string') return c.text;
    return '';
}

function errorText(err) {
    if (err && typeof err === 'object') return String(err.message ?? JSON.stringify(err));
    return String(err);
}

// Sends one streaming request and returns
//   { ok, error, status, tokens, tokenSource: 'usage'|'deltas', promptTokens, ttft, latency, firstAt, lastAt,
//     chunks, finish }
// with times in seconds from the moment before fetch. Never throws.
async function runRequest(o, prompt) {
    const r = {
        ok: false, error: '', status: 0, tokens: 0, tokenSource: 'deltas', promptTokens: null, ttft: null,
        latency: null, firstAt: null, lastAt: null, chunks: 0, finish: null,
    };
    const headers = { 'Content-Type': 'application/json', Accept: 'text/event-stream' };
    if (o.apiKey) headers.Authorization = `Bearer ${o.apiKey}`;
    const path = o.mode === 'chat' ? '/v1/chat/completions' : '/v1/completions';
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), o.timeout * 1000);
    const t0 = performance.now();
    const since = () => (performance.now() - t0) / 1000;
    let usage = null;
    let done = false;
    try {
        const res = await fetch(o.url + path, {
            method: 'POST', headers, body: JSON.stringify(requestBody(o, prompt)), signal: ctl.signal,
        });
        r.status = res.status;
        if (res.status !== 200) {
            const text = (await res.text()).slice(0, 300).replace(/\s+/g, ' ');
            r.error = `HTTP ${res.status}: ${text}`;
            return r;
        }
        const type = res.headers.get('content-type') || '';
        if (!type.includes('text/event-stream')) {
            // A server that ignored "stream": one JSON answer; its first token time is unknown, so the
            // whole latency stands for TTFT.
            const j = JSON.parse(await res.text());
            r.latency = since();
            r.ttft = r.latency;
            const text = chunkText(j) || (j.choices?.[0]?.message?.content ?? '');
            if (j.usage && Number.isInteger(j.usage.completion_tokens)) {
                r.tokens = j.usage.completion_tokens;
                r.tokenSource = 'usage';
            } else {
                r.tokens = text.length > 0 ? 1 : 0;
            }
            r.ok = true;
            return r;
        }
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buf = '';
        let deltas = 0;
        // One SSE event: its data lines joined by '\n'. Returns false once the stream is over.
        const onEvent = (eventName, data) => {
            if (data === '[DONE]') {
                done = true;
                return false;
            }
            if (data === '') return true;
            let j;
            try {
                j = JSON.parse(data);
            } catch {
                throw new Error(`bad JSON in event: ${data.slice(0, 120)}`);
            }
            if (eventName === 'error' || j.error) throw new Error(`error event: ${errorText(j.error ?? j)}`);
            r.chunks++;
            if (j.usage && Number.isInteger(j.usage.completion_tokens)) usage = j.usage;
            const fin = j.choices?.[0]?.finish_reason;
            if (fin) r.finish = fin;
            if (chunkText(j).length > 0) {
                const t = since();
                if (r.firstAt === null) r.firstAt = t;
                r.lastAt = t;
                deltas++;
            }
            return true;
        };
        let open = true;
        while (open) {
            const { value, done: eof } = await reader.read();
            if (eof) break;
            buf += decoder.decode(value, { stream: true });
            // Events end at a blank line; lines end in \n, \r\n or \r (the SSE grammar).
            for (;;) {
                const m = /\r\n\r\n|\n\n|\r\r/.exec(buf);
                if (!m) break;
                const block = buf.slice(0, m.index);
                buf = buf.slice(m.index + m[0].length);
                let eventName = 'message';
                const data = [];
                for (const line of block.split(/\r\n|\n|\r/)) {
                    if (line === '' || line.startsWith(':')) continue;
                    const colon = line.indexOf(':');
                    const field = colon < 0 ? line : line.slice(0, colon);
                    let value2 = colon < 0 ? '' : line.slice(colon + 1);
                    if (value2.startsWith(' ')) value2 = value2.slice(1);
                    if (field === 'data') data.push(value2);
                    else if (field === 'event') eventName = value2;
                }
                if (data.length === 0) continue;
                if (!onEvent(eventName, data.join('\n'))) {
                    r.latency = since();
                    open = false;
                    break;
                }
            }
            if (buf.length > (16 << 20)) throw new Error('an event longer than 16 MiB');
        }
        if (open && buf.trim() !== '') throw new Error(`stream ended inside an event: ${buf.slice(0, 120)}`);
        // Drain what follows [DONE] so the connection goes back to the pool clean.
        if (!open) {
            for (;;) {
                const { done: eof } = await reader.read();
                if (eof) break;
            }
        }
        if (r.latency === null) r.latency = since();
        if (!done) throw new Error('stream ended without data: [DONE]');
        r.ttft = r.firstAt;
        if (usage) {
            r.tokens = usage.completion_tokens;
            r.tokenSource = 'usage';
            if (Number.isInteger(usage.prompt_tokens)) r.promptTokens = usage.prompt_tokens;
        } else {
            r.tokens = deltas;
        }
        r.ok = true;
    } catch (e) {
        r.error = ctl.signal.aborted ? `timed out after ${o.timeout} s` : errorText(e.cause ?? e);
        if (r.latency === null) r.latency = since();
    } finally {
        clearTimeout(timer);
    }
    return r;
}

// ---------------------------------------------------------------------------------------------------------
// Levels and statistics
// ---------------------------------------------------------------------------------------------------------

// Nearest-rank percentile of an ascending array (null when empty): the smallest value with at least p% of
// the values at or below it.
function percentile(sorted, p) {
    if (sorted.length === 0) return null;
    const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
    return sorted[Math.min(rank, sorted.length) - 1];
}

const ascending = (xs) => xs.filter((x) => x !== null && Number.isFinite(x)).sort((a, b) => a - b);

let requestCounter = 0;

function nextPrompt(o) {
    const n = requestCounter++;
    const p = o.prompts[n % o.prompts.length];
    return o.unique ? `[${n}] ${p}` : p;
}

// The server's engine counters (inferno serve's /metrics: forward steps and the scheduler thread's time by
// part), summed over models; null when the server has none (llama.cpp) or /metrics does not answer.
async function engineCounters(o) {
    const headers = {};
    if (o.apiKey) headers.Authorization = `Bearer ${o.apiKey}`;
    try {
        const res = await fetch(`${o.url}/metrics`, { headers, signal: AbortSignal.timeout(5000) });
        if (!res.ok) return null;
        const c = { steps: 0, forward: 0, sample: 0, output: 0, other: 0 };
        let seen = false;
        for (const line of (await res.text()).split('\n')) {
            let m = line.match(/^inferno_engine_steps_total\{[^}]*\} (\S+)$/);
            if (m) {
                c.steps += Number(m[1]);
                seen = true;
                continue;
            }
            m = line.match(/^inferno_engine_step_seconds_total\{[^}]*part="(\w+)"[^}]*\} (\S+)$/);
            if (m && m[1] in c) c[m[1]] += Number(m[2]);
        }
        return seen ? c : null;
    } catch {
        return null;
    }
}

// Per forward step of the level: the forward pass in ms and the scheduler's other parts in us.
function engineDelta(a, b) {
    if (!a || !b || b.steps <= a.steps) return null;
    const n = b.steps - a.steps;
    const r = (x, d) => Math.round(x * 10 ** d) / 10 ** d;
    const us = (k) => r(((b[k] - a[k]) / n) * 1e6, 1);
    return {
        steps: n, forward_ms_per_step: r(((b.forward - a.forward) / n) * 1e3, 3),
        sample_us_per_step: us('sample'), output_us_per_step: us('output'), other_us_per_step: us('other'),
        non_forward_us_per_step: r(us('sample') + us('output') + us('other'), 1),
    };
}

async function runLevel(o, concurrency) {
    const results = [];
    const load0 = os.loadavg()[0];
    const eng0 = await engineCounters(o);
    const t0 = performance.now();
    const deadline = o.duration > 0 ? t0 + o.duration * 1000 : Infinity;
    const stream = async () => {
        for (let k = 0; ; k++) {
            if (o.duration > 0 ? performance.now() >= deadline : k >= o.requestsPerStream) break;
            results.push(await runRequest(o, nextPrompt(o)));
        }
    };
    await Promise.all(Array.from({ length: concurrency }, stream));
    const wall = (performance.now() - t0) / 1000;
    const engine = engineDelta(eng0, await engineCounters(o));
    const good = results.filter((r) => r.ok);
    const bad = results.filter((r) => !r.ok);
    const tokens = good.reduce((s, r) => s + r.tokens, 0);
    const sources = new Set(good.map((r) => r.tokenSource));
    const ttft = ascending(good.map((r) => r.ttft));
    const lat = ascending(good.map((r) => r.latency));
    const perStream = ascending(good.filter((r) => r.latency > 0).map((r) => r.tokens / r.latency));
    const decode = ascending(good.filter((r) => r.tokens > 1 && r.lastAt > r.firstAt)
        .map((r) => (r.tokens - 1) / (r.lastAt - r.firstAt)));
    const ms = (x) => (x === null ? null : Math.round(x * 1e4) / 10);
    const spread = (xs) => ({
        p50: ms(percentile(xs, 50)), p99: ms(percentile(xs, 99)), max: ms(percentile(xs, 100)),
    });
    const finishes = {};
    for (const r of good) finishes[r.finish ?? 'none'] = (finishes[r.finish ?? 'none'] ?? 0) + 1;
    const round = (x, d = 2) => (x === null ? null : Math.round(x * 10 ** d) / 10 ** d);
    const errors = {};
    for (const r of bad) errors[r.error] = (errors[r.error] ?? 0) + 1;
    return {
        concurrency,
        requests: results.length,
        errors: bad.length,
        error_messages: errors,
        completion_tokens: tokens,
        tokens_from: sources.size === 1 ? [...sources][0] : sources.size === 0 ? 'none' : 'mixed',
        prompt_tokens: good.every((r) => r.promptTokens !== null)
            ? good.reduce((s, r) => s + r.promptTokens, 0) : null,
        wall_s: round(wall, 6), // microseconds: aggregate_tps must follow from it even for very short levels
        aggregate_tps: round(wall > 0 ? tokens / wall : 0),
        per_stream_tps_p50: round(percentile(perStream, 50)),
        decode_tps_p50: round(percentile(decode, 50)),
        ttft_ms: spread(ttft),
        latency_ms: spread(lat),
        finish_reasons: finishes,
        loadavg_1m: { before: round(load0), after: round(os.loadavg()[0]) },
        engine, // inferno only: the server's forward steps in the level and its time per step
    };
}

// ---------------------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------------------
function fmt(x, d = 1) {
    return x === null || x === undefined ? '-' : x.toFixed(d);
}

function table(report) {
    const head = ['streams', 'reqs', 'errors', 'tokens', 'wall s', 'agg tok/s', 'vs 1', 'stream tok/s',
        'decode tok/s', 'TTFT p50 ms', 'TTFT p99 ms', 'lat p50 ms', 'lat p99 ms', 'load 1m', 'steps',
        'fwd ms/step', 'non-fwd us/step'];
    const rows = report.levels.map((l) => [
        String(l.concurrency), String(l.requests), String(l.errors), String(l.completion_tokens),
        fmt(l.wall_s, 2),
        fmt(l.aggregate_tps), l.speedup === null ? '-' : fmt(l.speedup, 2) + 'x', fmt(l.per_stream_tps_p50),
        fmt(l.decode_tps_p50), fmt(l.ttft_ms.p50), fmt(l.ttft_ms.p99), fmt(l.latency_ms.p50),
        fmt(l.latency_ms.p99), `${fmt(l.loadavg_1m.before, 2)}/${fmt(l.loadavg_1m.after, 2)}`,
        l.engine ? String(l.engine.steps) : '-', fmt(l.engine?.forward_ms_per_step, 2),
        fmt(l.engine?.non_forward_us_per_step, 0),
    ]);
    const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (cells) => '| ' + cells.map((c, i) => (i === 0 ? c.padEnd(width[i]) : c.padStart(width[i])))
        .join(' | ') + ' |';
    // Markdown alignment: the first column left, the figures right.
    const rule = '|' + width.map((w, i) => '-'.repeat(w + 1) + (i === 0 ? '-' : ':')).join('|') + '|';
    const out = [line(head), rule];
    for (const r of rows) out.push(line(r));
    return out.join('\n');
}

// ---------------------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------------------
async function main() {
    const o = parseArgs(process.argv.slice(2));
    const log = (s) => process.stderr.write(s + '\n');
    const say = o.json ? log : (s) => process.stdout.write(s + '\n');
    const what = o.duration > 0 ? `${o.duration} s per stream` : `${o.requestsPerStream} requests per stream`;
    say(`loadgen: ${o.url} model=${o.model} /v1/${o.mode === 'chat' ? 'chat/completions' : 'completions'} ` +
        `max_tokens=${o.maxTokens} temperature=${o.temperature} ${what}, streams ${o.concurrency.join(',')}`);
    for (let i = 0; i < o.warmup; i++) {
        const r = await runRequest(o, nextPrompt(o));
        if (!r.ok) {
            log(`loadgen: warm-up request to ${o.url} failed: ${r.error}`);
            process.exit(2);
        }
    }
    const report = {
        tool: 'inferno bench/loadgen.mjs', url: o.url, model: o.model, endpoint: o.mode,
        max_tokens: o.maxTokens, temperature: o.temperature, ignore_eos: o.ignoreEos, unique_prompts: o.unique,
        prompts: o.prompts.length,
        requests_per_stream: o.duration > 0 ? null : o.requestsPerStream, duration_s: o.duration || null,
        warmup: o.warmup, label: o.label, started: new Date().toISOString(), host: os.hostname(),
        cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model ?? '', node: process.version, levels: [],
    };
    for (const c of o.concurrency) {
        const level = await runLevel(o, c);
        report.levels.push(level);
        log(`loadgen: ${c} streams: ${level.requests} requests, ${level.errors} errors, ` +
            `${level.aggregate_tps} tok/s aggregate, TTFT p50 ${level.ttft_ms.p50} ms`);
        for (const [msg, n] of Object.entries(level.error_messages)) log(`loadgen:   ${n} x ${msg}`);
    }
    const base = report.levels.find((l) => l.concurrency === 1);
    for (const l of report.levels) {
        const ratio = base && base.aggregate_tps > 0 ? l.aggregate_tps / base.aggregate_tps : null;
        l.speedup = ratio === null ? null : Math.round(ratio * 100) / 100;
    }
    const text = JSON.stringify(report, null, 2) + '\n';
    if (o.jsonOut) {
        try {
            fs.writeFileSync(o.jsonOut, text);
        } catch (e) {
            log(`loadgen: --json-out ${o.jsonOut}: ${e.message}`);
            process.exit(2);
        }
    }
    if (o.json) process.stdout.write(text);
    else say(table(report));
    const failed = report.levels.some((l) => l.errors > 0);
    process.exit(failed ? 1 : 0);
}

main().catch((e) => {
    process.stderr.write(`loadgen: ${e.stack ?? e}\n`);
    process.exit(2);
});
