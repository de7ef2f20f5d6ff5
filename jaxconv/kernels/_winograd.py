"""Winograd minimal filtering F(m×m, r×r) for 2-D, stride-1 convolutions (Lavin & Gray, 2016).

Each ``m×m`` output tile is ``A^T [(G g G^T) ⊙ (B^T d B)] A`` of an ``(m+r-1)²`` input tile ``d``:
the ``r²·m²`` multiplies per tile and channel pair of a direct conv become ``(m+r-1)²``, done as
``(m+r-1)²`` independent GEMMs ``[tiles, C_in] @ [C_in, C_out]`` (one batched ``einsum``).
F(2×2,3×3) saves 2.25×, F(4×4,3×3) 4×, F(2×2,5×5) 2.78×, F(4×4,5×5) 6.25×.

The transforms are linear maps with small exact coefficients (Toom-Cook points 0, ±1, ±2, ±1/2
and ∞, integer ``B``), written as sums of strided slices so XLA fuses each pass into one loop.
What makes it pay on a CPU is keeping the transformed tiles in cache: the forward runs the batch
in chunks under ``lax.map`` (about 8 MB of transformed input and output per chunk). The
``winograd_f2_dots`` variant instead runs the whole batch with one 2-D dot per tile position,
because XLA:CPU's batched dot with few rows per batch uses one core (see :func:`_tiles_dots`);
which form wins depends on the shape, so both are autotune candidates. Every variant's
derivative (``custom_jvp``) is a plain conv (``xla_eigen`` on the CPU): Winograd's own transpose
measured 2× slower, and ``lax.map``'s transpose 10× slower.

Error: Winograd trades multiplies for larger intermediate magnitudes. Against a float64
reference on unit-normal data the max abs error, in units of the float32 tolerance
``2e-6·√K``, measured 0.5 for F(2×2,3×3), 7.4 for F(2×2,5×5), 7.1 for F(4×4,3×3) (24 on
GoogLeNet 3a's 28×28×96→128 at batch 32) and 10.9 for F(4×4,5×5); each variant's
``error_factor`` (8 and 64) bounds it for the tests; ``winograd_f2_dots`` adds the same products
in another order and shares F(2×2)'s bound.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jaxconv.kernels import _eigen, _xla
from jaxconv.kernels._spec import ConvSpec, map_chunks, unmet

__all__ = ["VARIANTS", "Winograd", "transform_matrices"]

#: Finite interpolation points in the order they are taken (ill-conditioning grows with them).
_POINTS = (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2), Fraction(1, 2),
           Fraction(-1, 2))

#: Target bytes of transformed input + GEMM output per ``lax.map`` chunk (fits the L3 cache).
CHUNK_BYTES = 8 << 20


@functools.cache
def transform_matrices(m: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact Toom-Cook matrices ``(A^T [m, n], G [n, r], B^T [n, n])``, ``n = m + r - 1``.

    Correlation is the transpose of polynomial multiplication, so for the evaluation matrices
    ``E_h`` (degree < m), ``E_g`` (degree < r) and the full ``n×n`` Vandermonde ``V`` at the
    points (∞ taking the leading coefficient): ``A^T = E_h^T``, ``G = E_g``, ``B^T = V^{-T}``.
    Each row of ``B^T`` is scaled to integers and ``G`` takes the inverse scale.

    Examples:
      >>> at, g, bt = transform_matrices(2, 3)
      >>> bt
      array([[ 1.,  0., -1.,  0.],
             [ 0.,  1.,  1.,  0.],
             [ 0., -1.,  1.,  0.],
             [ 0., -1.,  0.,  1.]])
    """
    n = m + r - 1
    if n - 1 > len(_POINTS):
        raise ValueError(f"F({m},{r}) needs {n - 1} finite points, have {len(_POINTS)}")
    pts = _POINTS[: n - 1]
    one = lambda i, k: Fraction(int(i == k))  # noqa: E731
    vand = [[p**k for k in range(n)] for p in pts] + [[one(k, n - 1) for k in range(n)]]
    inv = _exact_inverse(vand)
    bt = [[inv[k][j] for k in range(n)] for j in range(n)]
    at = [[p**i for p in pts] + [one(i, m - 1)] for i in range(m)]
    g = [[p**k for k in range(r)] for p in pts] + [[one(k, r - 1) for k in range(r)]]
    for j in range(n):
        scale = math.lcm(*(c.denominator for c in bt[j]))
        bt[j] = [c * scale for c in bt[j]]
        g[j] = [c / scale for c in g[j]]
    as_np = lambda rows: np.array([[float(c) for c in row] for row in rows])  # noqa: E731
    return as_np(at), as_np(g), as_np(bt)


def _exact_inverse(a: list[list[Fraction]]) -> list[list[Fraction]]:
    n = len(a)
    aug = [row[:] + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(a)]
    for c in range(n):
        piv = next(i for i in range(c, n) if aug[i][c] != 0)
        aug[c], aug[piv] = aug[piv], aug[c]
        aug[c] = [v / aug[c][c] for v in aug[c]]
        for i in range(n):
            if i != c and aug[i][c] != 0:
                f = aug[i][c]
                aug[i] = [v - f * u for v, u in zip(aug[i], aug[c])]
    return [row[n:] for row in aug]


def _combine(coeffs: np.ndarray, terms: list[jax.Array]) -> jax.Array:
    """``sum_i coeffs[i] * terms[i]``, skipping zeros and multiplies by ±1."""
    acc = None
    for c, t in zip(coeffs.tolist(), terms):
        if c == 0:
            continue
        t = t if c == 1 else -t if c == -1 else t * jnp.asarray(c, t.dtype)
        acc = t if acc is None else acc + t
    return acc


def _transform(x: jax.Array, mat: np.ndarray, axis: int, stride: int,
               count: int) -> list[jax.Array]:
    """Rows of ``mat`` applied along ``axis`` to ``count`` windows ``stride`` apart."""
    span = stride * (count - 1) + 1
    taps = [lax.slice_in_dim(x, i, i + span, stride, axis) for i in range(mat.shape[1])]
    return [_combine(row, taps) for row in mat]


class Winograd:
    """One F(m×m, r×r) variant as a lowering (``name``, ``supports``, ``conv``, ``reference``)."""

    backends = None  # any platform can run it; selection measures where it pays
    roles = ("fwd",)  # its gradients are the plain conv's (see _winograd_jvp)
    reference = staticmethod(_xla.conv)

    def __init__(self, m: int, kernels: tuple[int, ...], error_factor: float,
                 dots: bool = False):
        self.m = m
        self.kernels = kernels
        self.dots = dots
        self.name = f"winograd_f{m}" + ("_dots" if dots else "")
        self.error_factor = error_factor
        form = ("one 2-D dot per tile position, whole batch" if dots
                else "one batched dot, batch in cache-sized chunks")
        self.__doc__ = (f"Winograd F({m}×{m}, r×r) for r in {kernels} ({form}): stride 1, NHWC, "
                        f"float32. Max error ≤ {error_factor}× the float32 tolerance.")

    def __repr__(self) -> str:
        return f"<lowering {self.name!r}>"

    def supports(self, spec: ConvSpec) -> str | None:
        """None when this variant applies to ``spec``, else why not."""
        name = self.name
        reason = unmet(spec, name, "2d", "nhwc")
        if reason is not None:
            return reason
        k = spec.kernel
        if k[0] != k[1] or k[0] not in self.kernels:
            sizes = " or ".join(f"{r}×{r}" for r in self.kernels)
            return f"{name} needs a {sizes} kernel, got {k}"
        reason = unmet(spec, name, "stride 1", "no dilation", "groups 1", "padding >= 0")
        if reason is not None:
            return reason
        if spec.dtype not in ("float32", "float64"):
            return (f"{name} runs float32/float64 only (its transforms amplify rounding), got "
                    f"{spec.dtype}")
        if spec.preferred_element_type not in (None, spec.dtype):
            return f"{name} needs preferred_element_type None, got {spec.preferred_element_type}"
        return None

    def conv(self, x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
        """``[N, H, W, C_in] ⋆ [r, r, C_in, C_out] -> [N, H_out, W_out, C_out]``."""
        return _winograd(x, w, spec, self.m, self.dots)


def _plan(spec: ConvSpec, m: int):
    r = spec.kernel[0]
    n = m + r - 1
    tiles = tuple(-(-o // m) for o in spec.out_spatial)
    return r, n, tiles


def _weights(w: jax.Array, spec: ConvSpec, m: int) -> jax.Array:
    """``G g G^T`` for every channel pair: ``[r, r, I, O] -> [n·n, I, O]`` (two tiny GEMMs; the
    sum-of-slices form compiles 20× slower for no run-time gain on a tensor this small)."""
    r, n, _ = _plan(spec, m)
    g = jnp.asarray(transform_matrices(m, r)[1], w.dtype)
    u = jnp.einsum("ai,bj,ijco->abco", g, g, w, precision=lax.Precision.HIGHEST)
    return u.reshape(n * n, *w.shape[2:])


def _pad_to_tiles(x: jax.Array, spec: ConvSpec, m: int) -> jax.Array:
    """``x`` with the conv's padding plus the rows/cols that make the ``m×m`` tiles cover the
    output exactly (the extra outputs are cropped at the end)."""
    _, _, (th, tw) = _plan(spec, m)
    (hlo, hhi), (wlo, whi) = spec.padding
    ho, wo = spec.out_spatial
    return jnp.pad(x, ((0, 0), (hlo, hhi + th * m - ho), (wlo, whi + tw * m - wo), (0, 0)))


def _tiles(x: jax.Array, u: jax.Array, spec: ConvSpec, m: int) -> jax.Array:
    """Input transform, GEMMs, output transform for a batch ``x`` (no chunking)."""
    r, n, (th, tw) = _plan(spec, m)
    at, _, bt = transform_matrices(m, r)
    ho, wo = spec.out_spatial
    batch = x.shape[0]
    xp = _pad_to_tiles(x, spec, m)
    rows = jnp.stack(_transform(xp, bt, 1, m, th))  # [n, N, th, Wp, C]
    v = jnp.stack(_transform(rows, bt, 3, m, tw), axis=1)  # [n, n, N, th, tw, C]
    v = v.reshape(n * n, batch * th * tw, x.shape[-1])
    prod = jnp.einsum("tbc,tco->tbo", v, u, precision=spec.precision)
    prod = prod.reshape(n, n, batch, th, tw, u.shape[-1])
    out_rows = _transform(prod, at, 0, 1, 1)  # m × [1, n, N, th, tw, O]
    out = [jnp.stack([t[0, 0] for t in _transform(row, at, 1, 1, 1)], axis=3)
           for row in out_rows]  # m × [N, th, tw, m, O]
    y = jnp.stack(out, axis=2)  # [N, th, m, tw, m, O]
    y = y.reshape(batch, th * m, tw * m, u.shape[-1])
    return y[:, :ho, :wo]


def _tiles_dots(x: jax.Array, u: jax.Array, spec: ConvSpec, m: int) -> jax.Array:
    """:func:`_tiles` with the ``(m+r-1)²`` GEMMs as separate 2-D dots over the whole batch.

    XLA:CPU's YNNPACK runs a batched dot with a small row count on one core; one
    ``[N·tiles, C_in] @ [C_in, C_out]`` dot per tile position gets both (GoogLeNet 4a 3×3,
    batch 32: 13.1 ms vs 20.7 ms batched, Eigen's direct conv 17.8 ms). The transforms work on
    lists of arrays, so no ``[n², …]`` stack is materialized."""
    r, n, (th, tw) = _plan(spec, m)
    at, _, bt = transform_matrices(m, r)
    ho, wo = spec.out_spatial
    batch, c, o = x.shape[0], x.shape[-1], u.shape[-1]
    xp = _pad_to_tiles(x, spec, m)
    rows = _transform(xp, bt, 1, m, th)  # n × [N, th, Wp, C]
    v = [_transform(row, bt, 2, m, tw) for row in rows]  # n × n × [N, th, tw, C]
    prod = [[jnp.dot(v[a][b].reshape(-1, c), u[a * n + b], precision=spec.precision)
             for b in range(n)] for a in range(n)]  # n × n × [N·th·tw, O]
    cols = [[_combine(at[j], prod[a]) for j in range(m)] for a in range(n)]  # n × m
    out = [jnp.stack([_combine(at[i], [cols[a][j] for a in range(n)]) for j in range(m)], axis=1)
           for i in range(m)]  # m × [N·th·tw, m, O]
    y = jnp.stack(out, axis=1).reshape(batch, th, tw, m, m, o)  # [.., i, j, O]
    y = y.transpose(0, 1, 3, 2, 4, 5).reshape(batch, th * m, tw * m, o)
    return y[:, :ho, :wo]


def _bytes_per_image(spec: ConvSpec, m: int) -> int:
    """Transformed input plus GEMM output of one image, in bytes."""
    _, n, (th, tw) = _plan(spec, m)
    return n * n * th * tw * (spec.in_channels + spec.out_channels) * 4


def _chunked(x: jax.Array, w: jax.Array, spec: ConvSpec, m: int,
             dots: bool = False) -> jax.Array:
    u = _weights(w, spec, m)
    if dots:  # its dots need the whole batch to keep both cores busy
        return _tiles_dots(x, u, spec, m)
    return map_chunks(lambda xc: _tiles(xc, u, spec, m), x, _bytes_per_image(spec, m),
                      CHUNK_BYTES)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def _winograd(x: jax.Array, w: jax.Array, spec: ConvSpec, m: int, dots: bool) -> jax.Array:
    return _chunked(x, w, spec, m, dots)


def _winograd_jvp(spec, m, dots, primals, tangents):
    x, w = primals
    tx, tw = tangents
    # Bilinear: d(x ⋆ w) = dx ⋆ w + x ⋆ dw; the tangent (so, transposed, both gradients) runs
    # as a plain conv, on the CPU steered to Eigen. Transposing Winograd itself (unchunked;
    # lax.map's transpose is worse) measured 2× slower: GoogLeNet 3a 3×3, batch 32, dx+dw
    # 681 ms vs 340 ms.
    plain = _eigen.conv if jax.default_backend() == "cpu" else _xla.conv
    terms = []
    if not isinstance(tx, SymbolicZero):
        terms.append(plain(tx, w, spec))
    if not isinstance(tw, SymbolicZero):
        terms.append(plain(x, tw, spec))
    y = _chunked(x, w, spec, m, dots)
    return y, functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(y)


_winograd.defjvp(_winograd_jvp, symbolic_zeros=True)

#: The variants, with their max error in units of the float32 tolerance (see module docstring).
VARIANTS = (
    Winograd(2, (3, 5), error_factor=8.0),
    Winograd(2, (3,), error_factor=8.0, dots=True),
    Winograd(4, (3, 5), error_factor=64.0),
)
