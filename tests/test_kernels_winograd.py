"""Winograd transform generation: exact correctness for F(m, r), savings, prepared filters."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from edgecnn.errors import ConfigError, ShapeError
from edgecnn.kernels import WinogradConv, winograd_transforms
from edgecnn.kernels.counts import winograd_tile_savings


def _matvec(mat, vec):
    return [sum((a * b for a, b in zip(row, vec, strict=True)), Fraction(0)) for row in mat]


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("r", [1, 2, 3, 4, 5])
def test_transforms_compute_correlation_exactly(m, r):
    """A^T [(G g) * (B^T d)] equals the 1-D correlation, in exact rational arithmetic."""
    t = winograd_transforms(m, r)
    assert len(t.AT) == m and len(t.G) == t.alpha and len(t.BT) == t.alpha
    d = [Fraction(3 * i * i - 7 * i + 2, i + 1) for i in range(t.alpha)]
    g = [Fraction(5 - 2 * k, 3 + k) for k in range(r)]
    y = _matvec(t.AT, [u * v for u, v in zip(_matvec(t.G, g), _matvec(t.BT, d), strict=True)])
    assert y == [sum(g[k] * d[i + k] for k in range(r)) for i in range(m)]


def test_custom_points_and_lavin_f4_matrix():
    """With Lavin & Gray's points 0, +-1, +-2, inf the input transform is their B^T."""
    pts = (0, 1, -1, 2, -2, None)
    t = winograd_transforms(4, 3, pts)
    lavin_bt = [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ]
    for row, ref in zip(t.BT, lavin_bt, strict=True):
        # rows may differ by sign/scale from the paper's; compare up to a nonzero factor
        factor = next(a / b for a, b in zip(row, ref, strict=True) if b != 0)
        assert list(row) == [factor * b for b in ref]


def test_default_points_are_documented_choice():
    assert winograd_transforms(2, 3).points == (0, 1, -1, None)
    assert winograd_transforms(4, 3).points == (0, 1, -1, Fraction(1, 2), Fraction(-1, 2), None)
    assert len(winograd_transforms(6, 3).points) == 8


@pytest.mark.parametrize("points", [(0, 1, None), (0, 1, 1, None), (0, 1, 2, 3, 4, 5, 6, None)])
def test_bad_points_rejected(points):
    with pytest.raises(ConfigError):
        winograd_transforms(2, 3, points)


def test_tile_savings():
    assert winograd_tile_savings(2, 3) == pytest.approx(2.25)
    assert winograd_tile_savings(4, 3) == pytest.approx(4.0)
    assert winograd_tile_savings(6, 3) == pytest.approx(324 / 64)


def test_prepared_filter_transform_reused_across_inputs():
    w = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    conv = WinogradConv.prepare(w, 4, dtype=torch.float64)
    assert conv.U.shape == (36, 4, 5)
    for h, wd in ((6, 6), (9, 13), (17, 4)):
        x = torch.randn(2, 4, h, wd, dtype=torch.float64)
        y = conv(x, padding=(1, 1, 1, 1))
        torch.testing.assert_close(y, F.conv2d(x, w, padding=1), atol=1e-10, rtol=1e-10)


def test_prepared_dilation_groups_and_depthwise():
    x = torch.randn(2, 6, 15, 14, dtype=torch.float64)
    for groups, kg in ((3, 2), (6, 1)):
        w = torch.randn(groups * kg, 6 // groups, 3, 3, dtype=torch.float64)
        conv = WinogradConv.prepare(w, 2, groups=groups, dtype=torch.float64)
        y = conv(x, padding=(2, 1, 0, 3), dilation=(2, 3))
        ref = F.conv2d(F.pad(x, (0, 3, 2, 1)), w, dilation=(2, 3), groups=groups)
        torch.testing.assert_close(y, ref, atol=1e-10, rtol=1e-10)


def test_prepared_rejects_wrong_input():
    conv = WinogradConv.prepare(torch.randn(4, 3, 3, 3), 2)
    with pytest.raises(ShapeError, match="input channels"):
        conv(torch.randn(1, 5, 8, 8))
    with pytest.raises(ShapeError, match="smaller"):
        conv(torch.randn(1, 3, 2, 2))


def test_batch_chunking_gives_the_same_result(monkeypatch):
    import edgecnn.kernels.winograd as wmod

    w = torch.randn(6, 5, 3, 3, dtype=torch.float64)
    x = torch.randn(5, 5, 9, 10, dtype=torch.float64)
    conv = WinogradConv.prepare(w, 2, dtype=torch.float64)
    whole = conv(x, padding=(1, 1, 1, 1))
    monkeypatch.setattr(wmod, "WINOGRAD_CHUNK_ELEMS", 1)  # one image per chunk
    torch.testing.assert_close(conv(x, padding=(1, 1, 1, 1)), whole, atol=1e-12, rtol=0)
    torch.testing.assert_close(whole, F.conv2d(x, w, padding=1), atol=1e-10, rtol=1e-10)
