// meit serve page: pick or upload an ECG, draw it on an ECG grid, ask the server for the report.
// Plain JS, no libraries. Model text is only ever inserted with textContent.
"use strict";

const LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"];
const MM_PER_S = 25;        // paper speed
const MM_PER_MV = 10;       // gain
const BASE_PX_PER_MM = 3;   // at 100 % zoom
const ZOOMS = [0.5, 0.75, 1, 1.5, 2, 3, 4];

const $ = (id) => document.getElementById(id);
const state = { ecg: null, zoom: 2, reference: null };

function authHeaders() {
  const token = sessionStorage.getItem("meit-token") || "";
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...(options.headers || {}), ...authHeaders() } });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (response.status === 401) $("token-row").hidden = false;
  if (!response.ok) {
    const e = (body && body.error) || { message: response.statusText, field: null, expected: null };
    const err = new Error((e.field ? e.field + ": " : "") + e.message + (e.expected ? "\nexpected: " + e.expected : ""));
    err.status = response.status;
    throw err;
  }
  return body;
}

function showError(err) {
  const box = $("error");
  box.textContent = err ? (err.status ? "HTTP " + err.status + " — " : "") + err.message : "";
  box.hidden = !err;
}

function setBusy(text) {
  $("status").textContent = text || "";
  $("generate").disabled = Boolean(text);
}

// ------------------------------------------------------------------------------------------ drawing

function drawGrid(ctx, width, height, pxmm) {
  ctx.fillStyle = "#fffdfb";
  ctx.fillRect(0, 0, width, height);
  for (let mm = 0, x = 0; x <= width; mm++, x = mm * pxmm) {
    ctx.strokeStyle = mm % 5 === 0 ? "#f2a7a7" : "#fbe0e0";
    ctx.lineWidth = mm % 5 === 0 ? 1 : 0.5;
    ctx.beginPath(); ctx.moveTo(x + 0.5, 0); ctx.lineTo(x + 0.5, height); ctx.stroke();
  }
  for (let mm = 0, y = 0; y <= height; mm++, y = mm * pxmm) {
    ctx.strokeStyle = mm % 5 === 0 ? "#f2a7a7" : "#fbe0e0";
    ctx.lineWidth = mm % 5 === 0 ? 1 : 0.5;
    ctx.beginPath(); ctx.moveTo(0, y + 0.5); ctx.lineTo(width, y + 0.5); ctx.stroke();
  }
}

// one trace: samples [start, end) of a lead, placed at x0 (px) with its baseline at y0 (px)
function drawTrace(ctx, values, fs, start, end, x0, y0, pxmm) {
  const pxPerSample = (MM_PER_S * pxmm) / fs;
  const pxPerMv = MM_PER_MV * pxmm;
  ctx.beginPath();
  for (let i = start; i < end; i++) {
    const x = x0 + (i - start) * pxPerSample;
    const y = y0 - values[i] * pxPerMv;
    if (i === start) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  }
  ctx.stroke();
}

function calibration(ctx, x0, y0, pxmm) {  // the 1 mV, 200 ms box
  ctx.beginPath();
  ctx.moveTo(x0, y0); ctx.lineTo(x0 + pxmm, y0); ctx.lineTo(x0 + pxmm, y0 - 10 * pxmm);
  ctx.lineTo(x0 + 6 * pxmm, y0 - 10 * pxmm); ctx.lineTo(x0 + 6 * pxmm, y0); ctx.lineTo(x0 + 7 * pxmm, y0);
  ctx.stroke();
}

function drawEcg() {
  const ecg = state.ecg;
  const canvas = $("ecg");
  if (!ecg) return;
  const pxmm = BASE_PX_PER_MM * ZOOMS[state.zoom];
  const n = ecg.signal[0].length;
  const seconds = n / ecg.fs;
  const layout = $("layout").value;
  const margin = 10;                      // mm before the traces (calibration pulse)
  const rowMm = layout === "rows" ? 25 : 35;
  const rows = layout === "rows" ? 12 : 4;
  const widthMm = margin + Math.ceil((layout === "rows" ? seconds : Math.min(seconds, 10)) * MM_PER_S) + 5;
  const heightMm = rows * rowMm + 5;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(widthMm * pxmm * ratio);
  canvas.height = Math.round(heightMm * pxmm * ratio);
  canvas.style.width = (widthMm * pxmm) + "px";
  canvas.style.height = (heightMm * pxmm) + "px";
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  drawGrid(ctx, widthMm * pxmm, heightMm * pxmm, pxmm);
  ctx.strokeStyle = "#111"; ctx.lineWidth = Math.max(1, pxmm / 4); ctx.lineJoin = "round";
  ctx.fillStyle = "#111"; ctx.font = `${Math.max(10, 3 * pxmm)}px system-ui, sans-serif`;
  const x0 = margin * pxmm;
  const index = Object.fromEntries(ecg.leads.map((name, i) => [name, i]));
  if (layout === "rows") {
    LEADS.forEach((lead, r) => {
      const y0 = (r * rowMm + rowMm / 2 + 2) * pxmm;
      calibration(ctx, 1 * pxmm, y0, pxmm);
      drawTrace(ctx, ecg.signal[index[lead]], ecg.fs, 0, n, x0, y0, pxmm);
      ctx.fillText(lead, x0 + pxmm, y0 - 8 * pxmm);
    });
  } else {
    // 3 rows × 4 columns of 2.5 s each (columns: I-III, aVR-aVF, V1-V3, V4-V6), then lead II for 10 s
    const columnSeconds = Math.min(seconds, 10) / 4;
    const perColumn = Math.floor(columnSeconds * ecg.fs);
    for (let c = 0; c < 4; c++) {
      for (let r = 0; r < 3; r++) {
        const lead = LEADS[c * 3 + r];
        const y0 = (r * rowMm + rowMm / 2 + 2) * pxmm;
        const xs = x0 + c * columnSeconds * MM_PER_S * pxmm;
        if (c === 0) calibration(ctx, 1 * pxmm, y0, pxmm);
        drawTrace(ctx, ecg.signal[index[lead]], ecg.fs, c * perColumn, (c + 1) * perColumn, xs, y0, pxmm);
        ctx.fillText(lead, xs + pxmm, y0 - 8 * pxmm);
      }
    }
    const y0 = (3 * rowMm + rowMm / 2 + 2) * pxmm;
    calibration(ctx, 1 * pxmm, y0, pxmm);
    drawTrace(ctx, ecg.signal[index.II], ecg.fs, 0, Math.min(n, Math.floor(10 * ecg.fs)), x0, y0, pxmm);
    ctx.fillText("II", x0 + pxmm, y0 - 8 * pxmm);
  }
  $("zoom-label").textContent = Math.round(ZOOMS[state.zoom] * 100) + " %";
  const repaired = ecg.repairs && ecg.repairs.length ? " · repaired: " + ecg.repairs.join("; ") : "";
  $("plot-info").textContent = `${seconds.toFixed(2)} s at ${ecg.fs} Hz (${ecg.kind || "example"})${repaired}`;
  canvas.dataset.drawn = "1";
}

// ------------------------------------------------------------------------------------------ requests

// the request for /v1/ecg and /v1/report: {json} or {form}
async function buildRequest() {
  const files = Array.from($("files").files);
  const question = $("question").value.trim();
  if (files.length) {
    const json = files.find((f) => f.name.toLowerCase().endsWith(".json"));
    if (json) {
      const payload = JSON.parse(await json.text());
      if (question) payload.question = question;
      return { json: payload };
    }
    const form = new FormData();
    for (const f of files) {
      const name = f.name.toLowerCase();
      if (name.endsWith(".hea")) form.append("hea", f, f.name);
      else if (name.endsWith(".dat")) form.append("dat", f, f.name);
      else if (name.endsWith(".npy")) { form.append("npy", f, f.name); form.append("fs", $("fs").value); }
    }
    if (question) form.append("question", question);
    return { form };
  }
  const name = $("example").value;
  if (!name) throw new Error("pick an example ECG or upload a file");
  const example = await api("/v1/examples/" + encodeURIComponent(name));
  state.reference = example.reference;
  const payload = { fs: example.fs, leads: example.leads, signal: example.signal };
  if (question) payload.question = question;
  return { json: payload, drawn: example };
}

function post(path, request) {
  if (request.json) {
    return api(path, { method: "POST", headers: { "Content-Type": "application/json" },
                       body: JSON.stringify(request.json) });
  }
  return api(path, { method: "POST", body: request.form });
}

function fillList(element, items, render) {
  element.replaceChildren();
  for (const item of items) element.appendChild(render(item));
}

function showResult(result) {
  $("result-panel").hidden = false;
  $("report").textContent = result.report || "(empty report)";
  $("answer-box").hidden = !result.answer;
  if (result.answer) {
    $("answer-question").textContent = "Q: " + result.answer.question;
    $("answer").textContent = result.answer.text || "(empty answer)";
  }
  $("reference-box").hidden = !state.reference;
  $("reference").textContent = state.reference || "";
  fillList($("findings"), result.findings.length ? result.findings : ["none"], (f) => {
    const li = document.createElement("li"); li.textContent = f.replaceAll("_", " "); return li;
  });
  const v = result.verification;
  $("verify-box").hidden = !v;
  if (v) {
    const body = $("verdicts").querySelector("tbody");
    body.replaceChildren();
    for (const s of v.statements || []) {
      const tr = document.createElement("tr");
      const measured = s.measured ? Object.entries(s.measured).map(([k, x]) => `${k} ${x}`).join(", ")
        : (s.evidence && s.evidence.reason) || "";
      for (const [text, cls] of [[s.text, ""], [(s.negated ? "not " : "") + s.finding, ""],
                                 [s.verdict.replace("_", " "), s.verdict], [measured, ""]]) {
        const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    $("verdicts").hidden = !(v.statements || []).length;
    $("verify-note").textContent = v.error ? "verification unavailable: " + v.error
      : (v.statements || []).length ? "" : "no statement in the report that the measurements can check";
  }
  $("similar-box").hidden = !result.similar;
  if (result.similar) {
    fillList($("similar"), result.similar, (hit) => {
      const li = document.createElement("li");
      li.textContent = `${hit.report}  (case ${hit.id}, similarity ${hit.score.toFixed(3)})`;
      return li;
    });
  }
  const t = result.timing;
  $("timing").textContent = `queue ${t.queue_ms} ms · preprocess ${t.preprocess_ms} ms · generate ${t.generate_ms} ms` +
    ` (batch of ${t.batch_rows} rows, ${t.batch_requests} requests) · total ${t.total_ms} ms · ` +
    `greedy, max ${result.decoding.max_new_tokens} new tokens`;
}

async function run() {
  showError(null);
  state.reference = null;
  try {
    setBusy("reading the ECG…");
    const request = await buildRequest();
    if (request.drawn) {
      state.ecg = { ...request.drawn, kind: "example" };
    } else {
      state.ecg = await post("/v1/ecg", request);
    }
    drawEcg();
    setBusy("generating the report…");
    showResult(await post("/v1/report", request));
  } catch (err) {
    showError(err);
  } finally {
    setBusy("");
  }
}

async function init() {
  $("generate").addEventListener("click", run);
  $("layout").addEventListener("change", drawEcg);
  $("zoom-in").addEventListener("click", () => { state.zoom = Math.min(ZOOMS.length - 1, state.zoom + 1); drawEcg(); });
  $("zoom-out").addEventListener("click", () => { state.zoom = Math.max(0, state.zoom - 1); drawEcg(); });
  $("files").addEventListener("change", () => {
    const files = Array.from($("files").files);
    $("fs-row").hidden = !files.some((f) => f.name.toLowerCase().endsWith(".npy"));
    if (files.length) $("example").value = "";
  });
  $("token").addEventListener("change", () => { sessionStorage.setItem("meit-token", $("token").value); init(); });
  try {
    const model = await api("/v1/model");
    const card = model.model_card || {};
    const backbone = (card.backbone && (card.backbone.name || card.backbone.id)) || "?";
    $("model-line").textContent = `model: ${backbone} (${model.source}) · ` +
      `greedy, max ${model.serving.decoding.max_new_tokens} new tokens` +
      (model.serving.retrieval ? ` · similar cases from ${model.serving.retrieval.rows} indexed ECGs` : "");
    const examples = await api("/v1/examples");
    const select = $("example");
    select.querySelectorAll("option[data-example]").forEach((o) => o.remove());
    for (const e of examples.examples) {
      const option = document.createElement("option");
      option.value = e.name; option.textContent = e.title; option.dataset.example = "1";
      select.appendChild(option);
    }
  } catch (err) {
    $("model-line").textContent = "";
    showError(err);
  }
}

init();
