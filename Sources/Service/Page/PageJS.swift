extension PageAssets {
    static let js = #"""
'use strict';
// bootmae-serve's page: one image, one model, every endpoint that model serves.
// Nothing is stored: the API key lives in `state.key` until the page is closed.
const $ = (id) => document.getElementById(id);
const state = {
  key: '', models: [], model: null, image: null, // image: {dataURI, name}
  mask: null,          // explicit mask (patch indices) once the user toggles a patch; null: drawn from ratio/seed
  shownMask: [], grid: 0, focus: 0,
  curls: {}, seq: { recon: 0, cls: 0, emb: 0, tok: 0 }, busy: 0,
  tok: { grid: 0, codes: [], counts: new Map(), marked: null, tooSmall: false }, // the code grid on screen
  picked: false,       // the user chose a model in the list: never switch it for them
};

// ---- calls ----------------------------------------------------------------------------------
function shellQuote(s) { return "'" + String(s).replace(/'/g, "'\\''") + "'"; }

function curlFor(method, path, body, accept) {
  const parts = ['curl -s'];
  if (method !== 'GET' && body === undefined) parts.push('-X ' + method);
  parts.push(shellQuote(location.origin + path));
  if (state.key) parts.push('-H "Authorization: Bearer $BOOTMAE_API_KEY"');
  if (accept) parts.push('-H ' + shellQuote('Accept: ' + accept));
  if (body !== undefined) {
    parts.push("-H 'Content-Type: application/json'");
    parts.push('-d ' + shellQuote(JSON.stringify(body)));
  }
  return parts.join(' \\\n  ');
}

// Long base64 strings are shortened on screen; "Copy as curl" copies the whole command.
function shorten(text) {
  return text.replace(/[A-Za-z0-9+\/=]{120,}/g, (m) => m.slice(0, 24) + '…(' + m.length + ' characters)…' + m.slice(-8));
}

class APIError extends Error {
  constructor(status, body) {
    const e = body && body.error;
    super(e && e.message ? e.message : 'HTTP ' + status + ' with no error body');
    this.status = status; this.detail = e || null;
  }
}

async function call(name, method, path, body, accept) {
  if (name) {
    state.curls[name] = curlFor(method, path, body, accept);
    const pre = $(name + '-curl');
    if (pre) pre.textContent = shorten(state.curls[name]);
  }
  const headers = {};
  if (state.key) headers['Authorization'] = 'Bearer ' + state.key;
  if (accept) headers['Accept'] = accept;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  setBusy(+1);
  try {
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (!res.ok) throw new APIError(res.status, data);
    return data;
  } finally {
    setBusy(-1);
  }
}

function setBusy(delta) {
  state.busy += delta;
  document.body.dataset.busy = String(state.busy);
}

// ---- errors and small renderers ---------------------------------------------------------------
function showError(err, where) {
  const box = $('error');
  box.replaceChildren();
  if (!err) { box.hidden = true; return; }
  const strong = document.createElement('strong');
  strong.textContent = (where ? where + ': ' : '') + err.message;
  box.append(strong);
  if (err.detail) {
    const d = err.detail, meta = document.createElement('div');
    meta.className = 'small';
    const code = document.createElement('code');
    code.textContent = [err.status, d.type, d.code, d.param ? 'param ' + d.param : null].filter(Boolean).join(' · ');
    meta.append(code);
    box.append(meta);
  }
  box.hidden = false;
}

function renderWarnings(id, warnings) {
  const list = $(id);
  list.replaceChildren(...(warnings || []).map((w) => {
    const li = document.createElement('li');
    const code = document.createElement('code');
    code.textContent = w.code;
    li.append(code, ': ' + w.message);
    return li;
  }));
}

function renderOOD(id, ood) {
  const box = $(id);
  box.replaceChildren();
  if (!ood) return;
  const p = document.createElement('p');
  p.className = 'ood';
  const meter = document.createElement('meter');
  // The feature-space score, where there is one, is the one that warns: the meter shows it.
  const f = ood.feature_space;
  meter.min = 0; meter.max = 100; meter.low = 90; meter.high = 99; meter.optimum = 0; meter.value = f ? f.percentile : ood.percentile;
  meter.setAttribute('aria-label', 'out-of-distribution percentile');
  const reconstruction = 'masked-patch error ' + ood.masked_patch_mse.toFixed(4) + ': ' + ood.percentile.toFixed(1) + 'th percentile of '
    + ood.calibration_images + ' held-out training-distribution images';
  if (f) {
    p.append('Out-of-distribution score: ', meter, ' ' + f.percentile.toFixed(1) + 'th percentile of ' + f.calibration_images
      + ' held-out images by the distance to the k-th nearest of ' + f.bank_images + ' training embeddings (k = ' + f.k + ': '
      + f.distance.toFixed(3) + '; ' + reconstruction + '; measured by ' + ood.reference_model + ')');
  } else {
    p.append('Out-of-distribution score: ', meter, ' ' + ood.percentile.toFixed(1) + 'th percentile of ' + ood.calibration_images
      + ' held-out training-distribution images (masked-patch error ' + ood.masked_patch_mse.toFixed(4) + ', measured by ' + ood.reference_model + ')');
  }
  box.append(p);
}

function setCard(id, s) { $(id).dataset.state = s; }

// ---- models --------------------------------------------------------------------------------------
async function loadModels() {
  const select = $('model');
  try {
    const list = await call(null, 'GET', '/v1/models');
    state.models = list.data;
    showError(null);
  } catch (err) {
    state.models = [];
    select.replaceChildren(new Option('(no models: ' + err.message + ')', ''));
    showError(err, 'GET /v1/models');
    return;
  }
  const previous = state.model && state.model.id;
  select.replaceChildren(...state.models.map((m) => new Option(m.id + ' — ' + m.capabilities.join(', '), m.id)));
  // The Tokens card only where some served model tokenizes: nothing to try otherwise.
  $('tok-card').hidden = !state.models.some((m) => m.capabilities.includes('tokenize'));
  const chosen = state.models.find((m) => m.id === previous) || state.models.find((m) => m.default) || state.models[0];
  if (chosen) select.value = chosen.id;
  selectModel();
}

function selectModel(run = true) {
  state.model = state.models.find((m) => m.id === $('model').value) || null;
  state.mask = null;
  const m = state.model, info = $('model-info');
  if (!m) { info.textContent = ''; return; }
  const a = m.architecture || {}, ii = m.intended_input;
  const bits = [a.img_size + ' px, ' + (a.in_chans === 1 ? 'grayscale' : 'RGB') + ', ' + (a.img_size / a.patch_size) + '×' + (a.img_size / a.patch_size) + ' patches'];
  if (ii && ii.domain) bits.push('made for: ' + ii.domain);
  if (!m.capabilities.includes('classify')) bits.push('no labels');
  info.textContent = bits.join(' · ');
  if (m.reconstruction) {
    $('ratio').value = String(Math.round(m.reconstruction.default_mask_ratio * 20) / 20);
    $('ratio-out').textContent = Number($('ratio').value).toFixed(2);
  }
  if (run) runAll();
}

// A colour photo on a grayscale model is a 28-px gray thumbnail to it: until the user picks a model,
// an image goes to a model made for its kind (colour or grayscale) that reconstructs, as the server
// does for a request that names no model. Colourful: as the server's check, more than 0.5% of pixels
// with channels more than 24 apart (here on a 64×64 copy).
function isColourful(img) {
  const c = document.createElement('canvas'); c.width = 64; c.height = 64;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0, 64, 64);
  const px = g.getImageData(0, 0, 64, 64).data;
  let coloured = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (Math.max(px[i], px[i + 1], px[i + 2]) - Math.min(px[i], px[i + 1], px[i + 2]) > 24) coloured++;
  }
  return coloured * 200 > 64 * 64;
}

function matchModelToImage(dataURI) {
  return new Promise((resolve) => {
    if (state.picked || !state.model) return resolve();
    const img = new Image();
    img.onload = () => {
      const channels = isColourful(img) ? 3 : 1;
      const current = state.model, takes = (m) => (m.architecture || {}).in_chans === channels;
      const fit = state.models.find((m) => m.default && takes(m) && m.capabilities.includes('reconstruct'))
        || state.models.find((m) => takes(m) && m.capabilities.includes('reconstruct'));
      if (!takes(current) && fit) {
        $('model').value = fit.id;
        selectModel(false);
        $('model-info').textContent += ' · chosen for this ' + (channels === 3 ? 'colour' : 'grayscale') + ' image (pick another above)';
      }
      resolve();
    };
    img.onerror = () => resolve();
    img.src = dataURI;
  });
}

// ---- image input ---------------------------------------------------------------------------------
function readFile(file) {
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    state.image = { dataURI: String(reader.result), name: file.name || 'pasted image' };
    state.mask = null;
    const preview = $('preview');
    preview.onload = () => preview.classList.toggle('small', preview.naturalWidth < 112 && preview.naturalHeight < 112);
    preview.src = state.image.dataURI; preview.hidden = false;
    $('drop-help').textContent = state.image.name + ' — drop, choose or paste another image to replace it.';
    matchModelToImage(state.image.dataURI).then(runAll);
  };
  reader.onerror = () => showError(new Error('could not read ' + (file.name || 'the file')));
  reader.readAsDataURL(file);
}

function setupInput() {
  const drop = $('drop'), file = $('file');
  drop.addEventListener('click', () => file.click());
  drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); file.click(); } });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault(); drop.classList.remove('over');
    if (e.dataTransfer && e.dataTransfer.files.length) readFile(e.dataTransfer.files[0]);
  });
  file.addEventListener('change', () => { if (file.files.length) readFile(file.files[0]); });
  document.addEventListener('paste', (e) => {
    const items = e.clipboardData ? Array.from(e.clipboardData.items) : [];
    const item = items.find((i) => i.kind === 'file' && i.type.startsWith('image/'));
    if (item) { e.preventDefault(); readFile(item.getAsFile()); }
  });
}

// ---- the three calls ----------------------------------------------------------------------------------
function runAll() {
  if (!state.image || !state.model) return;
  showError(null);
  runReconstruction();
  runClassification();
  runEmbedding();
  runTokens();
}

// Why a model cannot reconstruct, as the server would answer: a tokenizer decodes its codes at
// /v1/tokens and reconstructs masked images through the stage-2 models trained on them; a stage-2
// model needs its tokenizer served beside it (its card's requires_tokenizer says what is wrong).
function whyNoReconstruction(m) {
  const able = state.models.filter((x) => x.capabilities.includes('reconstruct')).map((x) => x.id);
  const others = able.length ? ' Models that reconstruct: ' + able.join(', ') + '.' : '';
  if (m.capabilities.includes('tokenize')) {
    const stage2 = state.models.filter((x) => x.requires_tokenizer && x.requires_tokenizer.id === m.id && x.capabilities.includes('reconstruct')).map((x) => x.id);
    return m.id + ' is a tokenizer: its codes and their decoding (POST /v1/tokens?decode=true) are under Tokens below; masked reconstructions come from '
      + 'a stage-2 model trained on its codes (' + (stage2.length ? stage2.join(', ') : 'none is loaded') + ').' + others;
  }
  const needs = m.requires_tokenizer;
  if (needs && needs.problem) return needs.problem.message + '.' + others;
  return m.id + ' has no pixel decoder.' + others;
}

async function runReconstruction() {
  const m = state.model, note = $('recon-note'), body = $('recon-body');
  if (!m.capabilities.includes('reconstruct')) {
    note.textContent = whyNoReconstruction(m);
    note.hidden = false; body.hidden = true; setCard('recon-card', 'idle');
    return;
  }
  note.hidden = true; body.hidden = false;
  const request = { model: m.id, input: state.image.dataURI };
  if (state.mask) {
    request.mask = state.mask;
  } else {
    request.mask_ratio = Number($('ratio').value);
    request.seed = Number($('seed').value) || 0;
    if ($('masking').value) request.masking = $('masking').value;
  }
  $('reset-mask').disabled = !state.mask;
  const seq = ++state.seq.recon;
  setCard('recon-card', 'loading');
  try {
    const r = await call('recon', 'POST', '/v1/reconstructions', request, 'application/json');
    if (seq !== state.seq.recon) return;
    for (const k of ['original', 'masked', 'reconstruction', 'composite', 'heatmap']) $('p-' + k).src = 'data:image/png;base64,' + r.images[k];
    state.shownMask = r.mask;
    buildGrid(r.grid, r.mask);
    $('recon-stats').textContent = 'Masked ' + r.mask.length + ' of ' + r.patches + ' patches (' + r.masking
      + (r.seed === null ? '' : ', seed ' + r.seed) + ') · masked-patch MSE ' + r.mse.toFixed(4) + ' · PSNR ' + r.psnr.toFixed(2) + ' dB';
    renderOOD('recon-ood', r.ood);
    renderWarnings('recon-warnings', r.warnings);
    setCard('recon-card', 'done');
  } catch (err) {
    if (seq !== state.seq.recon) return;
    setCard('recon-card', 'error');
    showError(err, 'POST /v1/reconstructions');
  }
}

async function runClassification() {
  const m = state.model, note = $('cls-note'), list = $('cls-list');
  if (!m.capabilities.includes('classify')) {
    const able = state.models.filter((x) => x.capabilities.includes('classify')).map((x) => x.id);
    note.textContent = m.id + ' has no classification head' + (able.length ? '; choose a classifier: ' + able.join(', ') : '') + '.';
    note.hidden = false; list.replaceChildren(); renderWarnings('cls-warnings', []); renderOOD('cls-ood', null);
    setCard('cls-card', 'idle');
    return;
  }
  note.hidden = true;
  const seq = ++state.seq.cls;
  setCard('cls-card', 'loading');
  try {
    const r = await call('cls', 'POST', '/v1/classifications', { model: m.id, input: state.image.dataURI, top_k: 5 });
    if (seq !== state.seq.cls) return;
    const item = r.data[0];
    list.replaceChildren(...item.labels.map((l) => {
      const li = document.createElement('li');
      const name = document.createElement('span'); name.className = 'label'; name.textContent = l.label;
      const track = document.createElement('span'); track.className = 'track'; track.setAttribute('aria-hidden', 'true');
      const fill = document.createElement('span'); fill.className = 'fill'; fill.style.display = 'block';
      fill.style.width = (100 * l.score).toFixed(1) + '%';
      track.append(fill);
      const value = document.createElement('span'); value.className = 'value'; value.textContent = (100 * l.score).toFixed(1) + '%';
      li.append(name, track, value);
      return li;
    }));
    renderOOD('cls-ood', item.ood);
    renderWarnings('cls-warnings', item.warnings);
    setCard('cls-card', 'done');
  } catch (err) {
    if (seq !== state.seq.cls) return;
    setCard('cls-card', 'error');
    showError(err, 'POST /v1/classifications');
  }
}

async function runEmbedding() {
  const m = state.model, seq = ++state.seq.emb;
  setCard('emb-card', 'loading');
  try {
    const r = await call('emb', 'POST', '/v1/embeddings', { model: m.id, input: state.image.dataURI });
    if (seq !== state.seq.emb) return;
    const item = r.data[0], v = item.embedding;
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    const card = state.models.find((x) => x.id === r.model) || m;
    const version = [r.model_version, card.created ? new Date(card.created * 1000).toISOString().slice(0, 10) : null,
                     card.provenance && card.provenance.exported_from].filter(Boolean).join(' · ');
    const facts = [['model', r.model], ['version', version || '—'], ['dimensions', String(v.length)], ['L2 norm', norm.toFixed(4)],
                   ['pooling', card.embedding ? card.embedding.default_pooling : '—'],
                   ['first values', v.slice(0, 4).map((x) => x.toFixed(3)).join(', ') + (v.length > 4 ? ', …' : '')]];
    $('emb-facts').replaceChildren(...facts.flatMap(([k, val]) => {
      const dt = document.createElement('dt'); dt.textContent = k;
      const dd = document.createElement('dd'); dd.textContent = val;
      return [dt, dd];
    }));
    renderOOD('emb-ood', item.ood);
    renderWarnings('emb-warnings', item.warnings);
    setCard('emb-card', 'done');
  } catch (err) {
    if (seq !== state.seq.emb) return;
    setCard('emb-card', 'error');
    showError(err, 'POST /v1/embeddings');
  }
}

// ---- tokens: the code grid and its decoding ------------------------------------------------------
// The image as the model sees it, drawn by the browser: the shorter side resized to
// floor(img_size / crop_pct), the centre img_size square, gray as Pillow's "L" for a grayscale model.
// The server resizes with Pillow's bicubic, so pixels may differ a little; the geometry is the same.
function modelView(dataURI, m) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      const size = m.architecture.img_size, crop = (m.preprocessing && m.preprocessing.crop_pct) || 1;
      const scale = Math.floor(size / crop) / Math.min(img.naturalWidth, img.naturalHeight);
      const side = size / scale;
      const c = document.createElement('canvas'); c.width = size; c.height = size;
      const g = c.getContext('2d');
      g.imageSmoothingQuality = 'high';
      g.drawImage(img, (img.naturalWidth - side) / 2, (img.naturalHeight - side) / 2, side, side, 0, 0, size, size);
      if (m.architecture.in_chans === 1) {
        const data = g.getImageData(0, 0, size, size), px = data.data;
        for (let i = 0; i < px.length; i += 4) px[i] = px[i + 1] = px[i + 2] = Math.round((299 * px[i] + 587 * px[i + 1] + 114 * px[i + 2]) / 1000);
        g.putImageData(data, 0, 0);
      }
      resolve(c.toDataURL('image/png'));
    };
    img.onerror = () => reject(new Error('the browser could not draw this image'));
    img.src = dataURI;
  });
}

// A code's colour: hues a golden angle apart, so neighbouring code numbers look different, and one
// of three lightnesses, so codes 21 or 34 apart (whose hues nearly meet again) still differ.
function paintCode(el, code) {
  el.style.setProperty('--hue', ((code * 137.508) % 360).toFixed(1));
  el.style.setProperty('--light', [55, 68, 43][code % 3] + '%');
}

async function runTokens() {
  const m = state.model, note = $('tok-note'), body = $('tok-body'), seq = ++state.seq.tok;
  if (!m.capabilities.includes('tokenize')) {
    const able = state.models.filter((x) => x.capabilities.includes('tokenize')).map((x) => x.id);
    note.textContent = m.id + ' is not a tokenizer; choose one for an image\'s codes: ' + able.join(', ') + '.';
    note.hidden = false; body.hidden = true; setCard('tok-card', 'idle');
    return;
  }
  note.hidden = true; body.hidden = false;
  setCard('tok-card', 'loading');
  try {
    // One call answers both: the codes, and (decode) their decoding as base64 PNG in the JSON.
    const [r, view] = await Promise.all([
      call('tok', 'POST', '/v1/tokens?decode=true', { model: m.id, input: state.image.dataURI }, 'application/json'),
      modelView(state.image.dataURI, m).catch(() => state.image.dataURI)]);
    if (seq !== state.seq.tok) return;
    const item = r.data[0];
    $('t-input').src = view; $('t-original').src = view;
    $('t-decoded').src = 'data:image/png;base64,' + item.decoded;
    showCodes(r.grid, r.codebook_size, item.codes);
    renderTokenFacts(r, item, m);
    renderOOD('tok-ood', item.ood);
    renderWarnings('tok-warnings', item.warnings);
    setCard('tok-card', 'done');
  } catch (err) {
    if (seq !== state.seq.tok) return;
    setCard('tok-card', 'error');
    showError(err, 'POST /v1/tokens');
  }
}

function renderTokenFacts(r, item, m) {
  const counts = state.tok.counts, n = item.codes.length;
  // The perplexity of this image's codes: e^entropy of their histogram (1: one code everywhere; n: all different).
  let entropy = 0;
  for (const c of counts.values()) entropy -= (c / n) * Math.log(c / n);
  const facts = [['model', r.model + ' (version ' + r.model_version + ')'],
                 ['code grid', r.grid + ' × ' + r.grid + ' = ' + n + ' codes, one per ' + m.architecture.patch_size + '-px patch'],
                 ['codebook', r.codebook_size + ' codes; this image uses ' + counts.size + ' (perplexity ' + Math.exp(entropy).toFixed(2) + ')'],
                 ['decoding', 'PSNR ' + item.psnr.toFixed(2) + ' dB against the model input (' + m.architecture.img_size + ' px)']];
  $('tok-facts').replaceChildren(...facts.flatMap(([k, val]) => {
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = val;
    return [dt, dd];
  }));
}

// The grid: one button per patch (row-major, as the answer's codes), its colour and number its code.
// Arrow keys move (one tab stop for the whole grid); pointing or focus says the code; a click or
// Space marks every patch of that code.
function showCodes(g, codebookSize, codes) {
  const t = state.tok, grid = $('tok-grid');
  t.codes = codes; t.marked = null;
  t.counts = new Map();
  for (const c of codes) t.counts.set(c, (t.counts.get(c) || 0) + 1);
  if (t.grid !== g || grid.children.length !== g * g) {
    t.grid = g;
    grid.style.gridTemplateColumns = 'repeat(' + g + ', 1fr)';
    grid.style.gridTemplateRows = 'repeat(' + g + ', 1fr)';
    grid.style.setProperty('--g', String(g));
    const buttons = [];
    for (let i = 0; i < g * g; i++) {
      const b = document.createElement('button');
      b.type = 'button'; b.dataset.patch = String(i); b.tabIndex = i === 0 ? 0 : -1;
      b.addEventListener('click', () => markCode(t.codes[i], i));
      b.addEventListener('keydown', (e) => moveInGrid(e, i, grid, g));
      b.addEventListener('focus', () => describePatch(i));
      b.addEventListener('mouseenter', () => describePatch(i));
      buttons.push(b);
    }
    grid.replaceChildren(...buttons);
  }
  grid.style.setProperty('--digits', String(String(Math.max(codebookSize - 1, 0)).length));
  Array.from(grid.children).forEach((b, i) => {
    const code = codes[i];
    b.textContent = String(code);
    b.dataset.code = String(code);
    paintCode(b, code);
    b.setAttribute('aria-label', 'row ' + (Math.floor(i / g) + 1) + ', column ' + (i % g + 1) + ': code ' + code);
  });
  fitNumbers();
  renderLegend();
  const width = String(Math.max(codebookSize - 1, 0)).length;
  $('tok-text').textContent = Array.from({ length: g }, (_, r) => codes.slice(r * g, r * g + g).map((c) => String(c).padStart(width)).join(' ')).join('\n');
  $('tok-readout').textContent = '';
  markCode(null);
}

function moveInGrid(e, i, grid, g) {
  const to = { ArrowLeft: i - 1, ArrowRight: i + 1, ArrowUp: i - g, ArrowDown: i + g, Home: i - (i % g), End: i - (i % g) + g - 1 }[e.key];
  if (to === undefined || to < 0 || to >= g * g) return;
  e.preventDefault();
  grid.children[i].tabIndex = -1; grid.children[to].tabIndex = 0; grid.children[to].focus();
}

function describePatch(i) {
  const t = state.tok, g = t.grid, code = t.codes[i], n = t.counts.get(code);
  $('tok-readout').textContent = 'Row ' + (Math.floor(i / g) + 1) + ', column ' + (i % g + 1) + ' (patch ' + i + '): code ' + code
    + ' — ' + n + ' of ' + t.codes.length + ' patches use it.';
}

// Mark every patch of one code (the same code again, or null, clears the mark); `patch`: the cell
// that asked, whose description comes back when its mark is cleared.
function markCode(code, patch) {
  const t = state.tok;
  t.marked = code === null || code === t.marked ? null : code;
  const grid = $('tok-grid');
  grid.classList.toggle('marking', t.marked !== null);
  for (const b of grid.children) b.classList.toggle('marked', t.marked !== null && Number(b.dataset.code) === t.marked);
  for (const b of $('tok-legend').querySelectorAll('button')) b.setAttribute('aria-pressed', String(Number(b.dataset.code) === t.marked));
  if (t.marked !== null) $('tok-readout').textContent = 'Code ' + t.marked + ' marked: ' + t.counts.get(t.marked) + ' of ' + t.codes.length + ' patches.';
  else if (patch !== undefined) describePatch(patch);
  else if (code !== null) $('tok-readout').textContent = 'No code marked.';
}

// The legend: the codes of this image, most frequent first (ties by number); the rest counted.
function renderLegend() {
  const shown = 24, t = state.tok;
  const order = Array.from(t.counts.entries()).sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  const items = order.slice(0, shown).map(([code, n]) => {
    const b = document.createElement('button');
    b.type = 'button'; b.dataset.code = String(code); b.setAttribute('aria-pressed', 'false');
    b.setAttribute('aria-label', 'code ' + code + ', ' + n + (n === 1 ? ' patch' : ' patches'));
    const swatch = document.createElement('span'); swatch.className = 'swatch'; paintCode(swatch, code);
    b.append(swatch, code + ' ×' + n);
    b.addEventListener('click', () => markCode(code));
    return b;
  });
  if (order.length > shown) {
    const more = document.createElement('span'); more.className = 'more muted small';
    more.textContent = '+ ' + (order.length - shown) + ' more codes (point at a patch)';
    items.push(more);
  }
  $('tok-legend').replaceChildren(...items);
}

// Numbers go when a cell is too small to hold them legibly (under 7 px of text, the CSS's own
// formula), or when unticked; the caption says which.
function fitNumbers() {
  const t = state.tok, grid = $('tok-grid');
  if (!t.grid) return;
  const digits = Number(grid.style.getPropertyValue('--digits')) || 1;
  t.tooSmall = grid.clientWidth / t.grid / (0.62 * digits + 0.5) < 7;
  grid.classList.toggle('no-numbers', t.tooSmall || !$('tok-numbers').checked);
  $('tok-caption').textContent = t.grid + ' × ' + t.grid + ' codes over the input'
    + (t.tooSmall && $('tok-numbers').checked ? ' (numbers hidden: cells too small; point at a patch)' : '');
}

// ---- the patch grid ---------------------------------------------------------------------------------
function buildGrid(g, mask) {
  const grid = $('grid'), hidden = new Set(mask);
  if (state.grid !== g || grid.children.length !== g * g) {
    state.grid = g; state.focus = 0;
    grid.style.gridTemplateColumns = 'repeat(' + g + ', 1fr)';
    grid.style.gridTemplateRows = 'repeat(' + g + ', 1fr)';
    const buttons = [];
    for (let i = 0; i < g * g; i++) {
      const b = document.createElement('button');
      b.type = 'button'; b.dataset.patch = String(i); b.tabIndex = i === 0 ? 0 : -1;
      b.addEventListener('click', () => togglePatch(i));
      b.addEventListener('keydown', (e) => moveFocus(e, i));
      buttons.push(b);
    }
    grid.replaceChildren(...buttons);
  }
  Array.from(grid.children).forEach((b, i) => {
    const masked = hidden.has(i);
    b.setAttribute('aria-pressed', String(masked));
    b.setAttribute('aria-label', 'patch ' + i + ', row ' + (Math.floor(i / g) + 1) + ', column ' + (i % g + 1) + (masked ? ', masked' : ', visible'));
  });
}

function moveFocus(e, i) {
  const g = state.grid;
  const to = { ArrowLeft: i - 1, ArrowRight: i + 1, ArrowUp: i - g, ArrowDown: i + g, Home: i - (i % g), End: i - (i % g) + g - 1 }[e.key];
  if (to === undefined || to < 0 || to >= g * g) return;
  e.preventDefault();
  const buttons = $('grid').children;
  buttons[i].tabIndex = -1; buttons[to].tabIndex = 0; buttons[to].focus();
  state.focus = to;
}

function togglePatch(i) {
  const current = new Set(state.mask || state.shownMask);
  if (current.has(i)) current.delete(i); else current.add(i);
  state.mask = Array.from(current).sort((a, b) => a - b);
  const b = $('grid').children[i];
  if (b) b.setAttribute('aria-pressed', String(current.has(i)));
  runReconstruction();
}

// ---- copy as curl -----------------------------------------------------------------------------------------
async function copyCurl(name) {
  const text = state.curls[name];
  const status = $('copied');
  if (!text) { status.textContent = 'Nothing to copy yet: choose an image first.'; return; }
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    const area = document.createElement('textarea');
    area.value = text; area.setAttribute('readonly', ''); area.style.position = 'fixed'; area.style.opacity = '0';
    document.body.append(area); area.select();
    try { document.execCommand('copy'); } catch (__) { /* the text stays visible under "Request" */ }
    area.remove();
  }
  status.textContent = 'Copied the curl command (' + text.length + ' characters)' + (state.key ? '; it reads the key from $BOOTMAE_API_KEY.' : '.');
}

// ---- wiring --------------------------------------------------------------------------------------------------
function debounce(fn, ms) { let t = 0; return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); }; }

function setup() {
  setupInput();
  $('model').addEventListener('change', () => { state.picked = true; selectModel(); });
  const rerun = debounce(() => { state.mask = null; if (state.image && state.model) runReconstruction(); }, 200);
  $('ratio').addEventListener('input', () => { $('ratio-out').textContent = Number($('ratio').value).toFixed(2); rerun(); });
  $('seed').addEventListener('input', rerun);
  $('masking').addEventListener('change', rerun);
  $('reset-mask').addEventListener('click', () => { state.mask = null; runReconstruction(); });
  $('tok-alpha').addEventListener('input', () => {
    $('tok-grid').style.setProperty('--tok-alpha', $('tok-alpha').value);
    $('tok-alpha-out').textContent = Math.round(100 * Number($('tok-alpha').value)) + '%';
  });
  $('tok-numbers').addEventListener('change', fitNumbers);
  if (window.ResizeObserver) new ResizeObserver(fitNumbers).observe($('tok-grid'));
  for (const b of document.querySelectorAll('button.copy')) b.addEventListener('click', () => copyCurl(b.dataset.call));
  $('api-key').addEventListener('change', () => { state.key = $('api-key').value.trim(); loadModels(); });
  document.body.dataset.busy = '0';
  loadModels();
}

document.addEventListener('DOMContentLoaded', setup);
"""#
}
