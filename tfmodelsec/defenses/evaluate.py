"""Stealer / Defender evaluation of defenses, as in the seed's tables.

* Defender Acc: test top-1 accuracy of the defended answers (what honest users get).
* Stealer Acc: test accuracy of the student each attack trains through
  ``BlackBox(victim, defense=...)``, at each query budget.

Both are printed with the change against "No Defense" (``95.13 (-0.00)``). Attacks:
``kl`` / ``hard`` distillation on random pool samples and ``drmi`` (DRMI-selected
queries, KL) from :mod:`tfmodelsec.attacks.stealing`, and ``jacobian``:
Papernot's Jacobian-based augmentation from a few seeds
(:mod:`tfmodelsec.defenses.jacobian`). Also measured per defense: the share of
answers whose label equals the undefended one, and the cost per answered query as
a ratio to a plain forward pass. A t-SNE figure shows the undefended and defended
output distributions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from tfmodelsec.utils import check_choice, check_positive

__all__ = ["ATTACKS", "DefenseReport", "evaluate_defenses", "format_change", "tsne_embedding", "tsne_plot"]

ATTACKS = ("kl", "hard", "drmi", "jacobian")
# Jacobian augmentation starts from this many seed samples (Papernot et al. use 150).
_JACOBIAN_SEEDS = 150
# Samples timed for the cost-per-query ratio.
_COST_SAMPLES = 1000


def format_change(value: float, baseline: float) -> str:
    """``95.13 (-0.00)``: a percentage and its change against the baseline."""
    change = 100 * (value - baseline)
    sign = "+" if change > 0.005 else "-"
    return f"{100 * value:.2f} ({sign}{abs(change):.2f})"


@dataclass
class DefenseReport:
    """Results of :func:`evaluate_defenses`; ``stealer[defense][f"{attack}@{budget}"]`` = accuracy."""

    defenses: list
    attacks: list
    budgets: list
    defender: dict
    stealer: dict
    label_kept: dict
    cost_ratio: dict
    seconds: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def columns(self) -> list:
        return [f"{a}@{b}" for a in self.attacks for b in self.budgets]

    def to_dict(self) -> dict:
        return {"defenses": self.defenses, "attacks": self.attacks, "budgets": self.budgets,
                "defender_acc": self.defender, "stealer_acc": self.stealer, "label_kept": self.label_kept,
                "cost_per_query_ratio": self.cost_ratio, "seconds": self.seconds, **self.extra}

    def to_markdown(self) -> str:
        base = "none" if "none" in self.defenses else self.defenses[0]
        cols = self.columns()
        head = ["Defense", "Defender Acc", *[f"Stealer Acc {c.replace('@', ' @ ')}" for c in cols],
                "label kept", "cost / query"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for d in self.defenses:
            cells = [d, format_change(self.defender[d], self.defender[base])]
            for c in cols:
                v, b = self.stealer.get(d, {}).get(c), self.stealer.get(base, {}).get(c)
                cells.append("-" if v is None else (format_change(v, b) if b is not None else f"{100 * v:.2f}"))
            cells += [f"{100 * self.label_kept[d]:.1f}%", f"{self.cost_ratio[d]:.1f}x"]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _defended(victim, defense, x, batch_size=512):
    from tfmodelsec.oracle import defended_forward

    fn = defended_forward(victim, defense)
    return np.concatenate([fn(x[i:i + batch_size]).numpy() for i in range(0, len(x), batch_size)])


def _cost_ratio(victim, defense, x, repeats: int = 5) -> float:
    """Median time of the defended forward over the plain one, measured in alternation.

    Both functions first run over every batch shape once (tracing is not cost), and
    the runs interleave so a busy machine slows both alike.
    """
    from tfmodelsec.oracle import defended_forward

    fns = {"plain": defended_forward(victim, None), "defended": defended_forward(victim, defense)}

    def sweep(fn):
        start = time.perf_counter()
        for i in range(0, len(x), 256):
            fn(x[i:i + 256]).numpy()
        return time.perf_counter() - start

    for fn in fns.values():
        sweep(fn)
    runs = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            runs[key].append(sweep(fn))
    return float(np.median(runs["defended"]) / np.median(runs["plain"]))


def tsne_embedding(outputs: dict, *, seed: int = 0, max_iter: int = 500) -> dict:
    """Joint 2-D t-SNE of several output sets (same samples): ``name -> (N, 2)``."""
    from sklearn.manifold import TSNE

    names = list(outputs)
    stacked = np.concatenate([np.log(np.clip(outputs[n], 1e-7, 1)) for n in names])
    perplexity = float(min(30, max(5, len(stacked) // 10)))
    # n_jobs=1: on a busy machine sklearn's thread pool costs far more than it saves here
    xy = TSNE(2, perplexity=perplexity, init="pca", random_state=seed, max_iter=max_iter,
              n_jobs=1).fit_transform(stacked)
    n = len(outputs[names[0]])
    return {name: xy[i * n:(i + 1) * n] for i, name in enumerate(names)}


def _steal(attack, oracle, pool, idx, test, epochs, seed, student, strategy):
    from tfmodelsec.attacks.stealing import steal

    loss = "hard" if attack == "hard" else "kl"
    result = steal(oracle, pool[idx], student=student, loss=loss, epochs=epochs, augment=False,
                   eval_data=test, transfer_eps=0.0, seed=seed, strategy=strategy, verbose=0)
    return result.accuracy


def evaluate_defenses(victim, defenses, data, *, attacks=("kl",), budgets=(1000,), seed: int = 0,
                      epochs: int = 10, student="auto", test_samples: int | None = 10000,
                      tsne_samples: int = 0, tsne_defenses=None, strategy=None, verbose: int = 1) -> DefenseReport:
    """Measure Defender and Stealer accuracy of each defense against each attack and budget.

    Args:
        victim: a Victim / keras.Model / path.
        defenses: ``{name: layer or None}`` (``None`` = no defense; include ``"none"``
            as the baseline), or a list of names for :func:`~tfmodelsec.defenses.make_defense`
            (trained on ``data.x_train`` with ``seed``).
        data: a :class:`~tfmodelsec.data.Dataset` fitted to the victim (shape, input range;
            see :func:`tfmodelsec.models.align_data`): ``x_train`` is the attacker's pool,
            the test split measures both accuracies.
        attacks: among :data:`ATTACKS`.
        budgets: query budgets (each attack spends exactly that many queries).
        seed: seeds query choice, students and defenses.
        epochs: student training epochs.
        student: the attacker's architecture (zoo name; ``"auto"``: LeNet-5 for images, an MLP
            for feature vectors).
        test_samples: test samples used (``None``: all).
        tsne_samples: if > 0, embed this many test outputs per defense with t-SNE
            (``report.extra["tsne"]`` holds the coordinates; see :func:`tsne_embedding`).
        tsne_defenses: which defenses to embed (default: all).
        strategy: a ``tf.distribute.Strategy`` for the students, the Jacobian substitutes and
            the defenses trained here (default: the current one).
        verbose: 0 silent, 1 a line per result.

    Returns:
        :class:`DefenseReport`.
    """
    from tfmodelsec.attacks.stealing.selection import select_queries
    from tfmodelsec.defenses.jacobian import jacobian_augmentation
    from tfmodelsec.defenses.registry import make_defense
    from tfmodelsec.models.io import as_victim
    from tfmodelsec.oracle import BlackBox

    victim = as_victim(victim)
    victim.check_input_shape(data.input_shape, what=f"dataset {data.name!r}")
    attacks = [check_choice("attacks", a, ATTACKS) for a in attacks]
    budgets = [int(b) for b in budgets]
    for b in budgets:
        check_positive("budgets", b, integer=True)
    if max(budgets) > len(data.x_train):
        raise ValueError(f"`budgets` must not exceed the pool size {len(data.x_train)}. Received {budgets}")
    if not isinstance(defenses, dict):
        defenses = {str(n): make_defense(n, victim, x=data.x_train, seed=seed, strategy=strategy)
                    for n in defenses}
    names = list(defenses)
    x_test, y_test = data.x_test[:test_samples], data.y_test[:test_samples]
    test = (x_test, y_test)
    pool = data.x_train
    plain = victim.probabilities(x_test)
    defender, stealer, kept, cost, seconds, outputs = {}, {}, {}, {}, {}, {}
    rng = np.random.default_rng(seed)
    random_idx = {b: np.sort(rng.choice(len(pool), b, replace=False)) for b in budgets}
    drmi_idx = ({b: select_queries(pool, b, method="drmi", seed=seed, value_range=victim.input_range)
                 for b in budgets} if "drmi" in attacks else {})
    jac_seeds = pool[rng.choice(len(pool), min(_JACOBIAN_SEEDS, min(budgets)), replace=False)]
    for name in names:
        start = time.perf_counter()
        layer = defenses[name]
        answers = _defended(victim, layer, x_test)
        outputs[name] = answers
        defender[name] = float(np.mean(answers.argmax(1) == y_test))
        kept[name] = float(np.mean(answers.argmax(1) == plain.argmax(1)))
        cost[name] = _cost_ratio(victim, layer, x_test[:_COST_SAMPLES])
        stealer[name] = {}
        for attack in attacks:
            for b in budgets:
                oracle = BlackBox(victim, defense=layer, budget=b)
                if attack == "jacobian":
                    acc = jacobian_augmentation(oracle, jac_seeds, budget=b, student=student, epochs=epochs,
                                                eval_data=test, seed=seed, strategy=strategy).accuracy
                else:
                    idx = drmi_idx[b] if attack == "drmi" else random_idx[b]
                    acc = _steal(attack, oracle, pool, idx, test, epochs, seed, student, strategy)
                stealer[name][f"{attack}@{b}"] = acc
                if verbose:
                    print(f"[defenses] {name:16s} {attack}@{b}: stealer {100 * acc:.2f}  "
                          f"(defender {100 * defender[name]:.2f})", flush=True)
        seconds[name] = round(time.perf_counter() - start, 2)
    extra = {}
    if tsne_samples > 0:
        chosen = [n for n in (tsne_defenses or names) if n in outputs]
        k = min(tsne_samples, len(x_test))
        emb = tsne_embedding({n: outputs[n][:k] for n in chosen}, seed=seed)
        extra["tsne"] = {n: {"xy": emb[n].round(3).tolist(), "labels": y_test[:k].tolist()} for n in chosen}
    return DefenseReport(names, attacks, budgets, defender, stealer, kept, cost, seconds, extra)


def tsne_plot(report: DefenseReport, path, *, title: str = ""):
    """Write the t-SNE panels of ``report`` (needs ``tsne_samples > 0``) to ``path``; return the path."""
    from tfmodelsec import plotting

    panels = {n: (np.asarray(v["xy"]), np.asarray(v["labels"])) for n, v in report.extra["tsne"].items()}
    fig = plotting.tsne_figure(panels, title=title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plotting.close(fig)
    return path

