"""DRMI: query-set reduction by minimising the mutual information inside the set.

He et al., "DRMI: A Dataset Reduction Technology based on Mutual Information for
Black-box Attacks", USENIX Security 2021
(https://www.usenix.org/conference/usenixsecurity21/presentation/he-yingzhe).

The attacker keeps the ``k`` pool images that share the least information: the
mutual information of two images comes from the joint histogram of their
co-located gray levels,

    MI(u, v) = sum_i sum_j P_uv(i, j) log(P_uv(i, j) / (P_u(i) P_v(j))),

and the subset minimising ``sum_{u, v in S} MI(u, v)`` is searched with a greedy
initialisation (Algorithm 2), one-swap refinement (Algorithm 3) and restarts over
the starting point (Algorithm 1).

The MI matrix is the cost (``n^2 / 2`` joint histograms). Two ways, by the number
of gray levels ``L``:

* ``L <= 16``: joint counts of two images are inner products of their one-hot
  gray-level codes, so a block of rows against a block of columns is one matrix
  product on TensorFlow (GPU when present), at ``(L - 1)^2`` products per pixel.
  Only the non-zero levels enter the product; the counts involving level 0 follow
  from the marginals.
* ``L > 16`` (the paper's ``R`` = every gray value, ``L = 256`` for 8-bit images):
  each pair's co-located levels are coded as ``u * L + v`` and sorted; the run
  lengths of the sorted codes are the joint counts. The cost no longer grows with
  ``L`` (~100k pairs/s of 28x28 images on one CPU core).

Either way, pixels that are 0 in every pool image are dropped (they only add to the
(0, 0) count, which is recovered from the pixel total).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfmodelsec.utils import check_choice, check_positive, progbar, read_npz, write_npz

__all__ = [
    "GREEDY_AGGREGATES",
    "DrmiResult",
    "drmi_subset",
    "greedy_initialization",
    "merge_mi_parts",
    "mutual_information_matrix",
    "mutual_information_part",
    "one_hot_replacement",
    "quantize",
    "subset_cost",
]

# Rows per block of the MI matrix: a (b, b, L-1, L-1) float32 block of counts
# stays ~ 12 MB at b=256, L=8 while each matrix product is large enough to be efficient.
_DEFAULT_BLOCK = 256
# Column blocks per matrix product: wider products run faster, at (b, 4b, L-1, L-1) memory.
_COLUMN_BLOCKS = 4
# Above this many gray levels the one-hot product (cost ~ (L-1)^2 per pixel, memory
# n (L-1) pixels floats) loses to sorting the pairs' joint codes (cost independent of L).
_MATMUL_MAX_LEVELS = 16
# Joint codes sorted at once by the sorting path (pairs x pixels): ~16 MB of uint16.
_SORT_CHUNK = 8_000_000


def quantize(x, levels: int) -> np.ndarray:
    """Gray levels ``0 .. levels-1`` of images in [0, 1], flattened to (n, pixels) int32."""
    check_positive("levels", levels, integer=True)
    if levels < 2:
        raise ValueError(f"`levels` must be >= 2. Received: levels={levels!r}")
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    return np.clip(np.floor(x * levels), 0, levels - 1).astype(np.int32)


def _pool_key(q: np.ndarray, levels: int) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(q, dtype=np.uint8 if levels <= 256 else np.uint32).tobytes())
    h.update(f"{q.shape}-{levels}".encode())
    return h.hexdigest()[:20]


def _xlogx(c):
    import tensorflow as tf

    # counts are integers: c < 1 means 0, and 0 log 0 = 0
    return c * tf.math.log(tf.maximum(c, 1.0))


def _mi_block_fn():
    import tensorflow as tf

    def block(a, b, ma, mb, sa, sb, pixels):
        """MI of every image in ``a`` with every image in ``b``.

        a: (na, L-1, P') one-hot codes of the non-zero levels; ma: (na, L) marginal
        counts; sa: (na,) sum of c log c over the marginal. MI = H(u) + H(v) - H(u, v),
        i.e. ``log P + (S_uv - S_u - S_v) / P`` with ``S = sum c log c`` over the bins.
        """
        na, nb = tf.shape(a)[0], tf.shape(b)[0]
        lm1 = tf.shape(a)[1]
        joint = tf.matmul(tf.reshape(a, [na * lm1, -1]), tf.reshape(b, [nb * lm1, -1]), transpose_b=True)
        joint = tf.transpose(tf.reshape(joint, [na, lm1, nb, lm1]), [0, 2, 1, 3])  # (na, nb, L-1, L-1)
        # bins with level 0 on one side: the marginal minus its non-zero part
        row0 = ma[:, None, 1:] - tf.reduce_sum(joint, axis=3)  # u = i > 0, v = 0
        col0 = mb[None, :, 1:] - tf.reduce_sum(joint, axis=2)  # u = 0, v = j > 0
        c00 = pixels - tf.reduce_sum(joint, axis=[2, 3]) - tf.reduce_sum(row0, -1) - tf.reduce_sum(col0, -1)
        s_uv = (tf.reduce_sum(_xlogx(joint), axis=[2, 3]) + tf.reduce_sum(_xlogx(row0), -1)
                + tf.reduce_sum(_xlogx(col0), -1) + _xlogx(c00))
        return tf.math.log(pixels) + (s_uv - sa[:, None] - sb[None, :]) / pixels

    return tf.function(block, reduce_retracing=True)


def _block_list(n: int, bs: int) -> list:
    """``(i, i2, j, j2)`` of each block on or above the diagonal (mirrored below), row by row."""
    return [(i, min(i + bs, n), j, min(j + bs * _COLUMN_BLOCKS, n))
            for i in range(0, n, bs) for j in range(i, n, bs * _COLUMN_BLOCKS)]


def _sorted_joint_xlogx(a: np.ndarray, b: np.ndarray, levels: int, dropped: int) -> np.ndarray:
    """``sum_bins c log c`` of the joint gray-level counts of every row of ``a`` with every row of ``b``.

    ``a``: (na, P') and ``b``: (nb, P') gray levels of the kept pixels; ``dropped``
    pixels, 0 in both images, are added to the (0, 0) bin. Returns (na, nb) float64.
    """
    na, nb, p = len(a), len(b), a.shape[1]
    dtype = np.uint16 if levels * levels <= 1 << 16 else np.uint32
    out = np.empty((na, nb))
    xlogx = _xlogx_np(np.arange(p + 1, dtype=np.float64))  # a run holds at most p pixels
    rows = max(1, _SORT_CHUNK // max(nb * p, 1))
    bb = b.astype(dtype)
    for i in range(0, na, rows):
        codes = (a[i:i + rows, None, :].astype(dtype) * dtype(levels) + bb[None]).reshape(-1, p)
        codes.sort(axis=1)
        starts = np.ones(codes.shape, bool)
        starts[:, 1:] = codes[:, 1:] != codes[:, :-1]
        at = np.flatnonzero(starts.ravel())
        counts = np.diff(np.append(at, codes.size))
        s = np.bincount(at // p, weights=xlogx[counts], minlength=len(codes))
        if dropped:  # the (0, 0) bin holds `dropped` more pixels than the kept ones show
            c0 = np.count_nonzero(codes == 0, axis=1).astype(np.float64)
            s += _xlogx_np(c0 + dropped) - _xlogx_np(c0)
        out[i:i + rows] = s.reshape(-1, nb)
    return out


def _xlogx_np(c):
    return c * np.log(np.maximum(c, 1.0))


class _MiBlocks:
    """The pool's gray levels (one-hot codes below 17 levels) and the upper-triangle block list of its MI matrix."""

    def __init__(self, x, levels: int, block_size: int):
        import tensorflow as tf

        check_positive("block_size", block_size, integer=True)
        q = quantize(x, levels)
        self.n, pixels = q.shape
        if self.n == 0:
            raise ValueError("`x` must hold at least one image. Received an empty pool")
        self.levels, self.block_size = int(levels), int(block_size)
        self.key = _pool_key(q, levels)
        marg = np.bincount((q + levels * np.arange(self.n)[:, None]).ravel(), minlength=self.n * levels)
        marg = marg.reshape(self.n, levels).astype(np.float32)  # (n, L) counts per level
        used = (q > 0).any(axis=0)  # pixels non-zero somewhere; the rest only feed the (0, 0) count
        qn = q[:, used]
        self.sorting = self.levels > _MATMUL_MAX_LEVELS
        if self.sorting:
            self._q, self._dropped = qn, int(pixels - qn.shape[1])
            self._slog_np = _xlogx_np(marg.astype(np.float64)).sum(axis=1)
            self._pixels = float(pixels)
        else:
            codes = np.stack([(qn == i) for i in range(1, levels)], axis=1).astype(np.float32)  # (n, L-1, P')
            self._codes, self._marg = tf.constant(codes), tf.constant(marg)
            self._slog = tf.reduce_sum(_xlogx(self._marg), axis=1)
            self._pix = tf.constant(float(pixels))
            self._fn = _mi_block_fn()
        self.blocks = _block_list(self.n, self.block_size)

    def compute(self, b: int) -> np.ndarray:
        i, i2, j, j2 = self.blocks[b]
        if self.sorting:
            s_uv = _sorted_joint_xlogx(self._q[i:i2], self._q[j:j2], self.levels, self._dropped)
            sa, sb = self._slog_np[i:i2], self._slog_np[j:j2]
            mi = (np.log(self._pixels) + (s_uv - sa[:, None] - sb[None, :]) / self._pixels).astype(np.float32)
        else:
            c, m, s = self._codes, self._marg, self._slog
            mi = self._fn(c[i:i2], c[j:j2], m[i:i2], m[j:j2], s[i:i2], s[j:j2], self._pix).numpy()
        if i == j:  # the diagonal block holds both (u, v) and (v, u): keep one rounding of each pair
            sq = mi[:, : i2 - i]
            mi[:, : i2 - i] = np.triu(sq) + np.triu(sq, 1).T
        return mi


def _place(out: np.ndarray, block, mi: np.ndarray) -> None:
    i, i2, j, j2 = block
    out[i:i2, j:j2] = mi
    out[j:j2, i:i2] = mi.T


def _finish(out: np.ndarray) -> np.ndarray:
    np.fill_diagonal(out, np.maximum(np.diag(out), 0.0))
    return np.maximum(out, 0.0, out=out)  # rounding can leave -1e-7 where MI is 0


def _cache_path(cache_dir, key: str) -> Path:
    return Path(cache_dir) / f"mi_{key}.npz"


def _write_cache(path: Path, mi: np.ndarray, levels: int) -> Path:
    # uncompressed: MI values barely compress, and zlib cost 40 s at 12k images
    return write_npz(path, mi=mi, levels=levels)


def mutual_information_matrix(x, *, levels: int = 8, block_size: int = _DEFAULT_BLOCK,
                              cache_dir=None, verbose: int = 0) -> np.ndarray:
    """Pairwise mutual information (nats) of images ``x`` (n, ...) in [0, 1].

    Args:
        x: the pool, any image shape; values in [0, 1].
        levels: gray levels after quantisation (the paper uses every value; 8 keeps
            the joint histogram small and costs ~(levels-1)^2 per pair).
        block_size: rows per block; only blocks on or above the diagonal are computed
            and mirrored (MI is symmetric).
        cache_dir: folder for an ``.npz`` cache keyed by a hash of the quantised pool
            (also where :func:`merge_mi_parts` puts a matrix computed in parts).
        verbose: 1 shows a progress bar over blocks.

    Returns:
        (n, n) float32 matrix; the diagonal holds each image's gray-level entropy.
    """
    work = _MiBlocks(x, levels, block_size)
    cache = None if cache_dir is None else _cache_path(cache_dir, work.key)
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as f:
            return f["mi"]
    out = np.zeros((work.n, work.n), np.float32)
    bar = progbar(len(work.blocks), verbose=verbose, unit_name="block")
    for b, block in enumerate(work.blocks):
        _place(out, block, work.compute(b))
        bar.update(b + 1)
    out = _finish(out)
    if cache is not None:
        _write_cache(cache, out, levels)
    return out


_PART_FORMAT = "tfmodelsec-mi-part"


def mutual_information_part(x, part: tuple[int, int], out_dir, *, levels: int = 8,
                            block_size: int = _DEFAULT_BLOCK, verbose: int = 0) -> Path:
    """Compute part ``i`` of ``n`` of the blocks of :func:`mutual_information_matrix`.

    Every part needs the whole pool ``x`` (its columns); it computes the contiguous
    share of the matrix blocks :func:`~tfmodelsec.distribute.part_range` gives it and
    writes them to ``out_dir/mi_KEY.part-i-of-n.npz``, KEY being the pool's cache key.
    Returns that path; :func:`merge_mi_parts` assembles the parts.
    """
    from tfmodelsec.distribute import parse_part, part_filename, part_range

    part = parse_part(f"{part[0]}/{part[1]}")
    work = _MiBlocks(x, levels, block_size)
    ids = np.asarray(part_range(len(work.blocks), part), np.int64)
    values = []
    bar = progbar(len(ids), verbose=verbose, unit_name="block")
    for k, b in enumerate(ids):
        values.append(work.compute(int(b)).ravel())
        bar.update(k + 1)
    header = {"format": _PART_FORMAT, "key": work.key, "n": work.n, "levels": work.levels,
              "block_size": work.block_size, "total_blocks": len(work.blocks), "part": list(part)}
    return write_npz(Path(out_dir) / part_filename(f"mi_{work.key}", part, ".npz"), header=header, block_ids=ids,
                     values=np.concatenate(values) if values else np.zeros(0, np.float32))


def merge_mi_parts(paths, cache_dir=None) -> np.ndarray:
    """Assemble the MI matrix from the part files of :func:`mutual_information_part`.

    The result equals the unsplit :func:`mutual_information_matrix`. With
    ``cache_dir`` it is also written where that function (and ``select_queries``)
    looks for its cache, so the next DRMI selection on the same pool skips the matrix.
    """
    from tfmodelsec.distribute import check_coverage

    paths = [Path(p) for p in paths]  # iterated twice below: a generator would be spent
    headers, pieces = [], []
    for path in paths:
        header, arrays = read_npz(path, format=_PART_FORMAT, what="an MI part file")
        pieces.append((arrays["block_ids"], arrays["values"]))
        headers.append(header)
    if not headers:
        raise ValueError("`paths` is empty: expected the mi_KEY.part-i-of-n.npz files of a split run")
    first = {k: v for k, v in headers[0].items() if k != "part"}
    for path, h in zip(paths, headers, strict=True):
        if {k: v for k, v in h.items() if k != "part"} != first:
            raise ValueError(f"cannot merge MI parts of different pools or settings: {str(path)!r}")
    check_coverage([ids for ids, _ in pieces], first["total_blocks"], what="MI blocks")
    n = first["n"]
    blocks = _block_list(n, first["block_size"])
    out = np.zeros((n, n), np.float32)
    for ids, values in pieces:
        at = 0
        for b in ids:
            i, i2, j, j2 = blocks[b]
            size = (i2 - i) * (j2 - j)
            _place(out, blocks[b], values[at:at + size].reshape(i2 - i, j2 - j))
            at += size
    out = _finish(out)
    if cache_dir is not None:
        _write_cache(_cache_path(cache_dir, first["key"]), out, first["levels"])
    return out


def _check_matrix(weights, k):
    w = np.asarray(weights, np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] == 0:
        raise ValueError(f"`weights` must be a non-empty square matrix. Received shape {w.shape}")
    check_positive("k", k, integer=True)
    if k > len(w):
        raise ValueError(f"`k` must be <= the number of elements ({len(w)}). Received: k={k}")
    return w


def subset_cost(weights, subset) -> float:
    """``H``: the summed weight over unordered pairs of distinct elements of ``subset``."""
    w = np.asarray(weights, np.float64)
    s = np.asarray(subset)
    sub = w[np.ix_(s, s)]
    return float((sub.sum() - np.trace(sub)) / 2.0)


GREEDY_AGGREGATES = ("sum", "max")


def greedy_initialization(weights, k: int, start: int, *, g: str = "sum") -> np.ndarray:
    """Algorithm 2: start from ``start``; repeatedly add the element whose weight to the
    chosen ones, aggregated by ``g``, is smallest. Returns ``k`` indices in order of choice.

    ``g = "sum"``: ``f(x) = sum_{s in S} I[s][x]`` (least total redundancy with the set);
    ``g = "max"``: ``f(x) = max_{s in S} I[s][x]`` (least redundancy with its closest
    member: farthest-point order, each pick as unlike every chosen image as possible).
    """
    w = _check_matrix(weights, k)
    g = check_choice("g", g, GREEDY_AGGREGATES)
    n = len(w)
    if not 0 <= int(start) < n:
        raise ValueError(f"`start` must be in [0, {n}). Received: start={start!r}")
    chosen = np.zeros(n, bool)
    order = [int(start)]
    chosen[start] = True
    f = w[start].copy()
    for _ in range(1, k):
        p = int(np.argmin(np.where(chosen, np.inf, f)))
        order.append(p)
        chosen[p] = True
        if g == "sum":
            f += w[p]
        else:
            np.maximum(f, w[p], out=f)
    return np.asarray(order)


def one_hot_replacement(weights, subset, *, max_swaps: int | None = None):
    """Algorithm 3: swap the member with the largest in-set weight for the outsider that
    lowers the cost most, while a swap lowers it. Returns ``(subset, cost)``.

    ``weights`` must be symmetric (MI is); rows are read in place of columns."""
    w = np.asarray(weights, np.float64)
    s = np.asarray(subset).copy()
    n, k = len(w), len(s)
    inside = np.zeros(n, bool)
    inside[s] = True
    tot = w[s].sum(axis=0)  # each element's summed weight to the members (w is symmetric: rows, not columns)
    diag = np.diag(w)
    cost = subset_cost(w, s)
    limit = max_swaps if max_swaps is not None else 10 * n
    for _ in range(limit):
        if k == n:
            break
        in_w = np.where(inside, tot - diag, -np.inf)  # In[t], t in S
        p = int(np.argmax(in_w))
        out_w = np.where(inside, np.inf, tot - w[p])  # Out[j] - I[p][j], j not in S
        q = int(np.argmin(out_w))
        if out_w[q] >= in_w[p] - 1e-12 * max(1.0, abs(in_w[p])):
            break
        cost += out_w[q] - in_w[p]
        inside[p], inside[q] = False, True
        s[s == p] = q
        tot += w[q] - w[p]
    return s, float(cost)


def _greedy_batched(w: np.ndarray, k: int, starts, *, g: str, block: int = 256, verbose: int = 0):
    """:func:`greedy_initialization` from each of ``starts``, ``block`` starts per vectorised pass.

    Returns ``(sets, costs)``: (len(starts), k) indices in order of choice (the same as the
    one-start function: same aggregates, same first-index tie-break) and each set's cost ``H``.
    """
    w = np.asarray(w, np.float64)
    starts = np.asarray(starts, np.int64)
    sets = np.empty((len(starts), k), np.int64)
    costs = np.empty(len(starts), np.float64)
    bar = progbar(len(starts), verbose=verbose, unit_name="restart")
    # g = max on weights that float32 holds exactly (MI matrices are float32): the same picks at half the traffic
    exact32 = g == "max" and np.array_equal(w.astype(np.float32), w)
    w_f = w.astype(np.float32) if exact32 else w
    for b in range(0, len(starts), block):
        t = starts[b:b + block]
        rows = np.arange(len(t))
        f = w_f[t].copy()  # the aggregate g of each element's weights to each start's chosen set; inf once chosen
        total = w[t].copy()  # summed weights to the chosen set: the cost each pick adds
        f[rows, t] = np.inf
        sets[b:b + len(t), 0] = t
        cost = np.zeros(len(t))
        for j in range(1, k):
            p = np.argmin(f, axis=1)
            sets[b:b + len(t), j] = p
            cost += total[rows, p]
            if g == "sum":
                f += w_f[p]
            else:
                np.maximum(f, w_f[p], out=f)
            if j < k - 1:
                total += w[p]
            f[rows, p] = np.inf
        costs[b:b + len(t)] = cost
        bar.update(min(b + block, len(starts)))
    return sets, costs


@dataclass(frozen=True)
class DrmiResult:
    """The chosen subset, its cost ``H`` and the cost at every restart (Algorithm 1)."""

    indices: np.ndarray
    cost: float
    restart_costs: tuple
    starts: tuple

    def to_dict(self) -> dict:
        return {"cost": self.cost, "restarts": len(self.starts), "restart_costs": list(self.restart_costs),
                "starts": list(self.starts)}


def drmi_subset(weights, k: int, *, restarts: int | None = 8, g: str = "sum", swaps: bool = True, seed: int = 0,
                verbose: int = 0) -> DrmiResult:
    """Algorithm 1: greedy initialisation + one-hot replacement from several starting
    points; keep the subset of least cost.

    Args:
        weights: (n, n) symmetric matrix (MI, or |correlation| for that baseline).
        k: subset size.
        restarts: starting points drawn at random (seeded) from the ``n`` elements; ``None``
            uses every element, as the paper does (``n`` times the work).
        g: how Algorithm 2 aggregates a candidate's weights to the chosen set (``"sum"``, ``"max"``).
        swaps: run Algorithm 3 (one-hot swaps lowering the summed cost ``H``) after
            Algorithm 2. With ``g = "max"`` the swaps pull the set back towards the least-sum
            one (from every start they end in the same few subsets), so ``swaps=False`` keeps
            the max-aggregated greedy sets. The subset kept is the one of least ``H`` either way.
        seed: which starting points.
    """
    w = _check_matrix(weights, k)
    g = check_choice("g", g, GREEDY_AGGREGATES)
    n = len(w)
    if restarts is None:
        starts = np.arange(n)
    else:
        check_positive("restarts", restarts, integer=True)
        starts = np.random.default_rng(seed).choice(n, size=min(int(restarts), n), replace=False)
    if not swaps:  # Algorithm 2 alone: every start at once, in blocks of rows
        sets, costs = _greedy_batched(w, k, starts, g=g, verbose=verbose)
        i = int(np.argmin(costs))
        return DrmiResult(np.sort(sets[i]), float(costs[i]), tuple(float(c) for c in costs),
                          tuple(int(t) for t in starts))
    best, best_cost, costs = None, np.inf, []
    bar = progbar(len(starts), verbose=verbose, unit_name="restart")
    for i, t in enumerate(starts):
        s0 = greedy_initialization(w, k, int(t), g=g)
        s, cost = one_hot_replacement(w, s0) if swaps else (s0, subset_cost(w, s0))
        costs.append(cost)
        if cost < best_cost:
            best, best_cost = s, cost
        bar.update(i + 1)
    return DrmiResult(np.sort(best), float(best_cost), tuple(costs), tuple(int(t) for t in starts))
