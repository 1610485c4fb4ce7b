// The page served at GET / (with /page.css and /page.js): plain HTML, CSS and JavaScript written
// for this project, compiled into the binary so that it works from any working directory.
enum PageAssets {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bootmae-serve</title>
<link rel="stylesheet" href="/page.css">
<script src="/page.js" defer></script>
</head>
<body>
<header>
  <h1>bootmae-serve</h1>
  <p class="muted">Masked-image-modeling vision transformers: reconstructions, embeddings, labels and tokenizer codes from one image.</p>
</header>
<main>
  <section class="card" aria-labelledby="input-h">
    <h2 id="input-h">Image and model</h2>
    <div class="input-row">
      <div id="drop" class="drop" tabindex="0" role="button" aria-describedby="drop-help">
        <img id="preview" alt="the chosen image" hidden>
        <p id="drop-help">Drop an image here, press Enter to choose a file, or paste one (Ctrl+V).</p>
      </div>
      <div class="controls">
        <label for="file">Image file</label>
        <input type="file" id="file" accept="image/png,image/jpeg">
        <label for="model">Model</label>
        <select id="model"><option value="">(loading models…)</option></select>
        <p id="model-info" class="muted small"></p>
        <label for="api-key">API key <span class="muted small">(only when the server runs with --api-key; kept in this page's memory)</span></label>
        <input type="password" id="api-key" autocomplete="off" spellcheck="false" placeholder="none">
      </div>
    </div>
  </section>

  <div id="error" class="error" role="alert" hidden></div>

  <section id="recon-card" class="card" aria-labelledby="recon-h" data-state="idle">
    <h2 id="recon-h">Reconstruction</h2>
    <p id="recon-note" class="muted" hidden></p>
    <div id="recon-body">
      <div class="row">
        <label for="ratio">Mask ratio <output id="ratio-out" for="ratio">0.75</output></label>
        <input type="range" id="ratio" min="0.05" max="0.95" step="0.05" value="0.75">
        <label for="seed">Seed</label>
        <input type="number" id="seed" min="0" step="1" value="0" inputmode="numeric">
        <label for="masking">Masking</label>
        <select id="masking">
          <option value="">model default</option>
          <option value="random">random</option>
          <option value="block">block</option>
        </select>
        <button type="button" id="reset-mask" disabled>Back to a drawn mask</button>
      </div>
      <p class="muted small" id="grid-help">Click a patch on the masked panel to hide or show it (keyboard: Tab to the grid, arrow keys, Space); the request then sends that explicit mask.</p>
      <div class="panels">
        <figure><img id="p-original" alt="original"><figcaption>original</figcaption></figure>
        <figure><div class="grid-wrap"><img id="p-masked" alt="masked input"><div id="grid" role="group" aria-label="Patches: pressed means masked"></div></div><figcaption>masked (click patches)</figcaption></figure>
        <figure><img id="p-reconstruction" alt="reconstruction"><figcaption>reconstruction</figcaption></figure>
        <figure><img id="p-composite" alt="reconstruction with the visible patches"><figcaption>+ visible patches</figcaption></figure>
        <figure><img id="p-heatmap" alt="per-patch error heatmap"><figcaption>error heatmap</figcaption></figure>
      </div>
      <p id="recon-stats" aria-live="polite"></p>
      <div id="recon-ood"></div>
      <ul id="recon-warnings" class="warnings"></ul>
    </div>
    <div class="call">
      <button type="button" class="copy" data-call="recon">Copy as curl</button>
      <details><summary>Request</summary><pre id="recon-curl"></pre></details>
    </div>
  </section>

  <section id="tok-card" class="card" aria-labelledby="tok-h" data-state="idle">
    <h2 id="tok-h">Tokens</h2>
    <p id="tok-note" class="muted" hidden></p>
    <div id="tok-body">
      <div class="row">
        <label for="tok-alpha">Code colours <output id="tok-alpha-out" for="tok-alpha">60%</output></label>
        <input type="range" id="tok-alpha" min="0" max="1" step="0.05" value="0.6">
        <label><input type="checkbox" id="tok-numbers" checked> code numbers</label>
      </div>
      <p class="muted small" id="tok-help">Point at a patch, or Tab to the grid and use the arrow keys, to read its code; Space marks every patch with that code (so does a code below).</p>
      <div class="tok-panels">
        <figure class="tok-codes"><div class="tok-wrap"><img id="t-input" alt=""><div id="tok-grid" role="group" aria-label="Code grid, one code per patch"></div></div><figcaption id="tok-caption">codes</figcaption></figure>
        <figure class="tok-original"><img id="t-original" alt="the image as the model sees it"><figcaption>model input</figcaption></figure>
        <figure class="tok-decoded"><img id="t-decoded" alt="the tokenizer's decoding of the codes"><figcaption>decoded from the codes</figcaption></figure>
      </div>
      <p id="tok-readout" class="small" aria-live="polite"></p>
      <dl id="tok-facts" class="facts"></dl>
      <div id="tok-legend" class="legend" role="group" aria-label="Codes used, most frequent first"></div>
      <details><summary>Codes as text</summary><pre id="tok-text"></pre></details>
      <div id="tok-ood"></div>
      <ul id="tok-warnings" class="warnings"></ul>
    </div>
    <div class="call">
      <button type="button" class="copy" data-call="tok">Copy as curl</button>
      <details><summary>Request</summary><pre id="tok-curl"></pre></details>
    </div>
  </section>

  <section id="cls-card" class="card" aria-labelledby="cls-h" data-state="idle">
    <h2 id="cls-h">Labels</h2>
    <p id="cls-note" class="muted" hidden></p>
    <ol id="cls-list" class="bars"></ol>
    <div id="cls-ood"></div>
    <ul id="cls-warnings" class="warnings"></ul>
    <div class="call">
      <button type="button" class="copy" data-call="cls">Copy as curl</button>
      <details><summary>Request</summary><pre id="cls-curl"></pre></details>
    </div>
  </section>

  <section id="emb-card" class="card" aria-labelledby="emb-h" data-state="idle">
    <h2 id="emb-h">Embedding</h2>
    <dl id="emb-facts" class="facts"></dl>
    <div id="emb-ood"></div>
    <ul id="emb-warnings" class="warnings"></ul>
    <div class="call">
      <button type="button" class="copy" data-call="emb">Copy as curl</button>
      <details><summary>Request</summary><pre id="emb-curl"></pre></details>
    </div>
  </section>
  <p id="copied" class="muted small" role="status" aria-live="polite"></p>
</main>
<footer class="muted small">The API: <a href="/openapi.yaml">openapi.yaml</a> · <a href="/v1/models">/v1/models</a> · <a href="/metrics">/metrics</a></footer>
</body>
</html>
"""#
}
