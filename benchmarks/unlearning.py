"""DeepObliviate vs naive retraining vs SISA on MNIST / LeNet-5 (issue 8, seed 004).

    python benchmarks/unlearning.py            # full run (~10 min on 2 shared CPU cores)
    python benchmarks/unlearning.py --quick    # smoke run on a 6,000-record subset

Targets: chain of >= 100 blocks; delete 1 / 100 / 1,000 records located in an early
and in a middle block; epsilon 0.1 and 0.05 with the seed's stop rule (fitted residual
a·x^-h + b < ε, the default), and the opt-in "memory" rule (a·x^-h < ε) beside it.
DeepObliviate speed-up over naive
retraining >= 30x (measured in the same run), top-1 within 0.5 point of the naive
model, consistency >= 97%; SISA in the same run; membership AUC (loss threshold) of the
deleted records after unlearning <= 0.55. Writes results/unlearning.json, .md (the
paper's table layout) and unlearning_residual.png.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import RESULTS, setup_keras_home, write_result

setup_keras_home()

import numpy as np  # noqa: E402

from tfmodelsec import load_dataset  # noqa: E402
from tfmodelsec.unlearning import (  # noqa: E402
    Chain,
    evaluate_unlearning,
    retrain,
    train_chain,
    train_sisa,
    unlearn,
    unlearn_sisa,
)

SEED = 0
EPSILONS = (0.1, 0.05)
MEMORY_RULE = "memory"  # the opt-in stop rule, run beside the default at every epsilon
TARGET_SPEEDUP, TARGET_TOP1_GAP, TARGET_CONSISTENCY, TARGET_AUC = 30.0, 0.005, 0.97, 0.55


def deletion_ids(chain: Chain, block: int, size: int, rng) -> np.ndarray:
    """``size`` records of ``block``; more than a block holds spill into the next blocks."""
    ids = chain.blocks[block - 1]
    if size <= len(ids):
        return np.sort(rng.choice(ids, size, replace=False))
    return np.sort(np.concatenate(chain.blocks[block - 1 :])[:size])


def residual_grid(cases, path: Path) -> None:
    from matplotlib.figure import Figure

    from tfmodelsec.plotting import power_law_curve

    fig = Figure(figsize=(4.2 * len(cases[0]), 3.2 * len(cases)))
    axes = fig.subplots(len(cases), len(cases[0]), squeeze=False)
    for row, row_cases in zip(axes, cases, strict=True):
        for ax, (title, res) in zip(row, row_cases, strict=True):
            d = np.asarray(res.deltas)
            ax.plot(np.arange(len(d)), d, "o", ms=3, label="Δ_t measured")
            if res.fit:
                xs, ys, mem = power_law_curve(res.fit, len(d))
                ax.plot(xs, ys, "-", label="a·x^-h + b")
                ax.plot(xs, mem, ":", label="memory a·x^-h")
            ax.axhline(res.epsilon, color="gray", ls="--", lw=1, label=f"ε={res.epsilon:g}")
            ax.set_title(f"{title}: stop after {res.blocks_retrained} blocks", fontsize=8)
            ax.set_xlabel("t (blocks after the deleted block)", fontsize=8)
            ax.set_ylabel("Δ_t / ||Inf(B_d)||₁", fontsize=8)
            ax.legend(fontsize=6)
    fig.suptitle("DeepObliviate temporal residual memory (MNIST, LeNet-5)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def pct(v):
    return "–" if v is None else f"{100 * v:.2f}"


def markdown(payload) -> str:
    rows, cfg = payload["rows"], payload["chain"]
    lines = [
        "# Unlearning: DeepObliviate vs naive retraining vs SISA",
        "",
        f"MNIST, LeNet-5, chain of {cfg['blocks']} blocks ({cfg['n_train']} records, 1 epoch per block, "
        f"SGD lr {cfg['learning_rate']}, batch {cfg['batch_size']}); SISA {payload['sisa']['shards']} shards x "
        f"{payload['sisa']['slices']} slices. Speed-up = naive retraining time / unlearning time, same run.",
        "",
        "| No. of Un-Data | Unlearned Position | DO ε=0.1 Top-1 (%) | Top-5 (%) | Con. (%) | Speed-up (×) "
        "| DO ε=0.05 Top-1 (%) | Top-5 (%) | Con. (%) | Speed-up (×) | Naive Top-1 (%) | Top-5 (%) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"{r['deleted']:,}", f"{ordinal(r['position_block'])} ({r['position']})"]
        for eps in EPSILONS:
            d = r["deepobliviate"][str(eps)]
            cells += [
                pct(d["top1"]),
                pct(d.get("top5")),
                pct(d["consistency"]),
                f"{d['speedup']:.1f}",
            ]
        cells += [pct(r["naive"]["top1"]), pct(r["naive"].get("top5"))]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Blocks retrained, SISA and membership AUC of the deleted records (loss threshold, "
        "deleted vs 10,000 unseen test records; 0.5 = chance):",
        "",
        "| Un-Data | Position | blocks retrained ε=0.1 / 0.05 | SISA Top-1 (%) | SISA Con. (%) "
        "| SISA speed-up (×) | AUC before | AUC naive | AUC DO ε=0.1 | AUC DO ε=0.05 | AUC SISA |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        do = r["deepobliviate"]
        lines.append(
            f"| {r['deleted']:,} | {r['position_block']} | {do['0.1']['blocks_retrained']} / "
            f"{do['0.05']['blocks_retrained']} | {pct(r['sisa']['top1'])} | {pct(r['sisa']['consistency'])} "
            f"| {r['sisa']['speedup']:.1f} | {r['before']['membership_auc']:.3f} "
            f"| {r['naive']['membership_auc']:.3f} | {do['0.1']['membership_auc']:.3f} "
            f"| {do['0.05']['membership_auc']:.3f} | {r['sisa']['membership_auc']:.3f} |"
        )
    if all("deepobliviate_memory" in r for r in rows):
        lines += [
            "",
            "The opt-in stop rule `stop_on=\"memory\"` (fitted a·x^-h < ε, the floor b ignored) on the same "
            "deletions: it stops early, and the stitched model keeps the floor's gap to the retrained one.",
            "",
            "| Un-Data | Position | blocks retrained ε=0.1 / 0.05 | fitted floor b | Top-1 ε=0.1 (%) | Con. ε=0.1 (%) "
            "| Speed-up ε=0.1 (×) | Top-1 ε=0.05 (%) | Con. ε=0.05 (%) | Speed-up ε=0.05 (×) | AUC ε=0.1 |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            m = r["deepobliviate_memory"]
            floor = m["0.1"].get("fitted_floor")
            lines.append(
                f"| {r['deleted']:,} | {r['position_block']} | {m['0.1']['blocks_retrained']} / "
                f"{m['0.05']['blocks_retrained']} | {'–' if floor is None else f'{floor:.2f}'} "
                f"| {pct(m['0.1']['top1'])} | {pct(m['0.1']['consistency'])} | {m['0.1']['speedup']:.1f} "
                f"| {pct(m['0.05']['top1'])} | {pct(m['0.05']['consistency'])} | {m['0.05']['speedup']:.1f} "
                f"| {m['0.1']['membership_auc']:.3f} |"
            )
    t = payload["targets"]
    m = t.get("memory_rule")
    memory_note = (f" (memory rule: speed-up {m['speedup_met']}, top-1 {m['top1_met']}, consistency "
                   f"{m['consistency_met']}, AUC {m['auc_met']})") if m else ""
    lines += [
        "",
        "Targets (DeepObliviate rows meeting each, of "
        f"{2 * len(rows)}): speed-up ≥ {TARGET_SPEEDUP:g}×: {t['speedup_met']}; top-1 within "
        f"0.5 pt of naive: {t['top1_met']}; consistency ≥ 97%: {t['consistency_met']}; "
        f"membership AUC ≤ {TARGET_AUC}: {t['auc_met']}"
        + memory_note
        + ".",
        "",
        f"Chain: {payload['storage']['checkpoints']} checkpoints, "
        f"{payload['storage']['bytes_per_checkpoint'] / 1024:.0f} KiB each, "
        f"{payload['storage']['total_bytes'] / 2**20:.1f} MiB in all; trained in "
        f"{payload['chain_seconds']:.1f}s. Residual memory curves: unlearning_residual.png.",
        "",
        "With one deleted record the AUC is that record's loss rank among the test records, so compare "
        "it with the naive model's (the ideal); 1,000 records fill whole blocks (a block holds "
        f"{cfg['n_train'] // cfg['blocks']} records) starting at the given one.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="6,000 MNIST records, 100 blocks, small SISA"
    )
    parser.add_argument(
        "--blocks", type=int, default=None, help="chain length (default 400; quick 100)"
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite results/unlearning.md from results/unlearning.json",
    )
    args = parser.parse_args()
    if args.render:
        import json

        (RESULTS / "unlearning.md").write_text(
            markdown(json.loads((RESULTS / "unlearning.json").read_text()))
        )
        return
    load_start = os.getloadavg()
    data = load_dataset("mnist")
    blocks = args.blocks or (100 if args.quick else 400)
    sizes = (1, 10, 100) if args.quick else (1, 100, 1000)
    if args.quick:
        data = data.subset(n_train=6000)
    settings = dict(batch_size=32, learning_rate=0.05, optimizer="sgd", seed=SEED)
    shards, slices = (5, 4)
    rng = np.random.default_rng(SEED)
    with tempfile.TemporaryDirectory(prefix="tfms-unlearning-") as tmp:
        t0 = time.perf_counter()
        chain = train_chain(
            "lenet5", data, Path(tmp) / "chain", blocks=blocks, verbose=1, **settings
        )
        chain_seconds = time.perf_counter() - t0
        chain = Chain.open(chain.path)  # verifies every checksum once
        t0 = time.perf_counter()
        sisa = train_sisa(
            "lenet5", data, Path(tmp) / "sisa", shards=shards, slices=slices, verbose=1, **settings
        )
        sisa_seconds = time.perf_counter() - t0
        original = chain.model()
        sisa_full = sisa.ensemble()
        full_eval = {
            "chain_final": evaluate_unlearning(original, data),
            "sisa_full": evaluate_unlearning(sisa_full, data),
        }
        print("original model:", full_eval, flush=True)
        rows, grid = [], []
        for position, block in (("early", 1), ("middle", blocks // 2)):
            grid_row = []
            for size in sizes:
                ids = deletion_ids(chain, block, size, rng)
                deleted = (data.x_train[ids], data.y_train[ids])
                naive = retrain(chain, ids, data=data, verbose=0)
                naive_pred = naive.model.predict(data.x_test, batch_size=1024, verbose=0).argmax(1)
                row = {
                    "deleted": size,
                    "position": position,
                    "position_block": block,
                    "blocks_holding_deleted": sorted(set(chain.block_of(ids).tolist())),
                    "before": evaluate_unlearning(original, data, deleted=deleted),
                    "naive": {
                        "seconds": naive.seconds,
                        **evaluate_unlearning(naive.model, data, deleted=deleted),
                    },
                    "deepobliviate": {},
                    "deepobliviate_memory": {},
                }
                for rule, key in (("total", "deepobliviate"), (MEMORY_RULE, "deepobliviate_memory")):
                    for eps in EPSILONS:
                        res = unlearn(chain, ids, epsilon=eps, data=data, stop_on=rule, verbose=0)
                        row[key][str(eps)] = {
                            **res.to_dict(),
                            "speedup": naive.seconds / res.seconds,
                            **evaluate_unlearning(
                                res.model, data, deleted=deleted, reference_pred=naive_pred
                            ),
                        }
                        if eps == EPSILONS[-1] and rule == "total":
                            grid_row.append((f"{size} deleted, {position} block {block}, ε={eps}", res))
                s = unlearn_sisa(sisa, ids, data=data, verbose=0)
                row["sisa"] = {
                    **s.to_dict(),
                    "speedup": naive.seconds / s.seconds,
                    **evaluate_unlearning(
                        s.model, data, deleted=deleted, reference_pred=naive_pred
                    ),
                }
                rows.append(row)
                do = row["deepobliviate"]
                print(
                    f"{size:>5} @ block {block:>3}: naive {naive.seconds:.1f}s top1 {row['naive']['top1']:.4f} | "
                    + " | ".join(
                        f"DO ε={e}: {do[str(e)]['blocks_retrained']} blocks "
                        f"{do[str(e)]['speedup']:.1f}x top1 {do[str(e)]['top1']:.4f} "
                        f"con {do[str(e)]['consistency']:.4f} auc {do[str(e)]['membership_auc']:.3f}"
                        for e in EPSILONS
                    )
                    + f" | SISA {row['sisa']['speedup']:.1f}x con {row['sisa']['consistency']:.4f}",
                    flush=True,
                )
            grid.append(grid_row)
        storage = chain.storage()
        config = chain.config.to_dict()
    do_rows = [(r, r["deepobliviate"][str(e)]) for r in rows for e in EPSILONS]
    mem_rows = [(r, r["deepobliviate_memory"][str(e)]) for r in rows for e in EPSILONS]
    targets = {
        "memory_rule": {
            "speedup_met": sum(d["speedup"] >= TARGET_SPEEDUP for _, d in mem_rows),
            "top1_met": sum(r["naive"]["top1"] - d["top1"] <= TARGET_TOP1_GAP for r, d in mem_rows),
            "consistency_met": sum(d["consistency"] >= TARGET_CONSISTENCY for _, d in mem_rows),
            "auc_met": sum(d["membership_auc"] <= TARGET_AUC for _, d in mem_rows),
        },
        "speedup_met": sum(d["speedup"] >= TARGET_SPEEDUP for _, d in do_rows),
        "top1_met": sum(r["naive"]["top1"] - d["top1"] <= TARGET_TOP1_GAP for r, d in do_rows),
        "consistency_met": sum(d["consistency"] >= TARGET_CONSISTENCY for _, d in do_rows),
        "auc_met": sum(d["membership_auc"] <= TARGET_AUC for _, d in do_rows),
        "of": len(do_rows),
        "speedup_median": float(np.median([d["speedup"] for _, d in do_rows])),
        "speedup_min": float(min(d["speedup"] for _, d in do_rows)),
    }
    payload = {
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "seed": SEED,
        "quick": args.quick,
        "chain": config,
        "chain_seconds": chain_seconds,
        "storage": storage,
        "sisa": {"shards": shards, "slices": slices, "train_seconds": sisa_seconds},
        "full_models": full_eval,
        "targets": targets,
        "rows": rows,
        "choices": {
            "chain": "one pass over the data: each block trained for one epoch, SGD (state-free, so a "
            "checkpoint is the whole training state), batch 32, lr 0.05",
            "deleted_records": "1 and 100 drawn at random from the block; 1,000 exceed a block "
            "(60,000/B records) and fill it and the following blocks",
            "deepobliviate": "Δ_t normalised by ||Inf(B_d|M_{d-1})||_1; power law fitted from the largest Δ "
            "on; default (the seed's rule): stop when the fitted residual a·x^-h + b < ε; deepobliviate_memory: "
            "the opt-in rule a·x^-h < ε (b ignored)",
            "timing": "wall time on a shared 2-core CPU; the block step function is compiled once and "
            "shared by naive retraining, DeepObliviate and SISA, so no timing includes graph "
            "tracing; DeepObliviate's time includes reading and checksumming the checkpoints it "
            "uses, the fits and the stitch; opening/verifying the whole chain is done once before",
            "membership": "loss-threshold AUC (scikit-learn roc_auc_score), deleted records vs the 10,000 "
            "test records; with 1 deleted record it is that record's loss rank",
            "sisa": f"{shards} shards x {slices} slices, stage r trains 1 epoch on slices 1..r; majority vote",
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "unlearning_quick" if args.quick else "unlearning"
    residual_grid(grid, RESULTS / f"{name}_residual.png")
    write_result(name, payload, markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
