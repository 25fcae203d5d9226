"""`edgecnn validate`: references are complete and sourced, predictions and summary add up."""

from __future__ import annotations

import json
import math

import pytest
from tests.cli_helpers import run_cli

from edgecnn.schema import REQUIRED_KEYS, ResultKind
from edgecnn.studies.validate import load_references, run_validate, summarise


def test_every_reference_is_sourced_and_calibration_named():
    refs, calibration = load_references()
    assert len(refs) >= 10
    targets = {r.target for r in refs}
    assert {"edge-tpu", "eyeriss", "rpi4"} <= targets
    for r in refs:
        assert r.published > 0 and r.source and len(r.input_shape) == 4
    for target, spec in calibration.items():
        cal = [r for r in refs if r.target == target and r.calibration]
        held = [r for r in refs if r.target == target and not r.calibration]
        assert cal and held, target  # something fitted, something held out
        assert spec["parameter"]


def test_summary_geomean_error():
    from edgecnn.studies.validate import ValidateRow

    def row(ratio):
        return ValidateRow("x", "latency_ms", "m", 1, "int8", "t", "s", False, 1.0, ratio,
                           ratio, 0.67 <= ratio <= 1.5)  # fmt: skip

    s = summarise([row(2.0), row(0.5), row(1.0)])
    assert s["n"] == 3 and s["within_share"] == pytest.approx(1 / 3)
    assert s["geomean_error"] == pytest.approx(math.exp(2 * math.log(2) / 3) - 1)


def test_validate_subset_and_json(capsys):
    code, out, err = run_cli(["validate", "--only", "coral-usb-mobilenet-v2", "--json"], capsys)
    assert code == 0, err
    d = json.loads(out)
    assert d["kind"] == "validate"
    assert all(k in d for k in REQUIRED_KEYS[ResultKind.VALIDATE])
    (row,) = d["rows"]
    assert row["ratio"] == pytest.approx(row["predicted"] / row["published"])
    assert "edge-tpu" in d["fitted"]


def test_fitted_parameters_come_from_calibration_only():
    res = run_validate(only=["eyeriss-vgg16-fps"])
    fit = res.fitted["eyeriss"]
    assert fit["fitted_on"] == ["eyeriss-alexnet-fps"]
    assert 0 < fit["mac_efficiency"] <= 1
    raw = run_validate(only=["eyeriss-vgg16-fps"], fit=False)
    assert raw.fitted == {}
    assert raw.rows[0].predicted >= res.rows[0].predicted


def test_unknown_reference_is_one_line_exit_2(capsys):
    code, out, err = run_cli(["validate", "--only", "nope"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "unknown reference nope" in err


def test_validate_result_renders_in_the_report(tmp_path):
    from edgecnn.report.html import write_report
    from edgecnn.report.kinds import validate

    res = run_validate(only=["coral-usb-squeezenet"]).to_dict()
    out = tmp_path / "r.html"
    write_report([validate(json.loads(json.dumps(res)), "validate.json")], out)
    text = out.read_text()
    assert "Predictions vs published hardware figures" in text
    assert "coral-usb-squeezenet" in text and "invoke_overhead_ms" in text


def test_caffe_reference_models_match_the_published_architectures():
    """ResNet-50 v1 strides in the 1x1 reduction (every 3x3 is stride 1, 3.86 G MACs, 25.56 M
    params as He et al.'s Caffe model); the Caffe AlexNet is the original plus two LRNs, with
    the same conv MACs and the same parameters."""
    from edgecnn.analysis.profile import profile
    from edgecnn.graph.ir import OpKind
    from edgecnn.models import load_graph
    from edgecnn.studies.reference_models import alexnet_caffe, alexnet_original, resnet50_v1

    g = load_graph(resnet50_v1(), (1, 3, 224, 224))
    convs3 = [la for la in g.layers if la.op is OpKind.CONV and la.attr("kernel") == (3, 3)]
    assert len(convs3) == 16 and all(la.attr("stride") == (1, 1) for la in convs3)
    strided_1x1 = [
        la
        for la in g.layers
        if la.op is OpKind.CONV and la.attr("kernel") == (1, 1) and la.attr("stride") == (2, 2)
    ]
    assert len(strided_1x1) == 6  # reduction + projection shortcut of stages 3, 4, 5
    # closed form: torchvision's v1.5 count minus what moving the stride changes per stage
    v15 = profile(load_graph("resnet50", (1, 3, 224, 224)), "fp32").totals
    v1 = profile(g, "fp32").totals
    delta = 0
    for cin, width, hw in ((256, 128, 56), (512, 256, 28), (1024, 512, 14)):
        out = hw // 2
        # 1x1 reduction now at the output resolution instead of the input's
        delta += cin * width * (hw * hw - out * out)
    assert v15.macs - v1.macs == delta
    assert v1.params == v15.params
    orig = profile(load_graph(alexnet_original(), (1, 3, 227, 227)), "fp32").totals
    caffe_g = load_graph(alexnet_caffe(), (1, 3, 227, 227))
    caffe = profile(caffe_g, "fp32").totals
    assert caffe.params == orig.params
    conv_macs = lambda gr: sum(  # noqa: E731
        r.macs for r in profile(gr, "fp32").layers if r.op == "conv"
    )
    assert conv_macs(caffe_g) == conv_macs(load_graph(alexnet_original(), (1, 3, 227, 227)))
    assert any(la.attr("fn") == "pow" for la in caffe_g.layers)  # the LRN's power


def test_resnet_v2_is_pre_activation_and_downsamples_in_the_last_block():
    """Keras ResNet50V2 / ResNet152V2: 25.6 M / 60.4 M parameters (Keras Applications table),
    a BatchNorm before every bottleneck (none of them foldable: they follow an addition), the
    stride in the last block's 3x3 of stages 2-4."""
    from edgecnn.analysis.profile import profile
    from edgecnn.errors import ConfigError
    from edgecnn.graph.ir import OpKind
    from edgecnn.models import load_graph
    from edgecnn.studies.reference_models import resnet_v2

    g = load_graph(resnet_v2(50), (1, 3, 224, 224))
    totals = profile(g, "fp32").totals
    assert totals.params == pytest.approx(25.6e6, rel=5e-3)
    assert profile(load_graph(resnet_v2(152), (1, 3, 224, 224)), "fp32").totals.params == (
        pytest.approx(60.4e6, rel=5e-3)
    )
    bns = [la for la in g.layers if la.op is OpKind.BATCHNORM]
    assert len(bns) == 3 * 16 + 1  # pre-activation + two inner per block, and the final one
    strided = [la for la in g.layers if la.op is OpKind.CONV and la.attr("stride") == (2, 2)]
    assert [la.attr("kernel") for la in strided] == [(7, 7), (3, 3), (3, 3), (3, 3)]
    out = [la.outputs[0].shape[-1] for la in strided]
    assert out == [112, 28, 14, 7]  # stages 2-4 end at 28, 14 and 7
    with pytest.raises(ConfigError):
        resnet_v2(34)


def test_inception_reference_models_match_published_counts():
    """Keras's InceptionResNetV2 reports 55,873,736 parameters, counting each BatchNorm as 3
    per channel (beta, moving mean and variance: ``scale=False``), where torch has 2 trainable
    and 2 buffers; TF-slim's Inception-v4 has 42.7 M (1001 classes) and 12.3 G MACs at 299.
    Both end in 8 x 8 x 1536 before the pool."""
    import torch

    from edgecnn.analysis.profile import profile
    from edgecnn.models import load_graph
    from edgecnn.studies.reference_models import inception_resnet_v2, inception_v4

    irv2 = inception_resnet_v2()
    learned = sum(p.numel() for p in irv2.parameters())
    bn = sum(m.num_features for m in irv2.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert learned - bn + 2 * bn == 55_873_736  # minus the scales, plus mean and variance
    v4 = inception_v4()
    g = load_graph(v4, (1, 3, 299, 299))
    totals = profile(g, "fp32").totals
    assert totals.params == pytest.approx(42.68e6, rel=2e-3)
    assert totals.macs == pytest.approx(12.27e9, rel=1e-2)
    for model in (v4, irv2):
        with torch.no_grad():
            assert tuple(model.eval()[:-3](torch.zeros(1, 3, 299, 299)).shape) == (1, 1536, 8, 8)
