"""Winograd minimal filtering F(m x m, r x r), with transforms generated from interpolation points.

Construction (Toom-Cook, Lavin & Gray 2016)
-------------------------------------------
The 1-D correlation ``y_i = sum_k g_k d_{i+k}`` (``m`` outputs, ``r`` taps, ``alpha = m + r - 1``
inputs) is the transpose of the linear convolution of a degree ``r-1`` and a degree ``m-1``
polynomial. Evaluating both at ``alpha`` points (``alpha - 1`` finite points plus the point at
infinity, whose "value" is the leading coefficient), multiplying pointwise and interpolating gives

    y = A^T [ (G g) * (B^T d) ]

with ``G = E_r`` (alpha x r evaluation matrix), ``A^T = E_m^T`` (m x alpha) and ``B^T = V^{-T}``
(V the alpha x alpha evaluation matrix). Everything is computed exactly with :class:`fractions.Fraction`;
each row ``t`` of ``B^T`` is then scaled to integer entries and row ``t`` of ``G`` divided by the same
factor, which leaves the product unchanged. 2-D: ``Y = A^T [ (G g G^T) * (B^T d B) ] A``.

Default points (chosen for fp32 accuracy: small magnitudes, symmetric, reciprocal pairs):

* F(2, 3): ``0, 1, -1, inf``
* F(4, 3): ``0, 1, -1, 1/2, -1/2, inf``   (alpha = 6)
* F(6, 3): ``0, 1, -1, 1/2, -1/2, 2, -2, inf``   (alpha = 8)
* otherwise the sequence ``0, 1, -1, 1/2, -1/2, 2, -2, 1/4, -1/4, 4, -4, ...`` cut to ``alpha - 1``.

Multiplications per output tile: direct needs ``m^2 r^2``, Winograd ``alpha^2`` (elementwise
product), so F(2x2, 3x3) saves 36/16 = 2.25x and F(4x4, 3x3) 144/36 = 4x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import torch

from edgecnn.errors import ConfigError, ShapeError
from edgecnn.hardware.tiling import ConvShape
from edgecnn.kernels._common import channels_last_padded

Point = Fraction | None  # None is the point at infinity

_POINT_SEQUENCE: tuple[Fraction, ...] = (
    Fraction(0),
    Fraction(1),
    Fraction(-1),
    Fraction(1, 2),
    Fraction(-1, 2),
    Fraction(2),
    Fraction(-2),
    Fraction(1, 4),
    Fraction(-1, 4),
    Fraction(4),
    Fraction(-4),
    Fraction(3, 2),
    Fraction(-3, 2),
    Fraction(2, 3),
    Fraction(-2, 3),
)


def default_points(m: int, r: int) -> tuple[Point, ...]:
    """The ``alpha - 1`` finite interpolation points plus infinity used for F(m, r)."""
    alpha = m + r - 1
    if alpha - 1 > len(_POINT_SEQUENCE):
        raise ConfigError(
            f"F({m},{r}) needs {alpha - 1} finite points, at most {len(_POINT_SEQUENCE)} are built in; "
            "pass points= explicitly or use a smaller m"
        )
    return (*_POINT_SEQUENCE[: alpha - 1], None)


def _eval_row(p: Point, n: int) -> list[Fraction]:
    """Row that evaluates a polynomial with ``n`` coefficients at ``p`` (leading coefficient at inf)."""
    if p is None:
        return [Fraction(0)] * (n - 1) + [Fraction(1)]
    return [p**k for k in range(n)]


def _inverse(mat: list[list[Fraction]]) -> list[list[Fraction]]:
    """Exact Gauss-Jordan inverse of a square Fraction matrix."""
    n = len(mat)
    aug = [row[:] + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(mat)]
    for col in range(n):
        pivot = next((i for i in range(col, n) if aug[i][col] != 0), None)
        if pivot is None:
            raise ConfigError("interpolation points must be distinct")
        aug[col], aug[pivot] = aug[pivot], aug[col]
        inv = 1 / aug[col][col]
        aug[col] = [v * inv for v in aug[col]]
        for i in range(n):
            if i != col and aug[i][col] != 0:
                f = aug[i][col]
                aug[i] = [a - f * b for a, b in zip(aug[i], aug[col], strict=True)]
    return [row[n:] for row in aug]


@dataclass(frozen=True)
class WinogradTransforms:
    """Exact transform matrices of F(m, r) as nested tuples of Fractions.

    ``AT`` is m x alpha, ``G`` is alpha x r, ``BT`` is alpha x alpha.
    """

    m: int
    r: int
    points: tuple[Point, ...]
    AT: tuple[tuple[Fraction, ...], ...]
    G: tuple[tuple[Fraction, ...], ...]
    BT: tuple[tuple[Fraction, ...], ...]

    @property
    def alpha(self) -> int:
        """Input tile size ``m + r - 1``."""
        return self.m + self.r - 1

    def tensors(
        self, dtype: torch.dtype = torch.float64
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(AT, G, BT) as torch tensors."""
        return tuple(  # type: ignore[return-value]
            torch.tensor([[float(v) for v in row] for row in mat], dtype=dtype)
            for mat in (self.AT, self.G, self.BT)
        )

    def nonzeros(self) -> dict[str, int]:
        """Non-zero entries of each matrix (what a sparse hand-written transform would touch)."""
        return {
            name: sum(v != 0 for row in mat for v in row)
            for name, mat in (("AT", self.AT), ("G", self.G), ("BT", self.BT))
        }


@lru_cache(maxsize=64)
def winograd_transforms(
    m: int, r: int, points: tuple[Point, ...] | None = None
) -> WinogradTransforms:
    """Generate F(m, r)'s transforms from ``alpha - 1`` finite points plus infinity (``None``).

    ``points`` are Fractions (or ints); the last one may be ``None`` (infinity). Raises
    :class:`ConfigError` for too few, too many or repeated points.
    """
    if m < 1 or r < 1:
        raise ConfigError(f"F(m, r) needs m >= 1 and r >= 1, got F({m}, {r})")
    alpha = m + r - 1
    pts = (
        default_points(m, r)
        if points is None
        else tuple(None if p is None else Fraction(p) for p in points)
    )
    if len(pts) != alpha:
        raise ConfigError(
            f"F({m},{r}) needs exactly {alpha} points (finite ones plus None), got {len(pts)}"
        )
    if len(set(pts)) != alpha:
        raise ConfigError(f"interpolation points must be distinct, got {pts}")
    V = [_eval_row(p, alpha) for p in pts]  # alpha x alpha
    C = _inverse(V)  # interpolation: coefficients = C @ values
    BT = [[C[j][t] for j in range(alpha)] for t in range(alpha)]  # C^T
    G = [_eval_row(p, r) for p in pts]
    AT = [[_eval_row(p, m)[i] for p in pts] for i in range(m)]
    # scale row t of BT to integers (smallest), divide row t of G by the same factor
    for t in range(alpha):
        dens = [v.denominator for v in BT[t] if v != 0]
        nums = [abs(v.numerator) for v in BT[t] if v != 0]
        factor = Fraction(math.lcm(*dens), math.gcd(*nums))
        BT[t] = [v * factor for v in BT[t]]
        G[t] = [v / factor for v in G[t]]
    return WinogradTransforms(
        m=m,
        r=r,
        points=pts,
        AT=tuple(tuple(row) for row in AT),
        G=tuple(tuple(row) for row in G),
        BT=tuple(tuple(row) for row in BT),
    )


#: Largest transformed-tile buffer (elements) of one chunk of images: 4 MiB of float32.
WINOGRAD_CHUNK_ELEMS = 1 << 20


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class WinogradConv:
    """A layer's Winograd F(m x m, r x r) convolution with the filter transform done once.

    Build with :meth:`prepare`; call with an NCHW input. Layout (tile-major, no Python loop over
    tiles or channels): the input is copied once into a zero-padded channels-last buffer, the
    ``alpha x alpha`` tiles are gathered from a strided view into a ``(alpha^2, tiles*C)``
    matrix, the 2-D input transform ``B^T d B`` is one GEMM with ``kron(B^T, B^T)``, the
    elementwise products summed over channels are one batched GEMM ``(alpha^2, tiles, C) x
    (alpha^2, C, K)``, and the output transform is one GEMM with ``kron(A^T, A^T)``.

    Attributes: ``U`` the transformed filters ``(alpha^2 * G, Cg, Kg)`` (float32), ``kron_bt``
    ``(alpha^2, alpha^2)``, ``kron_at`` ``(m^2, alpha^2)``.
    """

    m: int
    r: int
    groups: int
    in_channels: int
    out_channels: int
    U: torch.Tensor
    kron_bt: torch.Tensor
    kron_at: torch.Tensor

    @property
    def alpha(self) -> int:
        """Input tile size ``m + r - 1``."""
        return self.m + self.r - 1

    @classmethod
    def prepare(
        cls,
        weight: torch.Tensor,
        m: int,
        groups: int = 1,
        points: tuple[Point, ...] | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> WinogradConv:
        """Transform ``weight`` (K, C/groups, r, r) once: ``U = G g G^T`` computed in float64."""
        if weight.dim() != 4 or weight.shape[-1] != weight.shape[-2]:
            raise ShapeError(
                f"Winograd needs a square r x r kernel, got weight shape {tuple(weight.shape)}; "
                "use algorithm='im2col' or 'fft' for rectangular kernels"
            )
        k, cg, r, _ = weight.shape
        if k % groups:
            raise ShapeError(f"out channels {k} not divisible by groups={groups}")
        t = winograd_transforms(m, int(r), points)
        at, g_mat, bt = t.tensors(torch.float64)
        a = t.alpha
        kg = k // groups
        w = weight.detach().to(torch.float64).reshape(groups, kg, cg, r, r)
        u = torch.einsum("ai,gkcij,bj->abgck", g_mat, w, g_mat).reshape(a * a * groups, cg, kg)
        return cls(
            m=m,
            r=int(r),
            groups=groups,
            in_channels=cg * groups,
            out_channels=k,
            U=u.to(dtype).contiguous(),
            kron_bt=torch.kron(bt, bt).to(dtype),
            kron_at=torch.kron(at, at).to(dtype),
        )

    def __call__(
        self,
        x: torch.Tensor,
        bias: torch.Tensor | None = None,
        padding: tuple[int, int, int, int] = (0, 0, 0, 0),
        dilation: tuple[int, int] = (1, 1),
        product_dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Stride-1 convolution of NCHW ``x``; ``padding`` is (top, bottom, left, right).

        Dilation ``d`` runs as ``d_h * d_w`` undilated convolutions on the interleaved phases of
        the padded input. ``product_dtype`` rounds the transformed operands to that dtype and runs
        the batched GEMM in it; the transforms stay in float32.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(
                f"input shape {tuple(x.shape)} does not match this layer's {self.in_channels} input channels"
            )
        pt, pb, pl, pr = padding
        dh, dw = dilation
        out_h = x.shape[2] + pt + pb - (self.r - 1) * dh
        out_w = x.shape[3] + pl + pr - (self.r - 1) * dw
        if out_h < 1 or out_w < 1:
            raise ShapeError(
                f"input {tuple(x.shape)} is smaller than the dilated {self.r}x{self.r} kernel"
            )
        xf = x.to(self.U.dtype)
        if dh == dw == 1:
            out = self._batched(xf, pt, pl, out_h, out_w, product_dtype)
        else:
            xp = torch.nn.functional.pad(xf, (pl, pr, pt, pb))
            out = xf.new_empty(x.shape[0], self.out_channels, out_h, out_w)
            for ph in range(min(dh, out_h)):
                for pw in range(min(dw, out_w)):
                    oh, ow = _ceil_div(out_h - ph, dh), _ceil_div(out_w - pw, dw)
                    phase = xp[:, :, ph::dh, pw::dw]
                    out[:, :, ph::dh, pw::dw] = self._valid(phase, 0, 0, oh, ow, product_dtype)
        out = out.to(x.dtype)
        if bias is not None:
            out.add_(bias.to(out.dtype).view(1, -1, 1, 1))
        return out

    def _batched(
        self,
        x: torch.Tensor,
        pad_top: int,
        pad_left: int,
        out_h: int,
        out_w: int,
        product_dtype: torch.dtype | None,
    ) -> torch.Tensor:
        """:meth:`_valid` over groups of images whose transformed tiles fit
        :data:`WINOGRAD_CHUNK_ELEMS`, so large batches reuse cache-sized temporaries."""
        n = x.shape[0]
        a = self.alpha
        per_image = a * a * _ceil_div(out_h, self.m) * _ceil_div(out_w, self.m)
        per_image *= max(self.in_channels, self.out_channels)
        step = max(1, WINOGRAD_CHUNK_ELEMS // per_image)
        if step >= n:
            return self._valid(x, pad_top, pad_left, out_h, out_w, product_dtype)
        out = x.new_empty(n, self.out_channels, out_h, out_w)
        for n0 in range(0, n, step):
            out[n0 : n0 + step] = self._valid(
                x[n0 : n0 + step], pad_top, pad_left, out_h, out_w, product_dtype
            )
        return out

    def _valid(
        self,
        x: torch.Tensor,
        pad_top: int,
        pad_left: int,
        out_h: int,
        out_w: int,
        product_dtype: torch.dtype | None,
    ) -> torch.Tensor:
        """The first ``out_h x out_w`` outputs of the undilated correlation of ``x`` placed at
        (pad_top, pad_left) in a zero buffer."""
        m, a, g = self.m, self.alpha, self.groups
        n, c = x.shape[:2]
        th, tw = _ceil_div(out_h, m), _ceil_div(out_w, m)
        buf = channels_last_padded(x, pad_top, pad_left, th * m + a - m, tw * m + a - m)
        sn, sh, sw, sc = buf.stride()
        tiles = buf.as_strided((a, a, n, th, tw, c), (sh, sw, sn, m * sh, m * sw, sc))
        nt = n * th * tw
        d = tiles.reshape(a * a, nt * c)  # the gather: one copy, tile-major
        v = (self.kron_bt @ d).view(a * a, nt, c)  # input transform B^T d B, all tiles at once
        cg, kg, k = c // g, self.out_channels // g, self.out_channels
        u = self.U
        pdt = product_dtype or v.dtype
        if pdt != v.dtype:
            v, u = v.to(pdt), u.to(pdt)
        if cg == 1 and kg == 1:  # depthwise: a pure elementwise product
            prod = v * u.view(a * a, 1, g)
        elif g == 1:
            prod = torch.bmm(v, u)  # (a^2, tiles, K)
        else:
            vg = (
                v.view(a * a, nt, g, cg).permute(0, 2, 1, 3).reshape(a * a * g, nt, cg).contiguous()
            )
            prod = torch.bmm(vg, u).view(a * a, g, nt, kg).permute(0, 2, 1, 3)
        prod = prod.to(self.kron_at.dtype).reshape(a * a, nt * k)
        y = (self.kron_at @ prod).view(m, m, n, th, tw, k)  # output transform A^T M A
        y = y.permute(2, 5, 3, 0, 4, 1).reshape(n, k, th * m, tw * m)
        return y[:, :, :out_h, :out_w].contiguous()


def winograd_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    s: ConvShape,
    m: int,
    product_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """One-shot Winograd F(m x m, r x r) convolution (prepares the filter transform each call).

    Raises :class:`ShapeError` for strides other than 1 or non-square kernels.
    """
    reason = winograd_unsupported(s)
    if reason:
        raise ShapeError(reason)
    conv = WinogradConv.prepare(weight, m, groups=s.groups)
    return conv(
        x,
        bias,
        padding=(s.pad_top, s.pad_bottom, s.pad_left, s.pad_right),
        dilation=(s.dilation_h, s.dilation_w),
        product_dtype=product_dtype,
    )


def winograd_unsupported(s: ConvShape) -> str | None:
    """Why Winograd cannot run this layer (``None`` if it can)."""
    if s.stride_h != 1 or s.stride_w != 1:
        return (
            f"Winograd needs stride 1, this layer has stride {s.stride_h}x{s.stride_w}; "
            "use algorithm='im2col' or 'direct'"
        )
    if s.kernel_h != s.kernel_w:
        return (
            f"Winograd here needs a square kernel, got {s.kernel_h}x{s.kernel_w}; "
            "use algorithm='im2col' or 'fft'"
        )
    return None
