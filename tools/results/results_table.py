#!/usr/bin/env python3
"""The results table of docs/RESULTS.md, read from the run folders (never typed by hand).

Each cell comes from a file that `bootmae-train` wrote: knn.json, linprobe.json, eval.json and
eval-random.json in a pretraining run; result.json and metrics.jsonl in a fine-tune run. A run that
has not finished shows how far it got; a run that does not exist yet shows "queued". A fine-tune
repeated with other seeds (scripts/fmnist-experiments.sh with FT_SEED=1: <run>-seed1) adds each
finished repeat's top-1 to its cell. Under the 84 px rows a line states issue 17's goal from them: LoMaR's
share of MAE's pretraining CPU time and the gap between their fine-tune top-1, each against its bound.

    python3 tools/results/results_table.py                      # print the table
    python3 tools/results/results_table.py --update docs/RESULTS.md
        # replace the lines between <!-- results-table:begin --> and <!-- results-table:end -->
"""
import argparse
import json
import os
import sys

BEGIN, END = "<!-- results-table:begin -->", "<!-- results-table:end -->"

# (label, pretraining epochs, pretraining run, {fine-tune epochs: fine-tune run})
ROWS = [
    ("BootMAE", "40", "bootmae-tiny", {20: "bootmae-tiny-ft", 40: "bootmae-tiny-ft-40ep"}),
    ("MAE", "40", "mae-tiny", {20: "mae-tiny-ft", 40: "mae-tiny-ft-40ep"}),
    ("BootMAE, MAE's wall-clock", "13", "bootmae-short-tiny", {20: "bootmae-short-tiny-ft"}),
    ("BootMAE without feature branch (λ = 0)", "13", "bootmae-nofeat-short-tiny", {}),
    ("BootMAE without decoder context", "13", "bootmae-noctx-short-tiny", {}),
    ("none (scratch)", "–", None, {20: "scratch-tiny-ft", 40: "scratch-tiny-ft-40ep"}),
    ("iBOT, BootMAE's short budget", "13", "ibot-short-tiny", {20: "ibot-short-tiny-ft"}),
    # LoMaR at 28 px: MAE's schedule at the short budget, 4 windows of 4×4 patches per image
    # (scripts/fmnist-experiments.sh lomar).
    ("LoMaR, BootMAE's short budget", "13", "lomar-tiny", {20: "lomar-tiny-ft"}),
    # PeCo's central comparison at equal epochs: stage 2 (20 epochs) on a 5-epoch tokenizer trained
    # with and without the perceptual loss (scripts/fmnist-experiments.sh peco-l1, peco-l0).
    ("PeCo (λ_per = 1)", "20", "peco-l1-tiny", {20: "peco-l1-tiny-ft"}),
    ("BEiT-style, own VQ tokenizer (λ_per = 0)", "20", "peco-l0-tiny", {20: "peco-l0-tiny-ft"}),
    ("none: raw pixels (28×28 input; k-NN with the mean image subtracted in brackets)", "–", "pixels", {}),
]
# Pretraining runs of sessions 1–6 (EPYC Zen 4, 2026-11-24/25), before result.json recorded process CPU
# time (their folders did not survive into later sessions): their cost is the Cost paragraph's ratios.
CPU_NOT_RECORDED = {"bootmae-tiny", "mae-tiny", "bootmae-short-tiny", "bootmae-nofeat-short-tiny", "bootmae-noctx-short-tiny"}
# A stage-2 run's cost includes its tokenizer's (stage 1 trains once for the 20 stage-2 epochs).
TOKENIZER_OF = {"peco-l1-tiny": "peco-l1-tokenizer-tiny", "peco-l0-tiny": "peco-l0-tokenizer-tiny"}
# Pretrainings without a pixel decoder: no reconstruction PSNR to measure. (A PeCo stage-2 model has
# one: its predicted codes decoded by its tokenizer, as served; its eval.json names the tokenizer.)
NO_PIXEL_DECODER = {"ibot-short-tiny"}
# Not a pretraining: the frozen-feature evaluations on the input itself (`--features pixels`).
RAW_INPUT = {"pixels"}
# (label, tokenizer epochs, tokenizer run): tokenizer.json of `bootmae-train tokenizer-eval`.
TOKENIZER_ROWS = [
    ("PeCo tokenizer (λ_per = 1)", "5", "peco-l1-tokenizer-tiny"),
    ("VQ tokenizer, pixels only (λ_per = 0)", "5", "peco-l0-tokenizer-tiny"),
]
FINETUNE_EPOCHS = (20, 40)
# eval-random.json: every objective on the same random masks of this share of the image (MAE's and
# BootMAE's own; scripts/fmnist-experiments.sh passes `--mask-ratio 0.75`). eval.json records the share
# it hid (37 of 49 patches at 28 px, 0.755): a share further off than one patch of the 7×7 grid is
# another mask and is not shown as comparable.
EQUAL_MASK_RATIO = 0.75


def equal_masks_cell(rand):
    if rand is None:
        return "queued"
    if rand.get("masking") != "random" or abs(rand.get("maskRatio", 0) - EQUAL_MASK_RATIO) > 1 / 49:
        return (f"not comparable ({rand.get('masking')} masks of {100 * rand.get('maskRatio', 0):.0f}%: "
                f"re-run eval --masking random --mask-ratio {EQUAL_MASK_RATIO})")
    return f"{rand['psnr']:.2f} dB"
# LoMaR against MAE at 84 px (scripts/fmnist-experiments.sh mae-large, lomar-large, lomar-large-equal,
# scratch-large, large-probes): (label, pretraining epochs, pretraining run, fine-tune run). The first row's measured
# pretraining CPU time is the T the LoMaR rows are measured against.
LARGE_ROWS = [
    ("MAE at 84 px (T)", "4", "mae-84px", "mae-84px-ft"),
    ("LoMaR at 84 px, half of MAE's time (T/2)", "4", "lomar-84px-half", "lomar-84px-half-ft"),
    ("LoMaR at 84 px, MAE's time (T)", "10", "lomar-84px-equal", "lomar-84px-equal-ft"),
    ("none (scratch) at 84 px", "–", None, "scratch-84px-ft"),
]
# Issue 17's goal, read off the first two rows: LoMaR's fine-tune top-1 within GOAL_TOP1_POINTS of MAE's
# in at most GOAL_CPU_SHARE of MAE's pretraining CPU time. The line stating it starts with GOAL_PREFIX.
GOAL_TOP1_POINTS, GOAL_CPU_SHARE = 0.5, 0.5
GOAL_PREFIX = "**Goal at 84 px**"


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def finished(run):
    result = load(os.path.join(run, "result.json"))
    return result is not None and result.get("stoppedEarly") is False


def progress(run):
    """'epoch e of N' for an unfinished run, from its recipe and its last measured epoch."""
    recipe = load(os.path.join(run, "recipe.json")) or {}
    done = 0
    try:
        with open(os.path.join(run, "metrics.jsonl")) as f:
            for line in f:
                row = json.loads(line)
                if "test_top1" in row:  # a fine-tune's evaluation after each whole epoch
                    done = max(done, row["epoch"])
                elif isinstance(row.get("epoch"), (int, float)):  # a training step: epochs so far, a whole
                    done = max(done, int(row["epoch"]))         # number at an epoch's last step
    except FileNotFoundError:
        pass
    return f"in progress ({done} of {recipe.get('epochs', '?')} epochs)"


def percent(x):
    return "–" if x is None else f"{100 * x:.2f}%"


def probe_cells(run):
    """k-NN and linear-probe top-1 of a finished pretraining run (queued where not measured yet)."""
    knn, linear = load(os.path.join(run, "knn.json")), load(os.path.join(run, "linprobe.json"))
    return [percent(knn.get("top1")) if knn else "queued", percent(linear.get("top1")) if linear else "queued"]


def pretraining_cells(run):
    """k-NN, linear probe, PSNR on the run's own task (its masks: block, random, or LoMaR's windows),
    PSNR on the same random masks for every objective."""
    if run is None:
        return ["–"] * 4
    if not os.path.isdir(run):
        return ["queued"] * 4
    if os.path.basename(run) in RAW_INPUT:
        knn, centred = load(os.path.join(run, "knn.json")), load(os.path.join(run, "knn-centred.json"))
        linear = load(os.path.join(run, "linprobe.json"))
        knn_cell = percent(knn.get("top1")) if knn else "queued"
        if knn and centred:
            knn_cell += f" ({percent(centred.get('top1'))})"
        return [knn_cell, percent(linear.get("top1")) if linear else "queued", "–", "–"]
    if not finished(run):
        return [progress(run)] + ["…"] * 3
    if os.path.basename(run) in NO_PIXEL_DECODER:
        return probe_cells(run) + ["– (no pixel decoder)", "– (no pixel decoder)"]
    own, rand = load(os.path.join(run, "eval.json")), load(os.path.join(run, "eval-random.json"))
    own_cell = "queued"
    if own:
        via = ", decoded by its tokenizer" if own.get("tokenizer") else ""
        own_cell = f"{own['psnr']:.2f} dB ({own['masking']}{via})"
    return probe_cells(run) + [own_cell, equal_masks_cell(rand)]


def finetune_top1(run):
    measured = load(os.path.join(run, "eval.json"))
    return (measured or load(os.path.join(run, "result.json"))).get("top1")


def unfinished_cell(run):
    """What a cell shows for a run with no result yet: none planned, queued, or how far it got; None once finished."""
    if run is None:
        return "–"
    if not os.path.isdir(run):
        return "queued"
    if not finished(run):
        return progress(run)
    return None


def finetune_cell(run):
    """Seed 0's top-1, then that of every finished repeat with another seed (<run>-seed1, …)."""
    pending = unfinished_cell(run)
    if pending is not None:
        return pending
    cell = percent(finetune_top1(run))
    seed = 1
    while os.path.isdir(f"{run}-seed{seed}"):
        if finished(f"{run}-seed{seed}"):
            cell += f" (seed {seed}: {percent(finetune_top1(f'{run}-seed{seed}'))})"
        seed += 1
    return cell


def split_row(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def previous_rows(document):
    """The tables' rows as the document has them, by label, each a {column heading: cell}: measured
    cells survive a machine whose run folders are gone (a folder that does not exist says nothing new
    about a measured cell), and a column added later does not shift them."""
    rows = {}
    try:
        with open(document) as f:
            content = f.read()
    except FileNotFoundError:
        return rows
    if BEGIN in content and END in content:
        head = None
        for line in content[content.index(BEGIN):content.index(END)].splitlines()[1:]:
            if not line.startswith("|"):
                head = None  # a blank line ends a table; the next line heads another
            elif head is None:
                head = split_row(line)
            elif not line.startswith("|---"):
                cells = split_row(line)
                if cells and cells[0]:
                    rows[cells[0]] = dict(zip(head, cells))
    return rows


def header_lines(head):
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]


def row_line(head, cells, previous):
    """A table row (cells[0] its label) under `head`; where this machine has no run folder to say
    otherwise ("queued"), the cell the document already had in that column (`previous`) is kept, if it
    was a measurement: a run's progress ("in progress …", "…") is only true while its folder is there."""
    old = (previous or {}).get(cells[0], {})

    def measured(cell):
        return cell not in ("queued", "", "…") and not cell.startswith("in progress")
    cells = [old[h] if c == "queued" and measured(old.get(h, "queued")) else c for h, c in zip(head, cells)]
    return "| " + " | ".join(cells) + " |"


def cpu_per_epoch_cell(run, root):
    """Process CPU time per pretraining epoch over all invocations (result.json's totalCPUSeconds;
    for a PeCo stage 2, plus its tokenizer's whole training in brackets)."""
    if run is None or os.path.basename(run) in RAW_INPUT:
        return "–"
    if os.path.basename(run) in CPU_NOT_RECORDED:
        return "not recorded (sessions 1–6; see Cost)"
    pending = unfinished_cell(run)
    if pending is not None:
        return pending if pending == "queued" else "…"
    result = load(os.path.join(run, "result.json"))
    cpu = result.get("totalCPUSeconds")
    if cpu is None:
        return f"not recorded (wall {result['totalSeconds'] / result['epochs'] / 60:.0f} min an epoch on shared cores)"
    cell = f"{cpu / result['epochs'] / 60:.1f} CPU min"
    tokenizer = TOKENIZER_OF.get(os.path.basename(run))
    if tokenizer:
        t = load(os.path.join(root, tokenizer, "result.json")) or {}
        if t.get("totalCPUSeconds") is not None:
            cell += f" (+ tokenizer {t['totalCPUSeconds'] / 60:.0f} CPU min in all)"
    return cell


def table(root, previous=None, previous_goal=None):
    head = ["pretraining", "epochs", "pretraining CPU per epoch", "k-NN top-1", "linear probe top-1", "PSNR, own masks",
            "PSNR, random masks"] + [f"fine-tune top-1, {e} epochs" for e in FINETUNE_EPOCHS]
    lines = header_lines(head)
    for label, epochs, pretraining, finetunes in ROWS:
        pt = os.path.join(root, pretraining) if pretraining else None
        cells = [label, epochs, cpu_per_epoch_cell(pt, root)] + pretraining_cells(pt)
        for e in FINETUNE_EPOCHS:
            ft = finetunes.get(e)
            cells.append(finetune_cell(os.path.join(root, ft) if ft else None))
        lines.append(row_line(head, cells, previous))
    return "\n".join(lines) + "\n\n" + tokenizer_table(root, previous) + "\n\n" + large_table(root, previous) \
        + "\n\n" + goal_line(root, previous_goal)


def tokenizer_cells(run):
    """Test-split PSNR through the codes, perplexity of the code usage, unused codes, bag-of-codes probe."""
    if not os.path.isdir(run):
        return ["queued"] * 4
    if not finished(run):
        return [progress(run)] + ["…"] * 3
    t = load(os.path.join(run, "tokenizer.json"))
    if t is None:
        return ["queued"] * 4
    probe = (t.get("bagOfCodesProbe") or {}).get("top1")
    return [f"{t['psnr']:.2f} dB", f"{t['perplexity']:.1f} of {t['codebookSize']}", f"{100 * t['unusedShare']:.1f}%", percent(probe)]


def tokenizer_table(root, previous=None):
    head = ["tokenizer", "epochs", "PSNR through the codes", "code perplexity", "unused codes", "bag-of-codes linear probe top-1"]
    lines = header_lines(head)
    for label, epochs, run in TOKENIZER_ROWS:
        cells = [label, epochs] + tokenizer_cells(os.path.join(root, run))
        lines.append(row_line(head, cells, previous))
    return "\n".join(lines)


def pretraining_time_cell(run, reference):
    """The run's process CPU time over all invocations (result.json's totalCPUSeconds), its share of
    the reference run's, and its wall time: the cost the large-size comparison is about."""
    pending = unfinished_cell(run)
    if pending is not None:
        return pending
    result = load(os.path.join(run, "result.json"))
    cpu, wall = result.get("totalCPUSeconds"), result.get("totalSeconds")
    if cpu is None:
        return f"CPU not recorded; wall {wall / 3600:.2f} h"
    cell = f"{cpu / 3600:.2f} CPU h"
    base = load(os.path.join(reference, "result.json")) if reference and reference != run and finished(reference) else None
    if base and base.get("totalCPUSeconds"):
        cell += f" ({100 * cpu / base['totalCPUSeconds']:.0f}% of MAE's)"
    return cell + f", wall {wall / 3600:.2f} h"


def large_probe_cells(run):
    """k-NN and linear probe of a large-size pretraining (no PSNR: LoMaR's and MAE's masks differ)."""
    if run is None:
        return ["–"] * 2
    if not os.path.isdir(run):
        return ["queued"] * 2
    if not finished(run):
        return [progress(run), "…"]
    return probe_cells(run)


def large_table(root, previous=None):
    head = ["pretraining at 84 px", "epochs", "pretraining time (process CPU; share of MAE's)", "k-NN top-1 (10 k bank)",
            "linear probe top-1 (10 k images)", "fine-tune top-1 (2 epochs on 10 k images)"]
    lines = header_lines(head)
    reference = os.path.join(root, LARGE_ROWS[0][2])
    for label, epochs, pretraining, finetune in LARGE_ROWS:
        pt = os.path.join(root, pretraining) if pretraining else None
        knn, linear = large_probe_cells(pt)
        # The epochs the run was started with (its recipe.json) once it exists: a smoke run's, or a changed script's.
        recorded = (load(os.path.join(pt, "recipe.json")) or {}).get("epochs") if pt else None
        cells = [label, epochs if recorded is None else str(recorded), pretraining_time_cell(pt, reference), knn, linear,
                 finetune_cell(os.path.join(root, finetune))]
        lines.append(row_line(head, cells, previous))
    return "\n".join(lines)


def against_mae(root, row):
    """(share of MAE's pretraining CPU time or None if unrecorded, fine-tune top-1 gap in points) of a
    finished LARGE_ROWS row against the first (MAE's). The gap is rounded to 1e-9: top-1 on 10,000
    images moves in steps of 0.01 points, and a gap of exactly 0.5 must not read as 0.5000000000000004."""
    mae_pt, mae_ft = (os.path.join(root, LARGE_ROWS[0][i]) for i in (2, 3))
    pt, ft = (os.path.join(root, row[i]) for i in (2, 3))
    mae_cpu = load(os.path.join(mae_pt, "result.json")).get("totalCPUSeconds")
    cpu = load(os.path.join(pt, "result.json")).get("totalCPUSeconds")
    share = cpu / mae_cpu if cpu is not None and mae_cpu else None
    return share, round(100 * (finetune_top1(ft) - finetune_top1(mae_ft)), 9)


def against_mae_text(share, gap):
    share_text = "CPU time not recorded" if share is None else f"{100 * share:.1f}% of MAE's pretraining CPU time"
    return f"{share_text}, fine-tune top-1 {gap:+.2f} points against MAE's"


def goal_line(root, previous=None):
    """Issue 17's verdict: LoMaR (T/2)'s measured share of MAE's pretraining CPU time and the gap
    between their fine-tune top-1, each against its bound (both bounds inclusive); LoMaR (T)'s two
    numbers beside it once measured. Until the runs have finished it names those missing; on a
    machine without their folders it keeps the document's `previous` line, as the table keeps cells."""
    runs = [os.path.join(root, row[i]) for row in LARGE_ROWS[:2] for i in (2, 3)]
    if previous and not any(os.path.isdir(run) for run in runs):
        return previous
    criterion = (f"{GOAL_PREFIX} (issue 17: LoMaR's fine-tune top-1 within {GOAL_TOP1_POINTS} points of MAE's in at most "
                 f"{100 * GOAL_CPU_SHARE:.0f}% of MAE's pretraining CPU time): ")
    waiting = [os.path.basename(run) for run in runs if not finished(run)]
    if waiting:
        return criterion + "waiting for " + ", ".join(waiting) + "."
    share, gap = against_mae(root, LARGE_ROWS[1])
    misses = []
    if share is None:
        misses.append("CPU time not recorded")
    elif share > GOAL_CPU_SHARE:
        misses.append(f"more than {100 * GOAL_CPU_SHARE:.0f}% of MAE's CPU time")
    if gap < -GOAL_TOP1_POINTS:
        misses.append(f"more than {GOAL_TOP1_POINTS} points below MAE's top-1")
    verdict = "met" if not misses else "missed: " + ", ".join(misses)
    line = criterion + f"LoMaR (T/2) {against_mae_text(share, gap)}: **{verdict}**."
    equal = LARGE_ROWS[2]
    if all(finished(os.path.join(root, equal[i])) for i in (2, 3)):
        line += f" At MAE's time, LoMaR (T) {against_mae_text(*against_mae(root, equal))}."
    return line


def previous_goal_line(document):
    """The goal line between the markers of `document`, if it has one."""
    try:
        with open(document) as f:
            content = f.read()
    except FileNotFoundError:
        return None
    if BEGIN not in content or END not in content:
        return None
    for line in content[content.index(BEGIN):content.index(END)].splitlines():
        if line.startswith(GOAL_PREFIX):
            return line
    return None


def update(document, text):
    with open(document) as f:
        content = f.read()
    if content.count(BEGIN) != 1 or content.count(END) != 1:
        sys.exit(f"{document}: needs exactly one {BEGIN} and one {END} line")
    start, stop = content.index(BEGIN) + len(BEGIN), content.index(END)
    updated = content[:start] + "\n" + text + "\n" + content[stop:]
    temporary = document + ".tmp"
    with open(temporary, "w") as f:
        f.write(updated)
    os.replace(temporary, document)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs/fmnist", help="folder of run folders (default: runs/fmnist)")
    parser.add_argument("--update", metavar="MARKDOWN", help="rewrite the table between the markers in this file")
    args = parser.parse_args()
    if not os.path.isdir(args.runs):
        sys.exit(f"no run folder {args.runs}: run scripts/fmnist-experiments.sh first")
    previous = (previous_rows(args.update), previous_goal_line(args.update)) if args.update else (None, None)
    text = table(args.runs, *previous)
    if args.update:
        update(args.update, text)
    else:
        print(text)


if __name__ == "__main__":
    main()
