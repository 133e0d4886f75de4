"""The audit report's "defenses" section: Stealer / Defender accuracy of a few defenses, t-SNE figure."""

from __future__ import annotations

__all__ = ["audit_section"]

def audit_section(ctx):
    """The "defenses" audit section: Defender/Stealer accuracy of a few defenses, t-SNE figure.

    Quick: no defense, reverse sigmoid and APGP-top1 against KL distillation at one
    small budget (<= 20 s on 2 cores). Full: more defenses and two budgets.
    """
    from tfmodelsec.audit.section import Section
    from tfmodelsec.defenses.evaluate import evaluate_defenses, tsne_plot
    from tfmodelsec.defenses.registry import make_defense

    victim, data = ctx.victim, ctx.data
    n_pool = len(data.x_train)
    if ctx.quick:
        names, budgets, epochs, test_n, tsne_n = ["none", "reverse_sigmoid", "apgp_top1"], \
            [min(200, n_pool)], 1, 500, 120
    else:
        names, budgets, epochs, test_n, tsne_n = ["none", "gaussian", "reverse_sigmoid", "apgp_all", "apgp_top1",
                                                  "apmsa_fgsm", "apmsa_cw"], \
            sorted({min(500, n_pool), min(2000, n_pool)}), 5, 2000, 400
    apgp = {"epochs": 1 if ctx.quick else 5}
    defenses = {n: make_defense(n, victim, x=data.x_train, seed=ctx.seed, **(apgp if n.startswith("apgp") else {}))
                for n in names}
    report = evaluate_defenses(victim, defenses, data, attacks=["kl"], budgets=budgets, seed=ctx.seed,
                               epochs=epochs, test_samples=test_n, tsne_samples=tsne_n,
                               tsne_defenses=["none", "apgp_top1"], verbose=ctx.verbose)
    tsne_plot(report, ctx.out_dir / "defenses_tsne.png", title="t-SNE of log outputs: undefended vs APGP-top1")
    summary = report.to_dict()
    summary.pop("tsne", None)
    md = ("Defender Acc = test accuracy of the defended answers; Stealer Acc = test accuracy of a student "
          "distilled (KL) through the defended black box. Changes against No Defense in brackets.\n\n"
          + report.to_markdown())
    return Section("defenses", "Defenses against model stealing", summary, md, ["defenses_tsne.png"])
