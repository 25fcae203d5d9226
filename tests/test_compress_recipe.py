"""Tests of recipes and the compress pipeline/command (report contents and bad input)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import run_cli as _run
from compress_helpers import mnist, trained
from edgecnn.compress.quantize import QuantConfig
from edgecnn.compress.recipe import CompressReport, StepReport, load_recipe, parse_recipe
from edgecnn.compress.steps import MAX_EPOCHS, STEPS, QuantizeStep, StepConfig
from edgecnn.errors import ConfigError
from edgecnn.models.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    p = tmp_path_factory.mktemp("ck") / "model.pt"
    save_checkpoint(trained("edge-resnet"), p, "edge-resnet", {})
    return p


def test_shipped_recipes_parse():
    shipped = sorted(p.stem for p in Path("recipes").glob("*.yaml"))
    assert {"int8", "full", "mixed", "qat", "fp16", "prune-adabn"} <= set(shipped)
    for name in shipped:
        r = load_recipe(f"recipes/{name}.yaml")
        assert r.steps and all(type(s) is STEPS[s.name].config for s in r.steps)
    full = [s.name for s in load_recipe("recipes/full.yaml").steps]
    assert sorted(full) == ["distill", "fold", "prune", "quantize"] and full[-1] == "quantize"


def test_int8_recipe_end_to_end(ckpt, tmp_path, capsys):
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    out = tmp_path / "out"
    code, stdout, _ = _run(
        [
            "compress",
            str(ckpt),
            "--recipe",
            "recipes/int8.yaml",
            "--data",
            "mnist",
            "--out",
            str(out),
            "--json",
        ],
        capsys,
    )
    assert code == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["steps"] == json.loads(stdout)["steps"] and rep["kind"] == "compress"
    steps = rep["steps"]
    assert [s["step"] for s in steps] == ["input", "fold", "quantize"]
    for s in steps:
        assert {"step", "accuracy", "macs", "params", "size_bytes", "latency_ms"} <= set(s)
        assert 0.0 <= s["accuracy"] <= 1.0 and s["latency_ms"] > 0
    inp, fold, q = steps
    assert all(s["unknown_ops"] == [] for s in steps) and inp["details"] == {}
    assert set(fold["details"]) == {"bn_before", "bn_after", "folded", "fused", "unfoldable"}
    assert {"int8_conv_fraction", "warnings", "sqnr", "excluded_nodes", "sensitivity"} <= set(
        q["details"]
    )
    assert (
        fold["macs"] == inp["macs"]
        and fold["details"]["bn_after"] == 0
        and fold["details"]["bn_before"] > 0
    )
    assert q["int8_conv_fraction"] == 1.0
    sqnr = q["details"]["sqnr"]  # error accumulation through depth, for the report's plot
    assert len(sqnr) == 11 and sqnr[0]["name"] == "stem.0" and sqnr[-1]["name"] == "fc"
    assert inp["accuracy"] - q["accuracy"] <= 0.005
    assert inp["size_bytes"] / q["size_bytes"] >= 3.5
    assert (out / "model.onnx").read_bytes() == (out / "step-2-quantize.onnx").read_bytes()
    assert (out / "model.pt").is_file()
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == digest  # input untouched


def _assert_clean_failure(code, err, out, needle):
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("edgecnn: error:") and needle in lines[0]
    assert not out.exists()
    assert not any(p.name.startswith(f".{out.name}") for p in out.parent.iterdir())


def test_unknown_recipe_key(ckpt, tmp_path, capsys):
    r = tmp_path / "bad.yaml"
    r.write_text("steps:\n  - step: quantize\n    calibraton: minmax\n")
    out = tmp_path / "out"
    code, _, err = _run(
        ["compress", str(ckpt), "--recipe", str(r), "--data", "mnist", "--out", str(out)], capsys
    )
    _assert_clean_failure(code, err, out, "calibraton")
    assert "valid keys" in err and "calibration" in err


def test_distribution_calibration_refused(ckpt, tmp_path, capsys):
    r = tmp_path / "bad.yaml"
    r.write_text("steps:\n  - step: quantize\n    calibration: distribution\n")
    out = tmp_path / "out"
    code, _, err = _run(
        ["compress", str(ckpt), "--recipe", str(r), "--data", "mnist", "--out", str(out)], capsys
    )
    _assert_clean_failure(code, err, out, "refused")


def test_prune_on_onnx_only_model_refused(ckpt, tmp_path, capsys):
    onnx_in = tmp_path / "m.onnx"
    from edgecnn.runtime.export import export_onnx

    export_onnx(trained("edge-resnet"), onnx_in, (1, 1, 28, 28))
    before = onnx_in.read_bytes()
    out = tmp_path / "out"
    code, _, err = _run(
        [
            "compress",
            str(onnx_in),
            "--recipe",
            "recipes/full.yaml",
            "--data",
            "mnist",
            "--out",
            str(out),
        ],
        capsys,
    )
    _assert_clean_failure(code, err, out, "ONNX-only")
    assert onnx_in.read_bytes() == before


def test_qat_without_data_refused(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = _run(
        ["compress", str(ckpt), "--recipe", "recipes/qat.yaml", "--out", str(out)], capsys
    )
    _assert_clean_failure(code, err, out, "needs data")


def test_empty_data_folder(ckpt, tmp_path, capsys):
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    out = tmp_path / "out"
    code, _, err = _run(
        [
            "compress",
            str(ckpt),
            "--recipe",
            "recipes/int8.yaml",
            "--data",
            str(tmp_path / "imgs"),
            "--out",
            str(out),
        ],
        capsys,
    )
    _assert_clean_failure(code, err, out, "no images")


def test_shape_mismatch(ckpt, tmp_path, capsys):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(3):
            arr = np.full((16, 16, 3), 40 * i, dtype=np.uint8)
            arr[..., 1] = 200
            Image.fromarray(arr).save(tmp_path / "imgs" / c / f"{i}.png")
    out = tmp_path / "out"
    code, _, err = _run(
        [
            "compress",
            str(ckpt),
            "--recipe",
            "recipes/int8.yaml",
            "--data",
            str(tmp_path / "imgs"),
            "--out",
            str(out),
        ],
        capsys,
    )
    _assert_clean_failure(code, err, out, "model expects input")


def test_parse_recipe_rejects_bad_types_and_order():
    with pytest.raises(ConfigError, match="integer"):
        parse_recipe({"steps": [{"step": "prune", "rounds": "two"}]})
    with pytest.raises(ConfigError, match="put quantize"):
        parse_recipe({"steps": [{"step": "quantize"}, {"step": "prune"}]})
    with pytest.raises(ConfigError, match="unknown step 'squash'"):
        parse_recipe({"steps": [{"step": "squash"}]})


def test_run_recipe_python_api_on_module(tmp_path):
    from edgecnn.compress.recipe import run_recipe

    m = trained("edge-resnet")
    seen, names = [], []
    rep = run_recipe(
        m,
        {"steps": [{"step": "fold"}, {"step": "fp16"}]},
        mnist(),
        tmp_path / "o",
        progress=lambda it: (seen.append(1) or x for x in it),
        measure_runs=5,
        on_step=names.append,
    )
    assert [s.step for s in rep.steps] == ["input", "fold", "fp16"]
    assert names == ["fold 1/2", "fp16 2/2"]
    assert isinstance(rep, CompressReport) and all(isinstance(s, StepReport) for s in rep.steps)
    assert rep.to_dict()["kind"] == "compress"
    assert rep.steps[1].details.bn_after == 0 and rep.steps[1].details.to_dict()["bn_after"] == 0
    assert rep.steps[2].details.to_dict() == {"precision": "fp16"}
    # FP16 weights count like FP32 ones, through edgecnn.analysis
    assert rep.steps[2].macs == rep.steps[1].macs and rep.steps[2].params == rep.steps[1].params
    assert rep.steps[2].size_bytes < 0.6 * rep.steps[1].size_bytes
    assert abs(rep.steps[2].accuracy - rep.steps[0].accuracy) <= 0.002


def test_max_drop_flag_turns_on_mixed_precision(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["compress", str(ckpt), "--recipe", "recipes/int8.yaml", "--data", "mnist"]
    code, stdout, _ = _run([*args, "--out", str(out), "--max-drop", "0.5", "--json"], capsys)
    assert code == 0
    q = json.loads(stdout)["steps"][-1]
    assert q["step"] == "quantize" and "excluded_nodes" in q["details"]
    assert len(q["details"]["sensitivity"]) == 11  # 10 convs + the classifier, each scored
    code, _, err = _run([*args, "--out", str(tmp_path / "o2"), "--max-drop", "-1"], capsys)
    assert code == 2 and ">= 0" in err
    code, _, err = _run([*args, "--out", str(tmp_path / "o3"), "--max-drop", "nan"], capsys)
    _assert_clean_failure(code, err, tmp_path / "o3", "--max-drop")
    assert "nan" in err and ">= 0" in err


# ----------------------------------------------------------------------------- the step table


def _all_subclasses(cls: type) -> set[type]:
    out = set()
    for c in cls.__subclasses__():
        out |= {c} | _all_subclasses(c)
    return out


@pytest.mark.parametrize("name", sorted(STEPS))
def test_step_table_is_complete(name):
    spec = STEPS[name]
    assert spec.name == spec.config.name == name
    assert dataclasses.is_dataclass(spec.config) and spec.config.__dataclass_params__.frozen
    assert issubclass(spec.config, StepConfig) and callable(spec.run)
    step = parse_recipe({"steps": [{"step": name}]}).steps[0]
    assert type(step) is spec.config and step == spec.config()


def test_every_step_config_has_an_implementation():
    configs = {c for c in _all_subclasses(StepConfig) if dataclasses.is_dataclass(c)}
    assert configs == {spec.config for spec in STEPS.values()}


_QUANT_VALUES = {
    "activation_type": "int8",
    "weight_type": "uint8",
    "per_channel": False,
    "symmetric_activations": True,
    "symmetric_weights": False,
    "calibration": "mse",
    "percentile": 99.9,
    "calib_samples": 50,
    "nodes_to_exclude": ["Conv_0"],
}


@pytest.mark.parametrize("f", dataclasses.fields(QuantConfig), ids=lambda f: f.name)
def test_every_quant_config_field_is_a_recipe_key(f):
    value = _QUANT_VALUES.get(f.name, f.default)
    step = parse_recipe({"steps": [{"step": "quantize", f.name: value}]}).steps[0]
    want = tuple(value) if isinstance(value, list) else value
    assert getattr(step, f.name) == want and getattr(step.quant_config(), f.name) == want
    assert type(step.quant_config()) is QuantConfig


def test_quantize_step_is_quant_config_plus_max_drop():
    own = {f.name for f in dataclasses.fields(QuantizeStep)}
    assert issubclass(QuantizeStep, QuantConfig)
    assert own - {f.name for f in dataclasses.fields(QuantConfig)} == {"max_drop"}
    with pytest.raises(ConfigError, match=r"valid keys: .*calibration.*max_drop"):
        parse_recipe({"steps": [{"step": "quantize", "calibraton": "mse"}]})


@pytest.mark.parametrize(
    ("step", "key", "value", "needle"),
    [
        ("distill", "temperature", math.nan, "> 0"),
        ("distill", "temperature", 0.0, "> 0"),
        ("distill", "alpha", 1.5, "in [0, 1]"),
        ("distill", "epochs", 0, f"in [1, {MAX_EPOCHS}]"),
        ("distill", "epochs", -3, f"in [1, {MAX_EPOCHS}]"),
        ("distill", "lr", -1.0, "> 0"),
        ("qat", "epochs", 100000000, f"in [1, {MAX_EPOCHS}]"),
        ("qat", "lr", -1.0, "> 0"),
        ("qat", "lr", math.inf, "> 0"),
        ("quantize", "max_drop", -5, ">= 0"),
        ("quantize", "max_drop", math.nan, ">= 0"),
        ("prune", "max_drop", -5.0, ">= 0"),
        ("prune", "lr", -1, "> 0"),
        ("prune", "finetune_epochs", -1, f"in [0, {MAX_EPOCHS}]"),
        ("prune", "target_macs_reduction", 1.0, "in (0, 1)"),
        ("prune", "importance", "l3", "l1, l2, bn, taylor"),
    ],
)
def test_bad_values_name_step_key_value_and_range(step, key, value, needle):
    with pytest.raises(ConfigError) as e:
        parse_recipe({"steps": [{"step": "fold"}, {"step": step, key: value}]})
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"recipe step 2 ('{step}'): {key} must be")
    assert needle in msg
    shown = msg.rsplit("got ", 1)[1]  # the bad value as given (ints of float keys as floats)
    assert shown in (repr(value), repr(float(value)) if not isinstance(value, str) else "")


def test_bad_value_in_yaml_is_one_clean_cli_line(ckpt, tmp_path, capsys):
    r = tmp_path / "bad.yaml"
    r.write_text("steps:\n  - step: distill\n    temperature: .nan\n")
    out = tmp_path / "out"
    code, _, err = _run(
        ["compress", str(ckpt), "--recipe", str(r), "--data", "mnist", "--out", str(out)], capsys
    )
    _assert_clean_failure(code, err, out, "temperature must be a finite number > 0, got nan")


def test_fold_step_on_onnx_with_batchnorm(tmp_path):

    import torch

    from compress_helpers import export_with_batchnorm
    from edgecnn.compress.recipe import run_recipe
    from edgecnn.models.edge import build_edge_model

    torch.manual_seed(0)
    src = tmp_path / "bn.onnx"
    src.write_bytes(
        export_with_batchnorm(build_edge_model("edge-resnet").eval()).SerializeToString()
    )
    rep = run_recipe(src, {"steps": [{"step": "fold"}]}, None, tmp_path / "o", measure_runs=3)
    inp, fold = rep.steps
    d = fold.details
    assert d.bn_before == 10 and d.bn_after == 0 and len(d.folded) == 10 and not d.unfoldable
    assert fold.accuracy is None and fold.macs == 2686848 and fold.unknown_ops == []
    assert inp.macs >= fold.macs  # the input's BNs are per-channel scale+shift on top


def test_unstructured_prune_step_details(tmp_path):
    from edgecnn.compress.recipe import run_recipe

    step = {"step": "prune", "method": "unstructured", "sparsity": 0.5, "sensitivity_scan": False}
    rep = run_recipe(
        trained("edge-resnet"), {"steps": [step]}, mnist(), tmp_path / "o", measure_runs=3
    )
    d = rep.steps[1].to_dict()["details"]
    assert set(d) == {
        "method",
        "target",
        "macs_before",
        "macs_after",
        "params_before",
        "params_after",
        "macs_reduction",
        "accuracy_before",
        "within_budget",
        "rounds",
        "sparsity",
        "sensitivity",
    }
    assert d["method"] == "unstructured" and d["target"] == 0.5
    assert d["macs_before"] == d["macs_after"] == 2686848
    assert d["macs_reduction"] == 0.0 and d["rounds"] == [] and d["sensitivity"] == {}
    assert len(d["sparsity"]) == 11 and isinstance(d["within_budget"], bool)
    assert rep.steps[1].macs == rep.steps[0].macs


def test_qat_step_details(tmp_path):
    from edgecnn.compress.recipe import run_recipe

    rep = run_recipe(
        trained("edge-resnet"),
        {"steps": [{"step": "qat", "epochs": 1}]},
        mnist(),
        tmp_path / "o",
        measure_runs=3,
    )
    q = rep.steps[1]
    assert q.details.to_dict() == {"int8_conv_fraction": 1.0, "epochs": 1, "warnings": []}
    assert q.int8_conv_fraction == 1.0 and q.to_dict()["int8_conv_fraction"] == 1.0
    assert (q.macs, q.params) == (rep.steps[0].macs, rep.steps[0].params)  # QDQ counts as FP32
    assert rep.steps[0].accuracy - q.accuracy <= 0.01


@pytest.mark.parametrize(
    "content", [b"", b"\x00\x01 not a protobuf \xff" * 10, b"\x08\x07\x12\x07pytorch\x1a\x032.1:"]
)
def test_bad_onnx_input_is_one_line(content, tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    out = tmp_path / "out"
    code, _, err = _run(
        ["compress", str(bad), "--recipe", "recipes/int8.yaml", "--out", str(out)], capsys
    )
    _assert_clean_failure(code, err, out, "ONNX")
    assert bad.read_bytes() == content
