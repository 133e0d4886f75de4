"""``check_export``: load a defended export as a server would and compare it with the in-process model.

It loads the export with ``tf.saved_model.load``, lists its signatures as ``saved_model_cli show --all``
would, runs a sample batch and, given the victim and defense, compares the answers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from tfmodelsec.errors import ModelLoadError
from tfmodelsec.export.signature import (
    ENDPOINT,
    INPUT_NAME,
    METADATA_FILE,
    OUTPUT_KEYS,
    SUM_TOLERANCE,
    describe_signatures,
    resolve_version_dir,
)
from tfmodelsec.models.io import as_victim
from tfmodelsec.models.ranges import random_inputs
from tfmodelsec.utils import check_positive

__all__ = ["ExportCheck", "check_export"]

#: Loaded and in-process answers of a deterministic defense must agree this closely.
ATOL = 1e-5
# A random defense is compared by two-sample Kolmogorov-Smirnov tests on repeated answers
# (their entropy, and the probability of the top class): with this many repeats a real
# difference of noise scale shows, and at this level a correct export almost never fails.
_REPEATS = 64
_KS_ALPHA = 1e-4


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=-1)


def _ks(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic and its critical value at ``_KS_ALPHA`` (asymptotic)."""
    grid = np.concatenate([a, b])
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    critical = np.sqrt(-np.log(_KS_ALPHA / 2) / 2) * np.sqrt((len(a) + len(b)) / (len(a) * len(b)))
    return float(np.abs(fa - fb).max()), float(critical)


@dataclass
class ExportCheck:
    """What :func:`check_export` found. ``ok`` is True when every check passed."""

    path: str
    version: int | None
    signatures: dict
    sample_shape: list
    probabilities_valid: bool
    labels_are_argmax: bool
    compared: bool = False
    deterministic: bool | None = None
    max_abs_diff: float | None = None
    label_agreement: float | None = None
    mean_max_abs_diff: float | None = None
    metadata: dict | None = None
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def summary(self) -> str:
        lines = [f"export: {self.path}" + (f" (version {self.version})" if self.version is not None else "")]
        for tags, sigs in self.signatures.items():
            for name, sig in sigs.items():
                ins = ", ".join(f"{k}: {v['dtype']}{v['shape']}" for k, v in sig["inputs"].items())
                outs = ", ".join(f"{k}: {v['dtype']}{v['shape']}" for k, v in sig["outputs"].items())
                lines.append(f"  [{tags}] {name}({ins}) -> {{{outs}}}")
        if self.metadata:
            d = self.metadata.get("defense", {})
            lines.append(f"  defense: {d.get('class')}")
        lines.append(f"  sample batch {self.sample_shape}: probabilities valid={self.probabilities_valid}, "
                     f"label = argmax: {self.labels_are_argmax}")
        if self.compared:
            if self.deterministic:
                lines.append(f"  vs in-process defended model: max |diff| = {self.max_abs_diff:.3g} "
                             f"(tolerance {ATOL}), labels agree {self.label_agreement:.1%}")
            else:
                lines.append(f"  vs in-process defended model (random defense, {_REPEATS} repeats, KS tests): "
                             f"max |diff of means| = {self.mean_max_abs_diff:.3g}")
        lines.extend(f"  PROBLEM: {p}" for p in self.problems)
        lines.append("  OK" if self.ok else "  FAILED")
        return "\n".join(lines)


def _check_signature(signatures: dict, problems: list) -> None:
    serve = signatures.get("serve", {})
    sig = serve.get(ENDPOINT)
    if sig is None:
        problems.append(f"no '{ENDPOINT}' signature under the 'serve' tag (TF Serving needs it)")
        return
    if list(sig["inputs"]) != [INPUT_NAME]:
        problems.append(f"'{ENDPOINT}' takes inputs {list(sig['inputs'])}; expected ['{INPUT_NAME}']")
    if sorted(sig["outputs"]) != sorted(OUTPUT_KEYS):
        problems.append(f"'{ENDPOINT}' returns {sorted(sig['outputs'])}; expected {sorted(OUTPUT_KEYS)}")


def check_export(path, victim=None, defense=None, *, batch_size: int = 8, seed: int = 0) -> ExportCheck:
    """Load an export with ``tf.saved_model.load`` (as TF Serving does) and check it.

    Lists the signatures (``saved_model_cli show --all``), runs a seeded sample batch
    through ``serving_default``, checks the answers are probability rows with
    ``label == argmax``, and, when ``victim`` is given, compares them with the in-process
    defended model: to ``1e-5`` for a deterministic defense, by the mean of repeated answers
    for a random one.

    Args:
        path: an export folder (its highest version is checked) or a version folder.
        victim: the victim the export was made from (optional; enables the comparison).
        defense: the defense layer it was exported with (``None``: undefended).
        batch_size: rows in the sample batch.
        seed: seed of the sample batch.

    Returns:
        An :class:`ExportCheck`; ``.ok`` tells whether all checks passed.
    """
    import tensorflow as tf

    from tfmodelsec.oracle import defended_forward

    check_positive("batch_size", batch_size, integer=True)
    version_dir = resolve_version_dir(path)
    signatures = describe_signatures(version_dir)
    problems: list = []
    _check_signature(signatures, problems)
    meta_path = version_dir / METADATA_FILE
    metadata = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    try:
        loaded = tf.saved_model.load(str(version_dir))
        fn = loaded.signatures[ENDPOINT]
    except Exception as exc:
        raise ModelLoadError(
            f"{version_dir}: could not load the export ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    _, spec = fn.structured_input_signature
    shape = list(spec[INPUT_NAME].shape) if INPUT_NAME in spec else list(next(iter(spec.values())).shape)
    sample_shape = [batch_size if d is None else int(d) for d in shape]
    victim = None if victim is None else as_victim(victim)
    # the victim's own range (standard normal for unbounded inputs); without a victim, the range the
    # export's metadata records, else [0, 1]
    recorded = ((metadata or {}).get("victim") or {}).get("input_range", [0.0, 1.0])
    x = random_inputs(victim.input_range if victim is not None else recorded, sample_shape, seed)
    key = INPUT_NAME if INPUT_NAME in spec else next(iter(spec))

    def answer():
        out = fn(**{key: tf.constant(x)})
        return out["probabilities"].numpy(), out["label"].numpy()

    probs, labels = answer()
    valid = bool(np.all(probs >= -1e-7) and np.allclose(probs.sum(axis=1), 1.0, atol=SUM_TOLERANCE))
    is_argmax = bool(np.array_equal(labels, probs.argmax(axis=1)))
    if not valid:
        problems.append("the answers are not probability rows (negative entries or rows not summing to 1)")
    if not is_argmax:
        problems.append("'label' is not the argmax of 'probabilities'")
    result = ExportCheck(str(version_dir), int(version_dir.name) if version_dir.name.isdigit() else None,
                         signatures, sample_shape, valid, is_argmax, metadata=metadata, problems=problems)
    if victim is None:
        return result
    victim.check_input_shape(tuple(sample_shape[1:]), what=f"export {version_dir}")
    exported = (metadata or {}).get("defense", {}).get("class")
    given = "none" if defense is None else type(defense).__name__
    if exported is not None and exported != given:
        problems.append(f"the export was made with defense {exported} but is compared with {given}")
    forward = defended_forward(victim, defense)
    first, second = forward(x).numpy(), forward(x).numpy()
    result.compared = True
    result.deterministic = bool(np.array_equal(first, second))
    if result.deterministic:
        result.max_abs_diff = float(np.max(np.abs(first - probs)))
        result.label_agreement = float(np.mean(first.argmax(axis=1) == labels))
        if result.max_abs_diff > ATOL:
            problems.append(f"loaded answers differ from the in-process defended model by "
                            f"{result.max_abs_diff:.3g} > {ATOL}")
    else:
        # one call per repeat: the export may have a fixed batch size
        ours = np.stack([answer()[0] for _ in range(_REPEATS)])  # (repeats, rows, classes)
        theirs = np.stack([forward(x).numpy() for _ in range(_REPEATS)])
        result.mean_max_abs_diff = float(np.abs(ours.mean(axis=0) - theirs.mean(axis=0)).max())
        top = theirs.mean(axis=0).argmax(axis=1)
        stats = {"entropy": (_entropy(ours), _entropy(theirs)),
                 "top-class probability": (ours[:, np.arange(len(x)), top], theirs[:, np.arange(len(x)), top])}
        for name, (a, b) in stats.items():
            d, critical = _ks(a.ravel(), b.ravel())
            if d > critical:
                problems.append(f"loaded answers of the random defense differ in distribution from the in-process "
                                f"model ({name}: KS statistic {d:.3f} > {critical:.3f})")
    return result
