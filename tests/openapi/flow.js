#!/usr/bin/env node
// flow.js SPEC BASE_URL - sends an integration flow to a real pipewright
// server (BASE_URL, e.g. http://127.0.0.1:8123, started by tests/openapi.sh
// on a copy of examples/iris with its runner) and validates every response
// against the OpenAPI document SPEC: the status must be documented for the
// operation (405 for a method a path does not list, 404 for a path the
// document does not have: components.responses), the Content-Type must be
// one of the documented media types, the body must match its schema (ajv,
// OpenAPI's nullable) and documented headers must parse. Every route is
// asked at least once, errors included; runs are real (trigger, wait for
// success, cancel, retry). Prints one line per request; exit 1 on any
// violation or when a step's expected status differs.
"use strict";
const SwaggerParser = require("@apidevtools/swagger-parser");
const Ajv = require("ajv");
const addFormats = require("ajv-formats");

const [specPath, base] = process.argv.slice(2);
let api, ajv, failed = 0, passed = 0;
const seen = new Set();

// The operation of method+path: [template, operation] or null. Literal
// segments win over parameters.
function findOperation(method, path) {
  const cands = Object.keys(api.paths).filter((t) => {
    const re = new RegExp("^" + t.replace(/[.+]/g, "\\$&").replace(/\{[^}]+\}/g, "[^/]+") + "$");
    return re.test(path);
  });
  cands.sort((a, b) => (a.match(/\{/g) || []).length - (b.match(/\{/g) || []).length);
  if (!cands.length) return { template: null, op: null };
  return { template: cands[0], op: api.paths[cands[0]][method.toLowerCase()] || null };
}

// The documented response for status, or null.
function responseSpec(method, path, status) {
  const { template, op } = findOperation(method, path.split("?")[0]);
  if (!template) return { key: "(no path)", spec: status === 404 ? api.components.responses.NotFound : null };
  if (!op) {
    return { key: `${template} (no ${method})`,
      spec: status === 405 ? api.components.responses.MethodNotAllowed : null };
  }
  seen.add(`${method} ${template}`);
  const r = op.responses[String(status)] || op.responses.default || null;
  return { key: `${method} ${template}`, spec: r };
}

function check(method, path, res, body) {
  const errs = [];
  const { key, spec } = responseSpec(method, path, res.status);
  if (!spec) return [`status ${res.status} is not documented for ${key}`];
  const ct = (res.headers.get("content-type") || "").split(";")[0].trim();
  if (spec.content) {
    const media = spec.content[ct];
    if (!media) errs.push(`Content-Type ${ct || "(none)"} is not one of ${Object.keys(spec.content)}`);
    else if (media.schema && ct === "application/json") {
      let json;
      try { json = JSON.parse(body); } catch (e) { errs.push(`body is not JSON: ${e.message}`); }
      if (json !== undefined) {
        const validate = ajv.compile(media.schema);
        if (!validate(json)) errs.push("body: " + ajv.errorsText(validate.errors, { separator: "; " }));
      }
    }
  } else if (body.length && res.status !== 204) {
    errs.push(`a body where none is documented (${body.length} bytes)`);
  }
  for (const [name, h] of Object.entries(spec.headers || {})) {
    const v = res.headers.get(name);
    if (v === null) { if (h.required) errs.push(`header ${name} missing`); continue; }
    if (h.schema && h.schema.type === "integer" && !/^\d+$/.test(v)) errs.push(`header ${name}: ${v} is not an integer`);
  }
  return errs;
}

// One request; want: the expected status (a number or an array). Returns the JSON body or the text.
async function req(method, path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  let body = opts.body;
  if (body !== undefined && typeof body !== "string") body = JSON.stringify(body);
  if (body !== undefined && !headers["Content-Type"]) headers["Content-Type"] = "application/json";
  const ctl = new AbortController();
  const res = await fetch(base + path, { method, headers, body, signal: ctl.signal, redirect: "manual" });
  let text = "";
  if (opts.keep) opts.keep.push(ctl);
  else if (opts.headOnly) ctl.abort();
  if (!opts.headOnly) text = await res.text();
  const errs = opts.headOnly ? checkHead(method, path, res) : check(method, path, res, text);
  const want = [].concat(opts.want || 200);
  if (!want.includes(res.status)) errs.push(`status ${res.status}, expected ${want.join(" or ")}`);
  const line = `${method} ${path} -> ${res.status}`;
  if (errs.length) {
    failed++;
    console.log(`not ok - ${line}\n    ${errs.join("\n    ")}\n    body: ${text.slice(0, 400)}`);
  } else {
    passed++;
    console.log(`ok - ${line}`);
  }
  if (opts.headOnly) return res.status;
  try { return JSON.parse(text); } catch (e) { return text; }
}

// A stream: documented status and media type only (the body never ends).
function checkHead(method, path, res) {
  const { key, spec } = responseSpec(method, path, res.status);
  if (!spec) return [`status ${res.status} is not documented for ${key}`];
  const ct = (res.headers.get("content-type") || "").split(";")[0].trim();
  return spec.content && !spec.content[ct] ? [`Content-Type ${ct} is not documented`] : [];
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitRun(dag, run, states) {
  for (let i = 0; i < 600; i++) {
    const r = await fetch(`${base}/api/v1/dags/${dag}/runs/${run}`).then((x) => x.json());
    if (r.data && states.includes(r.data.state)) return r.data.state;
    await sleep(100);
  }
  throw new Error(`run ${dag}/${run} never reached ${states}`);
}

async function waitTry(dag, run, task, tryNumber, states) {
  for (let i = 0; i < 600; i++) {
    const r = await fetch(`${base}/api/v1/dags/${dag}/runs/${run}/tasks/${task}`).then((x) => x.json());
    if (r.data && r.data.try_number >= tryNumber && states.includes(r.data.state)) return;
    await sleep(100);
  }
  throw new Error(`task ${dag}/${run}/${task} never reached try ${tryNumber} ${states}`);
}

async function flow() {
  // Kedro's endpoints.
  await req("GET", "/health");
  await req("GET", "/snapshot");
  await req("POST", "/run", { body: { pipeline_names: ["hello"] } });
  await req("POST", "/run", { body: { pipeline_names: ["no_such"] } });
  await req("POST", "/run", { body: { env: "prod" }, want: 422 });
  await req("POST", "/run", { body: { tags: "a", is_async: "maybe" }, want: 422 });
  await req("POST", "/run", { body: [], want: 422 });
  await req("POST", "/run", { body: "{not json", want: 422 });
  await req("POST", "/run", { body: { runner: "os.system x" }, want: 422 });
  // DAGs.
  await req("GET", "/api/v1/dags");
  await req("GET", "/api/v1/dags?tags=demo&paused=false&limit=2&offset=1");
  await req("GET", "/api/v1/dags?limit=0", { want: 400 });
  await req("GET", "/api/v1/dags/hello");
  // A detail's embedded list pages: limit, cursor, offset.
  const oneTask = await req("GET", "/api/v1/dags/hello?limit=1");
  if (oneTask.data.tasks.length !== 1) throw new Error("/api/v1/dags/hello?limit=1: not one task");
  if (oneTask.meta.next_cursor)
    await req("GET", `/api/v1/dags/hello?limit=1&cursor=${encodeURIComponent(oneTask.meta.next_cursor)}`);
  await req("GET", "/api/v1/dags/hello?offset=1");
  await req("GET", "/api/v1/dags/hello?limit=1001", { want: 400 });
  await req("GET", "/api/v1/dags/no_such", { want: 404 });
  await req("GET", "/api/v1/dags/bad%20id", { want: 404 });
  await req("PATCH", "/api/v1/dags/hello", { body: { is_paused: true } });
  await req("PATCH", "/api/v1/dags/hello", { body: { is_paused: false } });
  await req("PATCH", "/api/v1/dags/hello", { body: { is_paused: "no" }, want: 400 });
  await req("PATCH", "/api/v1/dags/hello", { body: { bogus: 1 }, want: 400 });
  await req("PATCH", "/api/v1/dags/hello", { body: "x=1", headers: { "Content-Type": "text/plain" }, want: 415 });
  await req("PATCH", "/api/v1/dags/no_such", { body: { is_paused: true }, want: 404 });
  await req("DELETE", "/api/v1/dags/hello", { want: 405 });
  await req("GET", "/api/v1/import-errors");
  // Runs: a real one to success.
  await req("POST", "/api/v1/dags/hello/runs", { body: { run_id: "flow1", conf: { n: 1 } }, want: 201 });
  await req("POST", "/api/v1/dags/hello/runs", { body: { run_id: "flow1" }, want: 409 });
  await req("POST", "/api/v1/dags/hello/runs", { body: { run_id: "flow x" }, want: 400 });
  await req("POST", "/api/v1/dags/hello/runs", { body: { task_ids: ["nope"] }, want: 400 });
  await req("POST", "/api/v1/dags/no_such/runs", { body: {}, want: 404 });
  await waitRun("hello", "flow1", ["success"]);
  await req("GET", "/api/v1/dags/hello/runs");
  await req("GET", "/api/v1/dags/hello/runs?state=success,failed&order_by=-queued_at&limit=1");
  // Keyset paging: the next page by cursor; a cursor the server did not make.
  const firstDags = await req("GET", "/api/v1/dags?limit=1");
  if (!firstDags.meta.next_cursor) throw new Error("/api/v1/dags?limit=1: no next_cursor");
  await req("GET", `/api/v1/dags?limit=1&cursor=${encodeURIComponent(firstDags.meta.next_cursor)}`);
  await req("GET", "/api/v1/dags?cursor=bogus", { want: 400 });
  await req("GET", `/api/v1/dags?offset=1&cursor=${encodeURIComponent(firstDags.meta.next_cursor)}`, { want: 400 });
  const firstRuns = await req("GET", "/api/v1/dags/~/runs?limit=1");
  if (firstRuns.meta.next_cursor)
    await req("GET", `/api/v1/dags/~/runs?limit=1&cursor=${encodeURIComponent(firstRuns.meta.next_cursor)}`);
  await req("GET", "/api/v1/dags/hello/runs?order_by=bogus", { want: 400 });
  await req("GET", "/api/v1/dags/hello/runs?since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z");
  await req("GET", "/api/v1/dags/hello/runs/flow1");
  const oneTi = await req("GET", "/api/v1/dags/hello/runs/flow1?limit=1");
  if (oneTi.meta.next_cursor)
    await req("GET", `/api/v1/dags/hello/runs/flow1?limit=1&cursor=${encodeURIComponent(oneTi.meta.next_cursor)}`);
  await req("GET", "/api/v1/dags/hello/runs/flow1?offset=1");
  await req("GET", "/api/v1/dags/hello/runs/flow1?limit=0", { want: 400 });
  await req("GET", "/api/v1/dags/hello/runs/no_such", { want: 404 });
  await req("DELETE", "/api/v1/dags/hello/runs/flow1", { want: 409 });
  await req("POST", "/api/v1/dags/hello/runs/flow1/retry", { want: 409 });
  await req("GET", "/api/v1/dags/hello/runs/flow1/tasks");
  await req("GET", "/api/v1/dags/hello/runs/flow1/tasks/greet");
  await req("GET", "/api/v1/dags/hello/runs/flow1/tasks/nope", { want: 404 });
  await req("GET", "/api/v1/dags/hello/runs/flow1/tasks/greet/xcom");
  await req("GET", "/api/v1/dags/hello/runs/flow1/tasks/greet/logs");
  await req("GET", "/api/v1/dags/hello/runs/flow1/tasks/greet/logs?try_number=1");
  await req("GET", "/api/v1/dags/hello/runs/flow1/tasks/greet/logs?try_number=x", { want: 400 });
  await req("GET", "/api/v1/dags/hello/runs/flow1/tasks/greet/logs?try_number=9", { want: 404 });
  // follow on a finished try: the whole log, and the answer ends at once.
  await req("GET", "/api/v1/dags/hello/runs/flow1/tasks/greet/logs?follow=true");
  await req("GET", "/api/v1/dags/hello/runs/flow1/tasks/greet/logs?follow=true&offset=2");
  await req("GET", "/api/v1/dags/hello/runs/flow1/tasks/greet/logs?follow=maybe", { want: 400 });
  await req("GET", "/api/v1/dags/hello/runs/flow1/tasks/greet/logs?offset=2", { want: 400 });
  await req("GET", "/api/v1/dags/hello/stats");
  await req("GET", "/api/v1/dags/never_seen/stats", { want: 404 });
  // Cancel a run that cannot start (its DAG paused), then retry it.
  await req("PATCH", "/api/v1/dags/hello", { body: { is_paused: true } });
  await req("POST", "/api/v1/dags/hello/runs", { body: { run_id: "flow2" }, want: 201 });
  await req("DELETE", "/api/v1/dags/hello/runs/flow2", { want: 202 });
  await waitRun("hello", "flow2", ["cancelled"]);
  await req("PATCH", "/api/v1/dags/hello", { body: { is_paused: false } });
  await req("POST", "/api/v1/dags/hello/runs/flow2/retry", { want: 202 });
  await waitRun("hello", "flow2", ["success"]);
  await req("GET", "/api/v1/dags/hello/runs/flow2");
  // The operations of every day: runs of every DAG, clear, mark, note,
  // source, graph, me, backfills, purge.
  await req("GET", "/api/v1/dags/~/runs");
  await req("GET", "/api/v1/dags/~/runs?dag_id=hello,iris_training&state=success&limit=1");
  await req("GET", "/api/v1/dags/~/runs?limit=0", { want: 400 });
  await req("POST", "/api/v1/dags/hello/runs/flow1/clear", { body: { task_ids: ["goodbye"], dry_run: true } });
  await req("POST", "/api/v1/dags/hello/runs/flow1/clear", { body: { task_ids: ["nope"] }, want: 400 });
  await req("POST", "/api/v1/dags/hello/runs/flow1/clear", { body: { task_ids: ["goodbye"] }, want: 202 });
  await req("POST", "/api/v1/dags/hello/runs/no_such/clear", { body: {}, want: 404 });
  await waitTry("hello", "flow1", "goodbye", 2, ["success"]);
  await waitRun("hello", "flow1", ["success"]);
  await req("PATCH", "/api/v1/dags/hello/runs/flow1/tasks/goodbye", { body: { state: "failed" } });
  await req("PATCH", "/api/v1/dags/hello/runs/flow1/tasks/goodbye", { body: { state: "running" }, want: 400 });
  await req("PATCH", "/api/v1/dags/hello/runs/flow1/tasks/nope", { body: { state: "success" }, want: 404 });
  await req("PATCH", "/api/v1/dags/hello/runs/flow1", { body: { note: "checked" } });
  await req("PATCH", "/api/v1/dags/hello/runs/flow1", { body: { state: "queued" }, want: 400 });
  await req("GET", "/api/v1/dags/hello/source");
  await req("GET", "/api/v1/dags/no_such/source", { want: 404 });
  await req("GET", "/api/v1/dags/hello/graph");
  await req("GET", "/api/v1/dags/hello/graph?format=dot&run_id=flow1");
  await req("GET", "/api/v1/dags/hello/graph?format=png", { want: 400 });
  await req("GET", "/api/v1/me");
  await req("POST", "/api/v1/dags/hello/backfills", { body: { from: "2026-01-01", to: "2026-01-02" }, want: 400 });
  await req("PATCH", "/api/v1/dags/data_quality", { body: { is_paused: true } });
  await req("POST", "/api/v1/dags/data_quality/backfills",
    { body: { from: "2026-01-01T00:00:00Z", to: "2026-01-01T02:00:00Z", max_active_runs: 1 }, want: 201 });
  await req("DELETE", "/api/v1/dags/hello/runs/flow2?purge=true", { want: 204 });
  await req("DELETE", "/api/v1/dags/hello/runs/flow2?purge=true", { want: 404 });
  // Pools.
  await req("GET", "/api/v1/pools");
  await req("POST", "/api/v1/pools", { body: { name: "flow_pool", slots: 2, description: "d" }, want: 201 });
  await req("POST", "/api/v1/pools", { body: { name: "flow_pool", slots: 2 }, want: 409 });
  await req("POST", "/api/v1/pools", { body: { name: "p", slots: -1 }, want: 400 });
  await req("GET", "/api/v1/pools/flow_pool");
  await req("PATCH", "/api/v1/pools/flow_pool", { body: { slots: 3 } });
  await req("PATCH", "/api/v1/pools/flow_pool", { body: { slots: "x" }, want: 400 });
  await req("DELETE", "/api/v1/pools/flow_pool", { want: 204 });
  await req("DELETE", "/api/v1/pools/default_pool", { want: 400 });
  await req("GET", "/api/v1/pools/no_such", { want: 404 });
  await req("PUT", "/api/v1/pools", { body: {}, want: 405 });
  // System.
  await req("GET", "/api/v1/metrics");
  await req("GET", "/metrics");
  await req("GET", "/api/v1/health");
  await req("GET", "/api/v1/version");
  await req("GET", "/api/v1/events?limit=5");
  const firstEvents = await req("GET", "/api/v1/events?limit=1");
  if (firstEvents.meta.next_cursor)
    await req("GET", `/api/v1/events?limit=1&cursor=${encodeURIComponent(firstEvents.meta.next_cursor)}`);
  await req("GET", "/api/v1/events?after_id=1&types=run.state&dag_id=hello");
  await req("GET", "/api/v1/events?after_id=-1", { want: 400 });
  await req("GET", "/api/v1/events?last_event_id=-1", { want: 400 });
  await req("GET", "/api/v1/events?last_event_id=abc", { want: 400 });
  await req("GET", "/api/v1/events?last_event_id=2");
  await req("GET", "/api/v1/events?types=nope", { want: 400 });
  await req("GET", "/api/v1/events?last_event_id=-1", { headers: { Accept: "text/event-stream" }, want: 400 });
  await req("GET", "/api/v1/events", { headers: { Accept: "text/event-stream" }, headOnly: true });
  await req("GET", "/api/v1/no_such", { want: 404 });
  await req("POST", "/api/v1/pools", { body: { name: "big", slots: 1, description: "x".repeat(1100000) }, want: 413 });
  // Streams held open until the process has no slot left: 503, Retry-After.
  const open = [];
  let st = 200;
  for (let i = 0; i < 16 && st === 200; i++) {
    st = await req("GET", "/api/v1/events", { headers: { Accept: "text/event-stream" },
      headOnly: true, keep: open, want: [200, 503] });
  }
  if (st === 503) {
    const body = await req("GET", "/api/v1/events", { headers: { Accept: "text/event-stream" }, want: 503 });
    if (!body || body.error === undefined) { failed++; console.log("not ok - the SSE 503 has no error envelope"); }
  } else {
    failed++;
    console.log("not ok - 16 open streams and no 503");
  }
  open.forEach((c) => c.abort());
}

async function main() {
  api = await SwaggerParser.dereference(specPath);
  ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  await flow();
  // Every operation of the document was asked.
  for (const [t, item] of Object.entries(api.paths))
    for (const m of ["get", "post", "patch", "delete", "put"])
      if (item[m] && !seen.has(`${m.toUpperCase()} ${t}`)) {
        failed++;
        console.log(`not ok - ${m.toUpperCase()} ${t} was never asked`);
      }
  console.log(`openapi flow: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.error(`openapi flow: ${e.stack || e}`); process.exit(1); });
