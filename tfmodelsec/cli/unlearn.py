"""``tfmodelsec unlearn``: forget training records using a stored checkpoint chain."""

from __future__ import annotations

from pathlib import Path

from tfmodelsec.cli._common import (
    DATASET_HELP,
    CliError,
    add_data_options,
    add_parser,
    add_strategy_argument,
    dataset_options,
    strategy_arg,
)
from tfmodelsec.ids import FORMAT_HELP, read_ids

EXAMPLE = """tfmodelsec unlearn runs/chain --delete 12,345,6789 --epsilon 0.1 --out runs/forget
tfmodelsec unlearn runs/chain --delete ids.txt --method sisa --out runs/forget_sisa"""

METHODS = ("deepobliviate", "sisa", "retrain")


def register(sub) -> None:
    p = add_parser(
        sub,
        "unlearn",
        example=EXAMPLE,
        help="make a model forget training records (DeepObliviate, SISA or retraining)",
        description="Unlearn records from a chain built by `tfmodelsec chain` (read only: the "
        "chain is never modified). Writes OUT/model.h5, OUT/unlearn.json (blocks retrained, "
        "seconds, test top-1/top-5, consistency with and speed-up over naive retraining, "
        "membership AUC of the deleted records before/after) and OUT/residual.png.",
    )
    p.add_argument("chain", metavar="DIR", help="chain directory (from `tfmodelsec chain`)")
    p.add_argument(
        "--delete",
        required=True,
        metavar="IDS",
        help="training-set indices to forget; " + FORMAT_HELP,
    )
    p.add_argument(
        "--method", default="deepobliviate", choices=METHODS, help="default: deepobliviate"
    )
    p.add_argument(
        "--epsilon",
        type=float,
        default=0.1,
        help="DeepObliviate: stop when the fitted residual memory < epsilon (default: 0.1)",
    )
    p.add_argument(
        "--max-blocks", type=int, default=None, help="DeepObliviate: retrain at most N blocks"
    )
    p.add_argument(
        "--no-reference",
        action="store_true",
        help="skip naive retraining (then no consistency / speed-up figures)",
    )
    p.add_argument("--dataset", default=None, metavar="NAME|PATH",
                   help="the chain's training data, if not where the chain recorded it (checked against the "
                        "chain's fingerprint): " + DATASET_HELP)
    add_data_options(p)
    add_strategy_argument(p)
    p.add_argument("--out", required=True, metavar="OUT", help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from tfmodelsec import plotting
    from tfmodelsec.models.io import save_model
    from tfmodelsec.unlearning import (
        Chain,
        Sisa,
        evaluate_unlearning,
        retrain,
        unlearn,
        unlearn_sisa,
    )
    from tfmodelsec.utils import write_json

    chain_dir, out = Path(args.chain).resolve(), Path(args.out).resolve()
    if out == chain_dir or chain_dir in out.parents:
        raise CliError(
            f"--out must be outside the chain directory (the chain is never modified). "
            f"Received: --out {args.out}"
        )
    ids = read_ids(args.delete, name="--delete")
    chain = Chain.open(chain_dir)
    data = chain.load_data(args.dataset, **dataset_options(args))
    verbose = 0 if args.quiet else 1
    strategy = strategy_arg(args)
    if args.method == "deepobliviate":
        result = unlearn(
            chain, ids, epsilon=args.epsilon, data=data, max_blocks=args.max_blocks,
            strategy=strategy, verbose=verbose,
        )
    elif args.method == "sisa":
        result = unlearn_sisa(Sisa.open(chain_dir / "sisa"), ids, data=data, strategy=strategy,
                              verbose=verbose)
    else:
        result = retrain(chain, ids, data=data, strategy=strategy, verbose=verbose)
    keep = np.asarray(ids)
    deleted = (data.x_train[keep], data.y_train[keep])
    payload = {"chain": str(chain_dir), **result.to_dict(), "chain_config": chain.config.to_dict()}
    payload["before"] = evaluate_unlearning(chain.model(), data, deleted=deleted)
    reference = None
    if not args.no_reference:
        reference = (
            result if args.method == "retrain" else retrain(chain, ids, data=data, strategy=strategy, verbose=verbose)
        )
        payload["reference"] = {
            "method": "retrain",
            "seconds": round(reference.seconds, 4),
            **evaluate_unlearning(reference.model, data, deleted=deleted),
        }
        payload["speedup"] = reference.seconds / max(result.seconds, 1e-9)
    payload["after"] = evaluate_unlearning(
        result.model,
        data,
        deleted=deleted,
        reference=None if reference is None else reference.model,
    )
    out.mkdir(parents=True, exist_ok=True)
    save_model(
        result.model,
        out / "model.h5",
        metadata={"method": result.method, "chain": str(chain_dir), "deleted": result.deleted},
    )
    write_json(out / "unlearn.json", payload)
    fig = result.plot()
    fig.savefig(out / "residual.png", dpi=110, bbox_inches="tight")
    plotting.close(fig)
    after = payload["after"]
    line = (
        f"{result.method}: forgot {result.deleted} records (first in block {result.first_block}), "
        f"retrained {result.blocks_retrained}/{result.total_blocks} blocks "
        f"in {result.seconds:.2f}s; "
        f"test top-1 {after['top1']:.4f}"
    )
    if reference is not None:
        line += f", consistency {after['consistency']:.4f}, speed-up {payload['speedup']:.1f}x"
    print(
        line + f", deleted-record membership AUC {payload['before']['membership_auc']:.3f} -> "
        f"{after['membership_auc']:.3f}"
    )
    print(f"wrote {out / 'model.h5'}, {out / 'unlearn.json'}, {out / 'residual.png'}")
    return 0
