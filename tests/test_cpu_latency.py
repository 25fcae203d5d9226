"""The CPU latency model (analysis/cpu_latency.py) and its use by `edgecnn validate`."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from edgecnn.analysis.cpu_latency import (
    RUNTIMES,
    CpuParams,
    KernelWork,
    device_params,
    fit,
    kernel_latency_s,
    kernel_work,
    latency_s,
)
from edgecnn.analysis.devices import get_device
from edgecnn.errors import ConfigError
from edgecnn.graph.ir import Graph, Layer, OpKind, TensorInfo
from edgecnn.kernels.counts import winograd_tile_savings

RPI4 = get_device("rpi4")
PARAMS = CpuParams(12e9, 4, 5.5e9, gemm_efficiency=0.8, parallel_efficiency=0.3, reduction_half=40)


def conv(name, cin, cout, hw, k=3, stride=1, groups=1, src="x", dst=None):
    out_hw = (hw + 2 * (k // 2) - k) // stride + 1
    x = TensorInfo(src, (1, cin, hw, hw))
    y = TensorInfo(dst or f"{name}_out", (1, cout, out_hw, out_hw))
    layer = Layer(
        name,
        OpKind.CONV,
        [x],
        [y],
        params={"weight": (cout, cin // groups, k, k)},
        attrs={"kernel": (k, k), "stride": (stride, stride), "groups": groups},
    )
    return layer, x, y


def one_layer_graph(**kw) -> Graph:
    layer, x, y = conv("c", **kw)
    return Graph("one", [layer], [x], [y])


def test_single_conv_closed_form_latency():
    """One 1x1 conv, 64 -> 128 channels, 28x28, no on-chip cache: every term by hand."""
    g = one_layer_graph(cin=64, cout=128, hw=28, k=1)
    (w,) = kernel_work(g, replace(RPI4, onchip_bytes=0), runtime=None)
    macs = 128 * 28 * 28 * 64
    dram = 4 * (64 * 28 * 28 + 128 * 28 * 28 + 128 * 64)  # input, output, weights (fp32)
    assert w.flops == 2 * macs and w.dram_bytes == dram and w.reduction == 64
    for threads in (1, 2, 4):
        rate = 12e9 * 0.8 * (1 + 0.3 * (threads - 1)) * 64 / (64 + 40)
        expected = max(2 * macs / rate, dram / 5.5e9)
        assert latency_s([w], PARAMS, threads) == pytest.approx(expected)


def test_one_thread_is_one_core_and_n_threads_within_the_speedup_bound():
    compute_bound = [KernelWork("k", "direct", 1e9, 1.0, reduction=512)]
    memory_bound = [KernelWork("m", "other", 1.0, 1e9)]
    mixed = compute_bound + memory_bound
    one_core = 12e9 * 0.8 * 512 / 552
    assert latency_s(compute_bound, PARAMS, 1) == pytest.approx(1e9 / one_core)
    for n in (2, 3, 4):
        bound = PARAMS.speedup(n)
        assert bound == pytest.approx(1 + 0.3 * (n - 1))
        assert latency_s(compute_bound, PARAMS, 1) == pytest.approx(
            bound * latency_s(compute_bound, PARAMS, n)
        )
        assert latency_s(memory_bound, PARAMS, 1) == latency_s(memory_bound, PARAMS, n)
        ratio = latency_s(mixed, PARAMS, 1) / latency_s(mixed, PARAMS, n)
        assert 1.0 <= ratio <= bound
    with pytest.raises(ConfigError):
        latency_s(mixed, PARAMS, 5)
    with pytest.raises(ConfigError):
        latency_s(mixed, PARAMS, 0)


def test_winograd_lowers_only_3x3_stride1_convs_by_the_closed_form_ratio():
    a, x, ya = conv("a", 64, 64, 24, src="x", dst="ya")  # 3x3 s1: Winograd F(6,3)
    b, _, yb = conv("b", 64, 256, 24, src="ya", dst="yb")  # 3x3 s1, 256 out: F(4,3)
    c, _, yc = conv("c", 256, 64, 24, k=1, src="yb", dst="yc")  # 1x1
    d, _, yd = conv("d", 64, 64, 24, stride=2, src="yc", dst="yd")  # 3x3 s2
    e, _, ye = conv("e", 64, 64, 12, groups=64, src="yd", dst="ye")  # depthwise 3x3 s1
    g = Graph("mix", [a, b, c, d, e], [x], [ye])
    direct = {w.name: w for w in kernel_work(g, RPI4, runtime=None)}
    wino = {w.name: w for w in kernel_work(g, RPI4, runtime="ncnn")}
    assert {n for n, w in wino.items() if w.algorithm == "winograd"} == {"a", "b"}
    for name, m in (("a", 6), ("b", 4)):  # 24 is a multiple of 4 and 6: no partial tiles
        assert direct[name].flops / wino[name].flops == pytest.approx(winograd_tile_savings(m, 3))
        weights = 4 * math.prod(g.layers["ab".index(name)].params["weight"])
        extra = wino[name].dram_bytes - direct[name].dram_bytes
        assert extra == pytest.approx(weights * ((m + 2) ** 2 / 9 - 1))
    for name in "cde":
        assert wino[name] == direct[name]
    assert RUNTIMES["ncnn"].winograd_m(128, 128) == 6
    assert RUNTIMES["ncnn"].winograd_m(128, 129) == 4
    assert RUNTIMES["pytorch"].winograd_m(64, 64) is None


def test_winograd_partial_tiles_cost_full_tiles():
    g = one_layer_graph(cin=16, cout=16, hw=7)  # 7x7 output, F(6,3): 2x2 tiles of 6x6
    (w,) = kernel_work(g, RPI4, runtime="ncnn")
    assert w.flops == 2 * 4 * 64 * 16 * 16


def test_fit_recovers_known_parameters_and_needs_cases():
    base = device_params(RPI4)
    truth = replace(
        base,
        gemm_efficiency=0.7,
        parallel_efficiency=0.35,
        reduction_half=30.0,
        winograd_efficiency=0.6,
    )
    works = [
        [KernelWork("big", "direct", 4e9, 2e7, reduction=1152)],
        [
            KernelWork("dw", "direct", 2e7, 4e6, reduction=9),
            KernelWork("pw", "direct", 6e8, 1e7, 96),
        ],
        [
            KernelWork("fc", "direct", 2e8, 4e8, reduction=4096),
            KernelWork("c", "direct", 2e9, 0, 64),
        ],
        [KernelWork("w", "winograd", 1e9, 1e6, reduction=128)],
    ]
    cases = [(w, t, latency_s(w, truth, t)) for w in works for t in (1, 4)]
    got = fit(cases, base)
    assert got.gemm_efficiency == pytest.approx(0.7, rel=1e-3)
    assert got.parallel_efficiency == pytest.approx(0.35, rel=1e-3)
    assert got.reduction_half == pytest.approx(30.0, rel=1e-3)
    assert got.winograd_efficiency == pytest.approx(0.6, rel=1e-3)
    no_winograd = fit([c for c in cases if all(w.algorithm == "direct" for w in c[0])], base)
    assert no_winograd.winograd_efficiency == base.winograd_efficiency  # nothing to fit it on
    one_thread = fit([c for c in cases if c[1] == 1], base)
    assert one_thread.parallel_efficiency == base.parallel_efficiency  # nothing to fit it on
    with pytest.raises(ConfigError):
        fit([], base)


def test_cpu_references_load_with_and_without_threads_and_runtime():
    from edgecnn.studies.validate import load_references

    base = """
[[reference]]
name = "{name}"
metric = "latency_ms"
published = 1.0
model = "resnet18"
input_shape = [1, 3, 224, 224]
precision = "fp32"
target = "rpi4"
scope = "network"
source = "s"
"""
    text = base.format(name="old") + base.format(name="new") + 'threads = 2\nruntime = "ncnn"\n'
    (old, new), _ = load_references(text)
    assert (old.threads, old.runtime) == (None, None)
    assert (new.threads, new.runtime) == (2, "ncnn")
    refs, calibration = load_references()
    rpi = [r for r in refs if r.target == "rpi4"]
    assert calibration["rpi4"]["parameter"] == "cpu_latency"
    assert all(r.runtime in RUNTIMES for r in rpi)
    assert {r.threads for r in rpi if r.runtime == "ncnn"} == {1, 4}
    assert any(r.calibration for r in rpi) and any(not r.calibration for r in rpi)


def test_rpi4_fit_uses_only_calibration_references(monkeypatch):
    from edgecnn.studies import validate

    refs, calibration = validate.load_references()
    cal = [r.name for r in refs if r.target == "rpi4" and r.calibration]
    held = next(r for r in refs if r.target == "rpi4" and not r.calibration)
    res = validate.run_validate(only=[held.name])
    fit_rpi = res.fitted["rpi4"]
    assert fit_rpi["fitted_on"] == cal
    assert 0 < fit_rpi["gemm_efficiency"] <= 1 and 0 <= fit_rpi["parallel_efficiency"] <= 1
    # Changing every held-out published figure leaves the fit (and the prediction) unchanged.
    moved = [replace(r, published=r.published * 7) if not r.calibration else r for r in refs]
    monkeypatch.setattr(validate, "load_references", lambda text=None: (moved, calibration))
    res2 = validate.run_validate(only=[held.name])
    assert res2.fitted["rpi4"] == fit_rpi
    assert res2.rows[0].predicted == pytest.approx(res.rows[0].predicted)
    assert "rpi4 held_out" in res2.summary and "rpi4 calibration" in res2.summary


def test_catalog_cpu_model_is_what_validate_fits_and_profile_reports_it():
    from edgecnn.analysis.cpu_latency import FITTED, catalog_params, network_latency_s
    from edgecnn.analysis.profile import profile
    from edgecnn.models import load_graph
    from edgecnn.studies.validate import load_references, run_validate

    refs, _ = load_references()
    cal = [r.name for r in refs if r.target == "rpi4" and r.calibration]
    fitted = run_validate(only=cal).fitted["rpi4"]
    params = catalog_params(RPI4)
    for name in FITTED:
        assert getattr(params, name) == pytest.approx(fitted[name], rel=2e-3), name
    g = load_graph("mobilenet_v2")
    want = latency_s(kernel_work(g, RPI4), params, RPI4.cores)
    assert profile(g, "fp32", device="rpi4").totals.cpu_model_latency_s == pytest.approx(want)
    assert network_latency_s(g, RPI4, threads=1) > want  # one core is slower than four
    assert profile(g, "int8", device="rpi4").totals.cpu_model_latency_s is None  # fp32 model
    assert profile(g, "fp32", device="jetson-nano").totals.cpu_model_latency_s is None
    with pytest.raises(ConfigError, match="unknown cpu_model keys"):
        catalog_params(replace(RPI4, cpu_model={"speed": 2.0}))


def test_winograd_efficiency_slows_only_winograd_kernels():
    slow = replace(PARAMS, winograd_efficiency=0.5)
    wino = KernelWork("w", "winograd", 1e9, 0, reduction=64)
    direct = KernelWork("d", "direct", 1e9, 0, reduction=64)
    assert kernel_latency_s(wino, slow, 1) == pytest.approx(2 * kernel_latency_s(wino, PARAMS, 1))
    assert kernel_latency_s(direct, slow, 1) == kernel_latency_s(direct, PARAMS, 1)
    # a memory-bound Winograd kernel stays memory-bound
    bound = KernelWork("wm", "winograd", 1e3, 5.5e9, reduction=64)
    assert kernel_latency_s(bound, slow, 1) == pytest.approx(1.0)
