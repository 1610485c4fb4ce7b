extension PageAssets {
    static let css = #"""
:root {
  --bg: #f6f6f3; --fg: #1d1d1f; --muted: #5b5b66; --card: #ffffff; --line: #d9d9de;
  --accent: #2956b2; --accent-fg: #ffffff; --bar: #2956b2; --warn-bg: #fff4d6; --warn-line: #c98a00;
  --err-bg: #fde8e8; --err-line: #b3261e; --mask: rgba(41, 86, 178, 0.55);
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #17181b; --fg: #ececf1; --muted: #a2a2ad; --card: #22242a; --line: #3a3c44;
    --accent: #7aa2f7; --accent-fg: #0e1220; --bar: #7aa2f7; --warn-bg: #3a3016; --warn-line: #e0b44c;
    --err-bg: #42201f; --err-line: #f2837b; --mask: rgba(122, 162, 247, 0.55);
  }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0 auto; max-width: 1100px; padding: 1rem; background: var(--bg); color: var(--fg);
  font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
}
h1 { font-size: 1.6rem; margin: 0.2rem 0; }
h2 { font-size: 1.15rem; margin: 0 0 0.6rem; }
a { color: var(--accent); }
.muted { color: var(--muted); }
.small { font-size: 0.875rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 1rem; margin: 1rem 0; }
.input-row { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1rem; }
.drop {
  display: flex; flex-direction: column; align-items: center; justify-content: center; gap: 0.5rem;
  min-height: 180px; padding: 1rem; border: 2px dashed var(--line); border-radius: 10px; text-align: center; cursor: pointer;
}
.drop.over { border-color: var(--accent); background: color-mix(in srgb, var(--accent) 10%, transparent); }
.drop img { max-width: 100%; max-height: 200px; }
.drop img.small { width: 112px; height: auto; max-height: none; image-rendering: pixelated; }
.drop p { margin: 0; }
.controls { display: flex; flex-direction: column; gap: 0.3rem; min-width: 0; }
.controls label { font-weight: 600; margin-top: 0.4rem; }
input, select, button { font: inherit; color: inherit; max-width: 100%; }
input[type=number], input[type=password], select {
  padding: 0.35rem 0.5rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg);
}
input[type=number] { width: 6rem; }
button {
  padding: 0.4rem 0.8rem; border: 1px solid var(--accent); border-radius: 6px; background: var(--accent); color: var(--accent-fg); cursor: pointer;
}
button:disabled { opacity: 0.5; cursor: default; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.row { display: flex; flex-wrap: wrap; align-items: center; gap: 0.5rem 0.8rem; }
.row input[type=range] { flex: 1 1 140px; }
.error {
  background: var(--err-bg); border: 1px solid var(--err-line); border-radius: 8px; padding: 0.7rem 1rem; margin: 1rem 0; overflow-wrap: anywhere;
}
.error code { font-size: 0.85rem; }
.panels { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 0.8rem; margin: 0.8rem 0; }
figure { margin: 0; min-width: 0; }
figure img { display: block; width: 100%; aspect-ratio: 1; object-fit: contain; image-rendering: pixelated; background: var(--line); border-radius: 4px; }
figcaption { font-size: 0.85rem; color: var(--muted); text-align: center; margin-top: 0.2rem; }
.grid-wrap { position: relative; }
#grid { position: absolute; inset: 0; display: grid; }
#grid button {
  padding: 0; margin: 0; border: 0; border-radius: 0; background: transparent; min-width: 0; min-height: 0;
  box-shadow: inset 0 0 0 0.5px rgba(128, 128, 128, 0.35);
}
#grid button[aria-pressed=true] { background: var(--mask); }
#grid button:hover { box-shadow: inset 0 0 0 2px var(--accent); }
#grid button:focus-visible { outline: 3px solid #ffb000; outline-offset: -3px; z-index: 1; }
.tok-panels {
  display: grid; gap: 0.8rem; margin: 0.8rem 0; align-items: start;
  grid-template-columns: minmax(0, 2fr) minmax(0, 1fr) minmax(0, 1fr); grid-template-areas: "codes original decoded";
}
.tok-codes { grid-area: codes; } .tok-original { grid-area: original; } .tok-decoded { grid-area: decoded; }
/* The code grid: one button per patch over the model's input, coloured by its code (--tok-alpha: the
   colours' opacity), the code's number sized to the cell from the wrap's width (container units). */
.tok-wrap { position: relative; container-type: inline-size; }
#tok-grid { position: absolute; inset: 0; display: grid; --tok-alpha: 0.6; }
#tok-grid button {
  padding: 0; margin: 0; border: 0; border-radius: 0; min-width: 0; min-height: 0; overflow: hidden;
  background: hsl(var(--hue) 75% var(--light) / var(--tok-alpha)); color: #000; line-height: 1;
  font: 600 calc(100cqw / var(--g) / (0.62 * var(--digits) + 0.5)) / 1 ui-monospace, "DejaVu Sans Mono", monospace;
  text-shadow: 0 0 2px #fff, 0 0 2px #fff; box-shadow: inset 0 0 0 0.5px rgba(128, 128, 128, 0.45);
}
#tok-grid.no-numbers button { color: transparent; text-shadow: none; }
#tok-grid.marking button:not(.marked) { background: rgba(0, 0, 0, 0.55); color: transparent; text-shadow: none; }
#tok-grid button.marked { box-shadow: inset 0 0 0 2px #fff, inset 0 0 0 3px #000; }
#tok-grid button:hover { box-shadow: inset 0 0 0 2px var(--accent); }
#tok-grid button:focus-visible { outline: 3px solid #ffb000; outline-offset: -3px; z-index: 1; }
.legend { display: flex; flex-wrap: wrap; gap: 0.3rem; margin: 0.6rem 0 0; }
.legend button {
  display: inline-flex; align-items: center; gap: 0.35rem; padding: 0.15rem 0.5rem; font-size: 0.85rem;
  background: var(--bg); color: var(--fg); border: 1px solid var(--line); font-variant-numeric: tabular-nums;
}
.legend button[aria-pressed=true] { border-color: var(--accent); box-shadow: inset 0 0 0 1px var(--accent); }
.legend .swatch { width: 0.9rem; height: 0.9rem; border-radius: 3px; background: hsl(var(--hue) 75% var(--light)); border: 1px solid rgba(0, 0, 0, 0.3); }
.legend .more { align-self: center; }
#tok-text { font-variant-numeric: tabular-nums; white-space: pre; overflow-x: auto; word-break: normal; }
.bars { list-style: none; padding: 0; margin: 0; }
.bars li { display: grid; grid-template-columns: minmax(6rem, 10rem) minmax(0, 1fr) 4.2rem; align-items: center; gap: 0.6rem; margin: 0.3rem 0; }
.bars .track { height: 1rem; background: var(--bg); border: 1px solid var(--line); border-radius: 4px; overflow: hidden; }
.bars .fill { height: 100%; background: var(--bar); }
.bars .value { text-align: right; font-variant-numeric: tabular-nums; }
.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 0.2rem 1rem; margin: 0; }
.facts dt { font-weight: 600; }
.facts dd { margin: 0; overflow-wrap: anywhere; font-variant-numeric: tabular-nums; }
.warnings { padding: 0; list-style: none; margin: 0.5rem 0 0; }
.warnings li { background: var(--warn-bg); border-left: 4px solid var(--warn-line); padding: 0.4rem 0.6rem; margin: 0.3rem 0; border-radius: 4px; overflow-wrap: anywhere; }
.warnings code { font-weight: 600; }
.ood { margin: 0.5rem 0 0; }
.ood meter { width: 10rem; max-width: 100%; vertical-align: middle; }
.call { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 0.6rem; margin-top: 0.8rem; }
.call details { flex: 1 1 260px; min-width: 0; }
pre { white-space: pre-wrap; word-break: break-all; font-size: 0.8rem; background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 0.5rem; margin: 0.4rem 0 0; }
[data-state=loading] h2::after { content: " …"; color: var(--muted); }
footer { margin: 1.5rem 0 0.5rem; }
@media (max-width: 640px) {
  body { padding: 0.6rem; }
  .input-row { grid-template-columns: minmax(0, 1fr); }
  .panels { grid-template-columns: repeat(2, minmax(0, 1fr)); }
  .tok-panels { grid-template-columns: repeat(2, minmax(0, 1fr)); grid-template-areas: "codes codes" "original decoded"; }
  .bars li { grid-template-columns: minmax(5rem, 7rem) minmax(0, 1fr) 3.6rem; }
}
"""#
}
