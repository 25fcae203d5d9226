"""ConvTranspose on the PE array by sub-pixel decomposition, against closed forms."""

import pytest
from torch import nn

from edgecnn.analysis import profile
from edgecnn.hardware import load_accelerator, simulate
from edgecnn.hardware.workload import build_workload
from edgecnn.models import load_graph

ACCEL = load_accelerator("tpu-32x32")


def _deconv(cin, cout, k, stride, pad, out_pad=0, groups=1):
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, k, stride, pad, output_padding=out_pad, groups=groups),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    ).eval()


@pytest.mark.parametrize(
    ("k", "stride", "pad", "out_pad", "groups"),
    [(4, 2, 1, 0, 1), (2, 2, 0, 0, 1), (4, 2, 1, 0, 2), (3, 1, 1, 0, 1)],
)
def test_divisible_kernels_have_profiles_macs(k, stride, pad, out_pad, groups):
    cin, cout, hw = 8, 4, 16
    graph = load_graph(_deconv(cin, cout, k, stride, pad, out_pad, groups), (1, cin, hw, hw))
    closed = hw * hw * cin * (cout // groups) * k * k  # N*C*H*W*(K/G)*R*S
    assert profile(graph).totals.macs == closed
    res = simulate(graph, ACCEL)
    assert res.unknown_ops == []
    (layer,) = res.layers  # BN folded, ReLU fused: one array layer
    assert layer.unit == "array" and layer.op == "conv_transpose"
    assert layer.macs == layer.effective_macs == closed
    assert len(layer.fused) == 2


def test_kernel_not_a_multiple_of_the_stride_pads_the_phase_kernels():
    # k=3, s=2, p=1, op=1: 16x16 -> 32x32; phases use ceil(3/2)=2 taps per axis (4 of 9 real).
    cin, cout, hw = 8, 4, 16
    graph = load_graph(_deconv(cin, cout, 3, 2, 1, 1), (1, cin, hw, hw))
    closed = hw * hw * cin * cout * 9
    assert profile(graph).totals.macs == closed
    (item,) = build_workload(graph).items
    s = item.shape
    assert (s.kernel_h, s.kernel_w, s.stride_h, s.out_channels) == (2, 2, 1, cout * 4)
    assert (s.out_h, s.out_w) == (hw, hw)  # ceil(32 / 2) pixels per phase
    assert simulate(graph, ACCEL).layers[0].macs == closed * 16 // 9


def test_transposed_conv_maps_to_the_phase_gemm():
    graph = load_graph(_deconv(64, 32, 4, 2, 1), (1, 64, 28, 28))
    layer = simulate(graph, ACCEL).layers[0]
    # GEMM per phase stack: EF = 28*28 input pixels, RSC = 64 channels x 2x2 phase taps = 256,
    # K = 32 x 4 phases = 128; WS on 32x32: (Sr, Sc, T) = (256, 128, 784), 8 x 4 folds.
    assert ACCEL.dataflow.value == "ws"
    assert layer.folds == 8 * 4
    assert layer.compute_cycles == 8 * 4 * 784 + 2 * 32 + 32 - 2
