"""``tfmodelsec merge``: join the parts of work split with ``--part I/N``."""

from __future__ import annotations

from pathlib import Path

from tfmodelsec.cli._common import CliError, add_parser

EXAMPLE = """\
tfmodelsec merge runs/lira_parts --out runs/lira                  # LiRA shadows -> runs/lira/lira_shadows.npz
tfmodelsec merge hostA/chain/sisa hostB/chain/sisa --out runs/chain/sisa   # SISA shards -> manifest.json
tfmodelsec merge runs/steal/cache --out runs/steal/cache          # DRMI MI matrix -> mi_KEY.npz"""


def part_kind(stem: str, ext: str) -> str | None:
    """What a part file holds, from its stem and extension: ``"lira"``, ``"mi"``, ``"sisa"`` or ``None``."""
    if ext == ".npz" and stem == "lira_shadows":
        return "lira"
    if ext == ".npz" and stem.startswith("mi_"):  # mi_KEY: one matrix per pool
        return "mi"
    if ext == ".json" and stem == "manifest":
        return "sisa"
    return None


def register(sub) -> None:
    p = add_parser(
        sub, "merge", example=EXAMPLE,
        help="join the parts of a split run (--part I/N): LiRA shadows, SISA shards, DRMI MI blocks",
        description="Read every part file (NAME.part-I-of-N.EXT) in the given folders or files, check "
                    "that they come from one run and cover every item exactly once, and write the "
                    "merged result to OUT, where the commands that use it look: lira_shadows.npz "
                    "(membership --lira-shadows-from), manifest.json of a SISA ensemble (unlearn "
                    "--method sisa), mi_KEY.npz (the MI cache of steal --select drmi).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="folders holding part files, or the part files themselves")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=run)


def find_parts(paths) -> dict:
    """Group the part files under ``paths`` by what they hold: ``{(kind, stem): [files]}``."""
    from tfmodelsec.distribute import part_of_filename

    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(p.iterdir()))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"merge: no such file or folder {str(p)!r}")
    groups: dict = {}
    for f in files:
        parsed = part_of_filename(f.name)
        if parsed is None:
            continue
        stem, _ = parsed
        kind = part_kind(stem, f.suffix)
        if kind is not None:
            groups.setdefault((kind, stem), []).append(f)
    return groups


def run(args) -> int:
    from tfmodelsec.attacks.membership.lira import LiraShadows, merge_lira_shadows
    from tfmodelsec.attacks.stealing.drmi import merge_mi_parts
    from tfmodelsec.unlearning.sisa import merge_sisa

    groups = find_parts(args.paths)
    if not groups:
        raise CliError(f"merge: no part files (NAME.part-I-of-N.EXT) in {' '.join(args.paths)}")
    out = Path(args.out)
    for (kind, stem), files in sorted(groups.items()):
        if kind == "lira":
            merged = merge_lira_shadows([LiraShadows.load(f) for f in files])
            path = merged.save(out / "lira_shadows.npz")
            print(f"merged {len(files)} parts: {merged.num_shadows} LiRA shadows -> {path}")
        elif kind == "mi":
            mi = merge_mi_parts(files, cache_dir=out)
            print(f"merged {len(files)} parts: {mi.shape[0]}x{mi.shape[1]} MI matrix -> {out / (stem + '.npz')}")
        else:
            sisa = merge_sisa(files, out)
            print(f"merged {len(files)} parts: SISA {sisa.config['shards']}x{sisa.config['slices']} "
                  f"-> {sisa.path / 'manifest.json'}")
    return 0
