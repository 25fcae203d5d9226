"""The seed case study on ResNet-50: step ordering and the quantities behind each claim."""

from __future__ import annotations

import json
import math

import pytest

from edgecnn.cli import main
from edgecnn.graph.ir import OpKind
from edgecnn.hardware.loading import load_model_graph
from edgecnn.studies.casestudy import run_casestudy


@pytest.fixture(scope="module")
def resnet50():
    return load_model_graph("resnet50")


@pytest.fixture(scope="module")
def study(resnet50):
    return run_casestudy(resnet50)


def test_steps_improve_what_they_target(study):
    base, fused, wino, reuse = study.steps
    assert fused.latency_s < base.latency_s and fused.dram_bytes < base.dram_bytes
    assert wino.mults_3x3 < fused.mults_3x3 and wino.latency_s < fused.latency_s
    assert reuse.dram_bytes < wino.dram_bytes and reuse.latency_s <= wino.latency_s
    assert study.accelerator == "seed-chip" and study.precision == "fp16"


def test_3x3_multiplications_counted_from_the_graph(resnet50, study):
    direct = sum(
        math.prod(layer.outputs[0].shape) * math.prod(layer.params["weight"][1:])
        for layer in resnet50.layers
        if layer.op == OpKind.CONV and tuple(layer.params["weight"][2:]) == (3, 3)
    )
    assert study.steps[0].mults_3x3 == study.steps[1].mults_3x3 == direct
    # F(4x4,3x3) can at best cut multiplications 4x
    assert direct / 4 <= study.steps[2].mults_3x3 < direct


def test_claims_are_reported_with_reasons(study):
    assert len(study.claims) == 3
    for claim in study.claims:
        assert claim.seed and claim.ours and len(claim.why) > 40
    base, _fused, wino, reuse = study.steps
    latency, mults, dram = study.claims
    # the simulated side of each claim, recomputed from the steps
    assert latency.ours_value == pytest.approx(1 - reuse.latency_s / base.latency_s)
    assert dram.ours_value == pytest.approx(1 - reuse.dram_bytes / wino.dram_bytes)
    assert mults.ours_value >= study.steps[1].mults_3x3 / wino.mults_3x3
    assert (latency.seed_value, mults.seed_value, dram.seed_value) == (0.60, 4.0, 0.75)
    # agreement is the stated tolerance, and the text shows our figure
    for claim in study.claims:
        assert claim.agrees == (abs(claim.ours_value - claim.seed_value) <= claim.tolerance)
    assert f"{-latency.ours_value:+.0%}" in latency.ours
    assert f"{mults.ours_value:.2f}x" in mults.ours


def test_casestudy_cli_json(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["casestudy", "resnet50", "--json"])
        raise SystemExit(0)
    assert exc.value.code == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kind"] == "casestudy"
    assert [s["step"] for s in d["steps"]][0] == "baseline" and len(d["claims"]) == 3
    assert [c["agrees"] for c in d["claims"]] == [
        abs(c["ours_value"] - c["seed_value"]) <= c["tolerance"] for c in d["claims"]
    ]
