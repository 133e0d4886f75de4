"""``tfmodelsec chain``: train a model block by block and store the checkpoint chain."""

from __future__ import annotations

from tfmodelsec.cli._common import (
    CliError,
    add_dataset_argument,
    add_parser,
    add_strategy_argument,
    dataset_options,
    parse_int_list,
    strategy_arg,
)

EXAMPLE = """tfmodelsec chain --model lenet5 --dataset mnist --blocks 100 --out runs/chain
tfmodelsec chain --model lenet5 --dataset mnist --blocks 100 --out runs/chain --resume
tfmodelsec chain --model lenet5 --dataset digits --blocks 20 --sisa 5,4 --out runs/digits_chain
# SISA shards split over 2 machines (no chain), then merged:
tfmodelsec chain --model lenet5 --dataset mnist --sisa 10,4 --part 1/2 --out runs/chain  # machine A
tfmodelsec chain --model lenet5 --dataset mnist --sisa 10,4 --part 2/2 --out runs/chain  # machine B
tfmodelsec merge runs/chain/sisa --out runs/chain/sisa"""


DEFAULT_BLOCKS = 100


def register(sub) -> None:
    from tfmodelsec.models.zoo import MODELS

    p = add_parser(
        sub,
        "chain",
        example=EXAMPLE,
        help="train block by block, storing every intermediate model (for unlearning)",
        description="Split the training set into B blocks (seeded), train on them in order and "
        "store the model after each block (atomic writes, sha256 manifest). Interrupted? Rerun "
        "with --resume: it continues from the last intact checkpoint.",
    )
    p.add_argument(
        "--model", default="auto", choices=["auto", *sorted(MODELS)],
        help="architecture; auto: lenet5 for images, mlp for feature vectors (default: auto)",
    )
    add_dataset_argument(p)
    add_strategy_argument(p)
    p.add_argument("--blocks", type=int, default=None,
                   help=f"number of blocks B (default: {DEFAULT_BLOCKS}; one per training record when fewer)")
    p.add_argument(
        "--epochs-per-block", type=int, default=1, help="passes over each block (default: 1)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="default: 32")
    p.add_argument("--lr", type=float, default=0.05, help="learning rate (default: 0.05)")
    p.add_argument(
        "--optimizer",
        default="sgd",
        choices=["sgd", "adam"],
        help="state reset at each block (default: sgd)",
    )
    p.add_argument(
        "--train-subset",
        type=int,
        default=None,
        metavar="N",
        help="use the first N training records only",
    )
    p.add_argument(
        "--sisa",
        default=None,
        metavar="S,R",
        help="also train a SISA ensemble of S shards x R slices into DIR/sisa (baseline)",
    )
    p.add_argument(
        "--part",
        default=None,
        metavar="I/N",
        help="train only part I of N of the SISA shards into OUT/sisa (no chain); "
        "join the parts with `tfmodelsec merge`",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted chain in --out")
    p.add_argument("--out", required=True, metavar="DIR", help="chain directory")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys
    from pathlib import Path

    from tfmodelsec.data import load_dataset
    from tfmodelsec.unlearning import train_chain

    sisa = None
    if args.sisa is not None:
        sisa = parse_int_list(args.sisa, name="sisa")
        if len(sisa) != 2:
            raise CliError(
                f"--sisa must be two integers S,R (shards, slices). Received: {args.sisa!r}"
            )
    from tfmodelsec.models.zoo import build_model, default_architecture

    data = load_dataset(args.dataset, **dataset_options(args))
    n = len(data.x_train)
    if args.train_subset is not None:
        if not 0 < args.train_subset <= n:  # a value the user chose: refused, not clamped
            raise CliError(f"--train-subset must be in [1, {n}] (dataset {data.name!r} has {n} training records). "
                           f"Received: {args.train_subset}")
        data = data.subset(n_train=args.train_subset)
    if args.blocks is None:  # the default must fit the data: clamped, with a notice
        args.blocks = min(DEFAULT_BLOCKS, len(data.x_train))
        if args.blocks < DEFAULT_BLOCKS and not args.resume and args.part is None:
            print(f"tfmodelsec chain: note: {len(data.x_train)} training records: {args.blocks} blocks "
                  f"(one record each) instead of the default {DEFAULT_BLOCKS}", file=sys.stderr, flush=True)
    if args.model == "auto":
        args.model = default_architecture(data.input_shape)
    build_model(args.model, data.input_shape, data.num_classes)  # an architecture that cannot take the data says so now
    verbose = 0 if args.quiet else 1
    if args.part is not None:
        return _sisa_part(args, data, sisa, verbose)
    chain = train_chain(
        args.model,
        data,
        args.out,
        blocks=args.blocks,
        epochs_per_block=args.epochs_per_block,
        resume=args.resume,
        verbose=verbose,
        **_training(args),
    )
    acc = float(
        (
            chain.model().predict(data.x_test, batch_size=1024, verbose=0).argmax(1) == data.y_test
        ).mean()
    )
    st = chain.storage()
    print(
        f"chain of {chain.num_blocks} blocks in {chain.path}: final test accuracy {acc:.4f}, "
        f"training {chain.train_seconds:.1f}s"
    )
    print(
        f"storage: {st['checkpoints']} checkpoints x {st['bytes_per_checkpoint'] / 1024:.1f} KiB, "
        f"total {st['total_bytes'] / 2**20:.2f} MiB"
    )
    if sisa is not None and args.resume and (Path(args.out) / "sisa" / "manifest.json").is_file():
        print(f"SISA ensemble already in {Path(args.out) / 'sisa'}")
    elif sisa is not None:
        ens = _train_sisa(args, data, sisa, verbose)
        print(f"SISA {sisa[0]}x{sisa[1]} in {ens.path}")
    return 0


def _train_sisa(args, data, sisa, verbose, part=None):
    from pathlib import Path

    from tfmodelsec.unlearning import train_sisa

    return train_sisa(
        args.model,
        data,
        Path(args.out) / "sisa",
        shards=sisa[0],
        slices=sisa[1],
        epochs_per_slice=args.epochs_per_block,
        part=part,
        verbose=verbose,
        **_training(args),
    )


def _training(args) -> dict:
    """The training settings the chain and the SISA shards share."""
    return dict(
        batch_size=args.batch_size,
        learning_rate=args.lr,
        optimizer=args.optimizer,
        seed=args.seed,
        strategy=strategy_arg(args),
    )


def _sisa_part(args, data, sisa, verbose) -> int:
    """``--part I/N``: train this part's SISA shards only."""
    from tfmodelsec.distribute import parse_part

    part = parse_part(args.part)
    if sisa is None or args.resume:
        raise CliError(
            "--part splits the SISA shards: it needs --sisa S,R and no --resume. "
            f"Received: --sisa {args.sisa!r}{' --resume' if args.resume else ''}"
        )
    path = _train_sisa(args, data, sisa, verbose, part=part)
    print(f"SISA part {part[0]}/{part[1]} ({sisa[0]} shards in all) -> {path}")
    print(f"when every part is done: tfmodelsec merge {path.parent} [other parts' sisa dirs] --out DIR")
    return 0
