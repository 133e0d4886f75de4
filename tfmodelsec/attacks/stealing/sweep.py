"""Budget sweeps of the stealing attack (CLI, audit report, benchmark).

One row per seed x selection method x loss x budget: a fresh ``BlackBox`` with
exactly that budget, the queries chosen by :func:`~tfmodelsec.attacks.stealing.selection.select_queries`,
the student from :func:`~tfmodelsec.attacks.stealing.steal`, its metrics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["PAPER_DRMI_LENET5", "selected_queries", "summarize", "sweep"]

# The DRMI paper's LeNet-5 / MNIST row (accuracy, transferability) per query budget.
PAPER_DRMI_LENET5 = {
    50: (0.8227, 0.6606), 150: (0.9213, 0.6832), 200: (0.9327, 0.6915), 300: (0.9434, 0.6980),
    600: (0.9649, 0.7198),
}


def selected_queries(budget: int, active_share: float) -> int:
    """Queries of a budget chosen by the selection method; the rest are active (uncertainty) queries."""
    n = budget - round(budget * active_share)
    if n < 1:
        raise ValueError(f"`active_share` must leave >= 1 query for the selection method. "
                         f"Received: active_share={active_share} at budget {budget}")
    return n


def sweep(victim, pool, budgets, *, methods=("drmi",), losses=("kl",), seeds=(0,), eval_data=None,
          student="auto", semi_supervised=True, active_share: float = 0.0, selection=None,
          steal_options=None, out_dir=None, cache_dir=None, verbose: int = 1) -> list[dict]:
    """Steal ``victim`` once per seed x method x loss x budget; return one dict per run.

    Args:
        victim: the model under attack (a Victim, keras.Model or path); each run sees it
            only through a new ``BlackBox(victim, budget=budget)``.
        pool: the attacker's unlabeled inputs (images or feature vectors, in the victim's input
            range); queries are chosen from it and, with ``semi_supervised``, the rest is used
            without querying.
        budgets: query budgets (each run spends exactly its budget).
        methods: selection methods (see ``SELECTION_METHODS``); losses: ``LOSSES``.
        eval_data: ``(x_test, y_test)`` for accuracy / fidelity / transferability.
        semi_supervised: ``steal``'s self-training setting (``True``: defaults; ``False``: off).
        active_share: share of each budget spent on uncertainty-sampled queries after the
            first distillation (``steal(active_queries=...)``); the rest is chosen by ``method``.
        selection: extra keyword arguments for ``select_queries`` (candidates, restarts...).
        steal_options: extra keyword arguments for ``steal`` (epochs, temperature...).
        out_dir: when given, each student is saved there as ``.h5`` (file named in its row).
        cache_dir: MI-matrix cache shared by the runs (default: ``out_dir/cache``).
    """
    from tfmodelsec.attacks.stealing.distillation import steal
    from tfmodelsec.attacks.stealing.selection import select_queries
    from tfmodelsec.models.io import as_victim, save_model
    from tfmodelsec.oracle import BlackBox
    from tfmodelsec.utils import check_probability

    check_probability("active_share", active_share)
    victim = as_victim(victim)
    budgets = [int(b) for b in budgets]
    if not budgets or min(budgets) <= 0:
        raise ValueError(f"`budgets` must be positive integers. Received: budgets={budgets!r}")
    out_dir = None if out_dir is None else Path(out_dir)
    if cache_dir is None and out_dir is not None:
        cache_dir = out_dir / "cache"
    attack = ("active+" if active_share else "") + ("self-training" if semi_supervised else "distillation")
    rows = []
    for seed in seeds:
        for method in methods:
            for budget in budgets:
                n_active = budget - selected_queries(budget, active_share)
                idx, info = select_queries(pool, budget - n_active, method=method, seed=seed,
                                           input_shape=victim.input_shape, cache_dir=cache_dir,
                                           return_info=True, **{"value_range": victim.input_range,
                                                                **(selection or {})})
                for loss in losses:
                    oracle = BlackBox(victim, budget=budget)
                    res = steal(oracle, pool[idx], loss=loss, student=student, unlabeled=pool,
                                semi_supervised=semi_supervised or None, active_queries=n_active,
                                eval_data=eval_data, seed=seed,
                                verbose=0, **(steal_options or {}))
                    row = {"attack": attack, "method": method, "loss": loss, "budget": budget, "seed": seed,
                           "active_queries": n_active,
                           "oracle_queries": oracle.queries_used, **res.to_dict(),
                           "selection_seconds": round(info["seconds"], 3)}
                    if "cost" in info:
                        row["selection_cost"] = info["cost"]
                    if out_dir is not None:
                        name = f"student_{attack.replace('+', '_')}_{method}_{loss}_{budget}_s{seed}.h5"
                        save_model(res.student, out_dir / name, metadata={k: v for k, v in row.items()})
                        row["student"] = name
                    rows.append(row)
                    if verbose:
                        acc = "" if row["accuracy"] is None else f" accuracy {row['accuracy']:.4f}"
                        print(f"[steal] {attack} {method}/{loss} budget {budget} seed {seed}:{acc} "
                              f"({row['seconds']:.1f}s)", flush=True)
    return rows


def summarize(rows, keys=("attack", "method", "loss", "budget"), metrics=("accuracy", "fidelity", "transferability",
                                                                 "distill_accuracy", "seconds")) -> list[dict]:
    """Mean and std over seeds of each metric, per ``keys`` group."""
    groups: dict = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, members in groups.items():
        entry = dict(zip(keys, key, strict=True))
        entry["seeds"] = len(members)
        for m in metrics:
            vals = [r[m] for r in members if r.get(m) is not None]
            if vals:
                entry[m] = float(np.mean(vals))
                entry[f"{m}_std"] = float(np.std(vals))
        out.append(entry)
    return out

