// The page `ctrlgen export MODEL --web DIR` writes: generate from a ctrlgen ONNX model in the
// visitor's browser with onnxruntime-web (the global `ort`, loaded before this file).
//
// * The spec is read from the model file itself: ONNX ModelProto.metadata_props, key
//   "ctrlgen.spec" (a tiny protobuf walk below), so the .onnx file stays the one source of truth.
// * Latents come from one documented generator that ctrlgen.webpage implements too, so Python
//   reproduces a page's picture from its seed: mulberry32(seed) gives uint32 u; a uniform is
//   (u + 0.5) / 2^32; a normal is sqrt(-2 ln u1) * cos(2 pi u2) (Box-Muller, one value per pair).
//   Per sample, in order: z (noise_dim values), then the label (floor(uniform * n_classes)), then
//   each categorical code (floor(uniform * n)), then each continuous code (low + (high - low) *
//   uniform).  Everything is always drawn; fixed values replace the drawn ones afterwards.
// * Text from the file (label and code names) reaches the page only through textContent.
"use strict";
(() => {
  const MODEL_URL = "model.onnx";
  const SPEC_KEY = "ctrlgen.spec", CARD_KEY = "ctrlgen.card";
  const MAX_COUNT = 1024;
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ ONNX metadata
  function varint(buf, pos) {
    let value = 0, scale = 1, byte;
    do {
      if (pos >= buf.length) throw new Error("the model file is truncated");
      byte = buf[pos++];
      value += (byte & 0x7f) * scale;
      scale *= 128;
    } while (byte & 0x80);
    return [value, pos];
  }

  // The length-delimited fields [number, start, end] of one protobuf message; other wire types skipped.
  function messageFields(buf, start, end) {
    const out = [];
    let pos = start;
    while (pos < end) {
      let key, len;
      [key, pos] = varint(buf, pos);
      const wire = key % 8, number = Math.floor(key / 8);
      if (wire === 0) [, pos] = varint(buf, pos);
      else if (wire === 1) pos += 8;
      else if (wire === 5) pos += 4;
      else if (wire === 2) {
        [len, pos] = varint(buf, pos);
        out.push([number, pos, pos + len]);
        pos += len;
      } else throw new Error("the model file is not an ONNX file");
    }
    if (pos !== end) throw new Error("the model file is not an ONNX file");
    return out;
  }

  // ModelProto field 14: metadata_props, each a StringStringEntryProto {1: key, 2: value}.
  function onnxMetadata(bytes) {
    const text = new TextDecoder(), meta = new Map();
    for (const [number, start, end] of messageFields(bytes, 0, bytes.length)) {
      if (number !== 14) continue;
      let key = "", value = "";
      for (const [n, s, e] of messageFields(bytes, start, end)) {
        if (n === 1) key = text.decode(bytes.subarray(s, e));
        else if (n === 2) value = text.decode(bytes.subarray(s, e));
      }
      meta.set(key, value);
    }
    return meta;
  }

  function inputNames(spec) {
    const names = ["z"];
    if (spec.labels.length) names.push("label");
    if (spec.categorical.length) names.push("code_cat");
    if (spec.continuous.length) names.push("code_cont");
    return names;
  }

  // ------------------------------------------------------------------ latents (mirrored in ctrlgen/webpage.py)
  function mulberry32(seed) {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (t ^ (t >>> 14)) >>> 0;
    };
  }

  // fixed: {labels: null | int | int[n], cat: {index: int}, cont: {index: float}}
  function sampleInputs(spec, n, seed, fixed = {}) {
    const next = mulberry32(seed);
    const uniform = () => (next() + 0.5) / 4294967296;
    const d = spec.noise_dim, cats = spec.categorical, conts = spec.continuous, k = spec.labels.length;
    const z = new Float32Array(n * d), label = new Array(n).fill(0);
    const cat = new Array(n * cats.length).fill(0), cont = new Float32Array(n * conts.length);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < d; j++) {
        if (spec.noise === "uniform") z[i * d + j] = -1 + 2 * uniform();
        else {
          const u1 = uniform(), u2 = uniform();
          z[i * d + j] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
        }
      }
      if (k) label[i] = Math.floor(uniform() * k);
      cats.forEach((c, j) => { cat[i * cats.length + j] = Math.floor(uniform() * c.n); });
      conts.forEach((c, j) => { cont[i * conts.length + j] = c.low + (c.high - c.low) * uniform(); });
    }
    const fixedCat = fixed.cat || {}, fixedCont = fixed.cont || {};
    for (let i = 0; i < n; i++) {
      if (Array.isArray(fixed.labels)) label[i] = fixed.labels[i];
      else if (fixed.labels != null) label[i] = fixed.labels;
      for (const j in fixedCat) cat[i * cats.length + Number(j)] = fixedCat[j];
      for (const j in fixedCont) cont[i * conts.length + Number(j)] = fixedCont[j];
    }
    const out = { z };
    if (k) out.label = label;
    if (cats.length) out.code_cat = cat;
    if (conts.length) out.code_cont = cont;
    return out;
  }

  function tensors(spec, inputs, n) {
    const feeds = { z: new ort.Tensor("float32", inputs.z, [n, spec.noise_dim]) };
    if (inputs.label) feeds.label = new ort.Tensor("int64", BigInt64Array.from(inputs.label, BigInt), [n]);
    if (inputs.code_cat) feeds.code_cat = new ort.Tensor("int64", BigInt64Array.from(inputs.code_cat, BigInt), [n, spec.categorical.length]);
    if (inputs.code_cont) feeds.code_cont = new ort.Tensor("float32", inputs.code_cont, [n, spec.continuous.length]);
    return feeds;
  }

  // ------------------------------------------------------------------ pictures
  // Same as ctrlgen.images.to_uint8: (x + 1) * 127.5 in float32, clipped, rounded half to even.
  function toByte(x) {
    const v = Math.min(255, Math.max(0, Math.fround(Math.fround(x + 1) * 127.5)));
    let r = Math.round(v);
    if (r - v === 0.5 && r % 2 === 1) r -= 1;
    return r;
  }

  // Same layout as ctrlgen.images.grid (2 px black padding, row-major), upscaled by `scale`.
  function drawGrid(canvas, data, n, shape, ncol, scale) {
    const [c, h, w] = shape, pad = 2;
    ncol = Math.max(1, Math.min(ncol, n));
    const rows = Math.max(1, Math.ceil(n / ncol));
    const gw = ncol * (w + pad) + pad, gh = rows * (h + pad) + pad;
    canvas.width = gw * scale;
    canvas.height = gh * scale;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(canvas.width, canvas.height);
    for (let p = 3; p < img.data.length; p += 4) img.data[p] = 255;
    for (let i = 0; i < n; i++) {
      const y0 = pad + Math.floor(i / ncol) * (h + pad), x0 = pad + (i % ncol) * (w + pad);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
        const rgb = [0, 1, 2].map((ch) => toByte(data[((i * c + (c === 1 ? 0 : ch)) * h + y) * w + x]));
        for (let dy = 0; dy < scale; dy++) for (let dx = 0; dx < scale; dx++) {
          const q = (((y0 + y) * scale + dy) * canvas.width + (x0 + x) * scale + dx) * 4;
          img.data[q] = rgb[0]; img.data[q + 1] = rgb[1]; img.data[q + 2] = rgb[2];
        }
      }
    }
    ctx.putImageData(img, 0, 0);
  }

  function drawPoints(canvas, data, n, dims) {
    const size = 480;
    canvas.width = canvas.height = size;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, size, size);
    let extent = 1e-3;
    for (let i = 0; i < n * dims; i++) if (Number.isFinite(data[i])) extent = Math.max(extent, Math.abs(data[i]) * 1.25);
    ctx.fillStyle = "rgb(30,80,200)";
    for (let i = 0; i < n; i++) {
      const x = data[i * dims], y = data[i * dims + 1];
      if (Number.isFinite(x) && Number.isFinite(y)) ctx.fillRect((x / extent * 0.5 + 0.5) * (size - 1), (0.5 - y / extent * 0.5) * (size - 1), 2, 1);
    }
  }

  // ------------------------------------------------------------------ controls
  function field(text, input) {
    const wrap = document.createElement("label");
    wrap.append(document.createTextNode(text), input);
    $("controls").append(wrap);
    return input;
  }

  function select(text, options) {
    const el = document.createElement("select");
    for (const [value, name] of options) {
      const o = document.createElement("option");
      o.value = value;
      o.textContent = name;
      el.append(o);
    }
    return field(text, el);
  }

  function number(text, attrs) {
    const el = document.createElement("input");
    el.type = "number";
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    return field(text, el);
  }

  function buildControls(spec, params) {
    const c = { cat: [], cont: [] };
    if (spec.labels.length) {
      c.label = select("label", [["all", "all (a row per class)"], ["random", "random"], ...spec.labels.map((name, i) => [String(i), name])]);
      const want = (params.get("label") || "all").toLowerCase();
      const i = spec.labels.findIndex((name) => name.toLowerCase() === want);
      c.label.value = i >= 0 ? String(i) : ["all", "random"].includes(want) || /^\d+$/.test(want) ? want : "all";
      if (!c.label.value) c.label.value = "all";
    }
    spec.categorical.forEach((code) => {
      const el = select(`${code.name} (categorical)`, [["random", "random"], ...Array.from({ length: code.n }, (_, v) => [String(v), String(v)])]);
      el.value = params.get(`cat.${code.name}`) || "random";
      if (!el.value) el.value = "random";
      c.cat.push(el);
    });
    spec.continuous.forEach((code) => {
      const el = number(`${code.name} [${code.low}, ${code.high}]`, { min: code.low, max: code.high, step: (code.high - code.low) / 20, placeholder: "random" });
      el.value = params.get(`cont.${code.name}`) || "";
      c.cont.push(el);
    });
    c.seed = number("seed", { min: 0, max: 4294967295, step: 1 });
    c.seed.value = params.get("seed") || "0";
    c.count = number("count", { min: 1, max: MAX_COUNT, step: 1 });
    c.count.value = params.get("n") || "64";
    c.button = document.createElement("button");
    c.button.textContent = "Generate";
    c.button.id = "generate";
    $("controls").append(c.button);
    return c;
  }

  // The controls as a request: {n, seed, labels, cat, cont, ncol}; throws a one-line message on bad input.
  function readControls(spec, c) {
    const seed = Number(c.seed.value), count = Number(c.count.value);
    if (!Number.isInteger(seed) || seed < 0 || seed > 4294967295) throw new Error("seed must be an integer in 0..4294967295");
    if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) throw new Error(`count must be an integer in 1..${MAX_COUNT}`);
    const req = { n: count, seed, labels: null, cat: {}, cont: {}, ncol: Math.ceil(Math.sqrt(count)) };
    if (c.label && c.label.value === "all") {
      const k = spec.labels.length, per = Math.max(1, Math.floor(count / k));
      req.n = per * k;
      req.ncol = per;
      req.labels = Array.from({ length: req.n }, (_, i) => Math.floor(i / per));
    } else if (c.label && c.label.value !== "random") req.labels = Number(c.label.value);
    c.cat.forEach((el, j) => { if (el.value !== "random") req.cat[j] = Number(el.value); });
    c.cont.forEach((el, j) => {
      if (el.value.trim() === "") return;
      const v = Number(el.value), code = spec.continuous[j];
      if (!Number.isFinite(v) || v < code.low || v > code.high) throw new Error(`${code.name} must be a number in [${code.low}, ${code.high}] or empty for random`);
      req.cont[j] = v;
    });
    return req;
  }

  function shareUrl(spec, c) {
    const p = new URLSearchParams({ seed: c.seed.value, n: c.count.value });
    if (c.label) p.set("label", c.label.value);
    c.cat.forEach((el, j) => { if (el.value !== "random") p.set(`cat.${spec.categorical[j].name}`, el.value); });
    c.cont.forEach((el, j) => { if (el.value.trim() !== "") p.set(`cont.${spec.continuous[j].name}`, el.value.trim()); });
    return `?${p}`;
  }

  function status(text, error = false) {
    $("status").textContent = text;
    $("status").className = error ? "error" : "";
  }

  // ------------------------------------------------------------------ main
  async function load() {
    if (typeof ort === "undefined") throw new Error("onnxruntime-web did not load (check the ORT script URL this page was written with)");
    const response = await fetch(MODEL_URL);
    if (!response.ok) throw new Error(`cannot fetch ${MODEL_URL} (HTTP ${response.status}); serve this folder over HTTP`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const meta = onnxMetadata(bytes);
    if (!meta.has(SPEC_KEY)) throw new Error(`${MODEL_URL} has no ${SPEC_KEY} metadata; it is not a ctrlgen model`);
    const spec = JSON.parse(meta.get(SPEC_KEY));
    let card = {};
    try { card = JSON.parse(meta.get(CARD_KEY) || "{}"); } catch (e) { card = {}; }
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
    const want = inputNames(spec).join(","), got = session.inputNames.join(",");
    if (want !== got) throw new Error(`the graph's inputs (${got}) do not match its spec (${want}); re-export the model`);
    return { spec, card, session };
  }

  async function run(model, req) {
    const inputs = sampleInputs(model.spec, req.n, req.seed, req);
    const result = await model.session.run(tensors(model.spec, inputs, req.n));
    return { inputs, output: result.sample.data, dims: result.sample.dims };
  }

  function show(model, req, res) {
    const canvas = $("grid"), spec = model.spec;
    const shape = spec.output.shape;
    if (spec.output.kind === "image") drawGrid(canvas, res.output, req.n, shape, req.ncol, Math.max(1, Math.floor(96 / shape[1])));
    else drawPoints(canvas, res.output, req.n, shape[0]);
    const link = $("download");
    link.href = canvas.toDataURL("image/png");
    link.hidden = false;
  }

  const api = { sampleInputs, onnxMetadata, toByte };
  window.ctrlgen = api;
  api.ready = (async () => {
    const params = new URLSearchParams(window.location.search);
    try {
      const model = await load();
      api.spec = model.spec;
      api.card = model.card;
      if (model.card.name) $("title").textContent = String(model.card.name);
      const controls = buildControls(model.spec, params);
      // generate(req) for scripts: {n, seed, labels, cat, cont} -> plain arrays of the inputs and the output
      api.generate = async (req) => {
        const res = await run(model, { labels: null, cat: {}, cont: {}, ...req });
        const plain = Object.fromEntries(Object.entries(res.inputs).map(([k, v]) => [k, Array.from(v)]));
        return { inputs: plain, output: Array.from(res.output), dims: Array.from(res.dims) };
      };
      const click = async () => {
        controls.button.disabled = true;
        try {
          const req = readControls(model.spec, controls);
          status(`generating ${req.n} samples…`);
          const t0 = performance.now();
          const res = await run(model, req);
          show(model, req, res);
          history.replaceState(null, "", shareUrl(model.spec, controls));
          status(`${req.n} samples, seed ${req.seed}, in ${Math.round(performance.now() - t0)} ms`);
          api.last = { request: req, inputs: res.inputs, output: res.output, dims: res.dims, count: (api.last ? api.last.count : 0) + 1 };
        } catch (e) {
          status(String(e.message || e), true);
        } finally {
          controls.button.disabled = false;
        }
      };
      controls.button.addEventListener("click", click);
      await click();
    } catch (e) {
      status(String(e.message || e), true);
      throw e;
    }
  })();
})();
