"""The audit report's "stealing" section: a stolen student's accuracy and fidelity vs the query budget."""

from __future__ import annotations

__all__ = ["audit_section"]

def audit_section(ctx):
    """Stealing section: accuracy and fidelity of a stolen student vs the query budget.

    Quick: random queries, plain distillation, budgets 50 / 200. Full: half DRMI, half
    uncertainty-sampled queries and self-training on the unlabeled pool, budgets 50 / 150 / 600.
    """
    from tfmodelsec import plotting
    from tfmodelsec.attacks.stealing import SemiSupervised, sweep
    from tfmodelsec.audit.section import Section

    data = ctx.data
    n_eval = 1000 if ctx.quick else 3000
    eval_data = (data.x_test[:n_eval], data.y_test[:n_eval])
    if ctx.quick:
        pool = data.x_train[:5000]
        budgets = [b for b in (50, 200) if b <= len(pool)] or [max(1, len(pool) // 4)]
        rows = sweep(ctx.victim, pool, budgets, methods=("random",), seeds=(ctx.seed,), eval_data=eval_data,
                     semi_supervised=False, steal_options={"epochs": 4, "transfer_eps": 0.3}, verbose=0)
        how = "random queries, KL distillation (tau = 4) only"
    else:
        pool = data.x_train[:20000]
        budgets = [b for b in (50, 150, 600) if b <= len(pool) // 2] or [max(1, len(pool) // 4)]
        ssl = SemiSupervised(rounds=2, pool_size=5000, epochs=2)
        rows = sweep(ctx.victim, pool, budgets, methods=("drmi",), seeds=(ctx.seed,), eval_data=eval_data,
                     semi_supervised=ssl, active_share=0.5, selection={"candidates": 2000}, verbose=0,
                     steal_options={"epochs": 15})
        how = ("half the queries by DRMI (2,000 candidates), half by uncertainty, KL distillation (tau = 4) "
               "+ self-training on the unlabeled pool")
    fig = plotting.steal_curves_figure(rows, title=f"stealing {data.name}: {how}")
    fig.savefig(ctx.out_dir / "stealing.png", dpi=100, bbox_inches="tight")
    plotting.close(fig)
    from tfmodelsec.models.zoo import default_architecture

    student = default_architecture(ctx.victim.input_shape)
    lines = [(f"Attacker: {how}; student {student}; {len(pool)} unlabeled pool records; evaluated on "
              f"{n_eval} test records. Transferability: FGSM (eps 0.3 of the input range) crafted on the student."),
             "",
             "| queries | accuracy | fidelity | transferability | seconds |", "|---|---|---|---|---|"]
    for r in rows:
        tr = "-" if r["transferability"] is None else f"{r['transferability']:.2%}"
        lines.append(f"| {r['budget']} | {r['accuracy']:.2%} | {r['fidelity']:.2%} | {tr} | {r['seconds']:.1f} |")
    summary = {"setting": how, "pool": len(pool), "eval_samples": n_eval,
               "rows": [{k: r[k] for k in ("budget", "accuracy", "fidelity", "transferability", "queries_used",
                                           "seconds")} for r in rows]}
    return Section("stealing", "Model stealing (distillation)", summary, "\n".join(lines), ["stealing.png"])
