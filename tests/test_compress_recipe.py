"""Tests of recipes and the compress pipeline/command (report contents and bad input)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from cli_helpers import run_cli as _run
from compress_helpers import mnist, trained
from edgecnn.compress.recipe import STEP_TYPES, load_recipe, parse_recipe
from edgecnn.errors import ConfigError
from edgecnn.models.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    p = tmp_path_factory.mktemp("ck") / "model.pt"
    save_checkpoint(trained("edge-resnet"), p, "edge-resnet", {})
    return p


def test_shipped_recipes_parse():
    for name in ("int8", "full", "mixed", "qat", "fp16"):
        r = load_recipe(f"recipes/{name}.yaml")
        assert r.steps and all(type(s) in STEP_TYPES.values() for s in r.steps)
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
    assert rep["steps"] == json.loads(stdout)["steps"]
    steps = rep["steps"]
    assert [s["step"] for s in steps] == ["input", "fold", "quantize"]
    for s in steps:
        assert {"step", "accuracy", "macs", "params", "size_bytes", "latency_ms"} <= set(s)
        assert 0.0 <= s["accuracy"] <= 1.0 and s["latency_ms"] > 0
    inp, fold, q = steps
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
    seen = []
    rep = run_recipe(
        m,
        {"steps": [{"step": "fold"}, {"step": "fp16"}]},
        mnist(),
        tmp_path / "o",
        progress=lambda it: (seen.append(1) or x for x in it),
    )
    assert [s.step for s in rep.steps] == ["input", "fold", "fp16"]
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
