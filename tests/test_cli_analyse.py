"""The analysis commands end to end: JSON schema, files written, and bad input (exit 2, one line)."""

import json
import subprocess
import sys

import pytest

from cli_helpers import run_cli as run


def test_profile_json_schema(capsys):
    code, out, _ = run(
        ["profile", "resnet18", "--json", "--device", "rpi5", "--precision", "int8"], capsys
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["model"] == "resnet18" and doc["input_shape"] == [1, 3, 224, 224]
    assert doc["precision"] == "int8"
    layer_keys = {"name", "op", "macs", "flops", "params", "weight_bytes", "input_bytes"}
    layer_keys |= {"output_bytes", "dram_bytes", "bound"}
    assert all(layer_keys <= set(layer) for layer in doc["layers"])
    totals = doc["totals"]
    for key in (
        "macs",
        "flops",
        "params",
        "weight_bytes",
        "activation_bytes",
        "dram_bytes",
        "peak_activation_bytes",
        "arithmetic_intensity",
        "latency_s",
        "unknown_ops",
    ):
        assert key in totals
    assert totals["params"] == 11_689_512
    assert totals["macs"] == sum(layer["macs"] for layer in doc["layers"])
    assert totals["latency_s"] == pytest.approx(
        sum(layer["latency_s"] or 0 for layer in doc["layers"])
    )
    assert totals["arithmetic_intensity"] == pytest.approx(totals["macs"] / totals["dram_bytes"])


def test_profile_csv_and_factory(tmp_path, capsys):
    csv_path = tmp_path / "layers.csv"
    code, out, _ = run(
        ["profile", "torchvision.models:mobilenet_v3_small", "--csv", str(csv_path), "--json"],
        capsys,
    )
    assert code == 0
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("name,op,macs")
    assert len(rows) == len(json.loads(out)["layers"]) + 1


def test_devices_catalog_is_sourced(capsys):
    code, out, _ = run(["devices", "--json"], capsys)
    assert code == 0
    devices = json.loads(out)["devices"]
    names = {d["name"] for d in devices}
    assert "host" in names and len(names - {"host"}) >= 8
    for d in devices:
        assert d["dram_bytes_per_s"] > 0 and d["peak_ops_per_s"]
        for key in d["peak_ops_per_s"]:
            assert f"peak_ops_{key}" in d["sources"], (d["name"], key)
        assert "dram_bytes_per_s" in d["sources"]


def test_zoo_writes_csv_and_plots(tmp_path, capsys):
    out_dir = tmp_path / "zoo"
    code, out, _ = run(["zoo", "--out", str(out_dir), "--json"], capsys)
    assert code == 0
    study = json.loads(out)
    assert len(study["rows"]) == 17
    by_name = {r["model"]: r for r in study["rows"]}
    assert by_name["inception_v3"]["input_size"] == 299
    assert by_name["mobilenet_v2"]["macs"] < by_name["resnet50"]["macs"] < by_name["vgg16"]["macs"]
    assert (out_dir / "zoo.csv").read_text().count("\n") == 18
    for png in ("zoo_macs_vs_traffic.png", "zoo_traffic_bars.png"):
        assert (out_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["profile", "no_such_net"], "unknown model"),
        (["profile", "resnt18"], "did you mean resnet18"),
        (["profile", "/nonexistent/model.onnx"], "not found"),
        (["profile", "resnet18", "--input-shape", "1x3xabc"], "malformed --input-shape"),
        (["profile", "resnet18", "--input-shape", "1x3x0x4"], "positive"),
        (["profile", "resnet18", "--precision", "int4"], "precision"),
        (["profile", "resnet18", "--device", "toaster"], "unknown device"),
        (["profile", "resnet18", "--device", "coral-edgetpu"], "no fp32 peak"),
        (["profile", "resnet18", "--onchip-bytes", "-5"], ">= 0"),
        (["profile", "resnet18", "--input-shape", "1x3"], "--input-shape"),
        (["profile", "resnet18", "--bogus"], "No such option"),
        (["zoo", "--out", "/nonexistent/dir/zoo"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, needle, capsys):
    code, _, err = run(args, capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("edgecnn: error:") and needle in lines[0]


def test_bad_onnx_files_from_the_shell(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07garbage" * 10)
    proc = subprocess.run(
        [sys.executable, "-m", "edgecnn", "profile", str(junk)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_profile_device_onchip_memory_is_the_default_buffer(capsys):
    args = ["profile", "resnet18", "--json", "--device", "coral-edgetpu", "--precision", "int8"]
    code, out, err = run(args, capsys)
    assert code == 0, err
    default = json.loads(out)
    assert default["onchip_bytes"] == 8 * 2**20  # devices.toml: coral-edgetpu onchip_bytes
    code, out, err = run([*args, "--onchip-bytes", "0"], capsys)
    assert code == 0, err
    explicit = json.loads(out)
    assert explicit["onchip_bytes"] == 0  # an explicit value, 0 included, wins
    assert default["totals"]["dram_bytes"] < explicit["totals"]["dram_bytes"]
    code, out, err = run(["profile", "resnet18", "--json", "--precision", "int8"], capsys)
    assert code == 0, err
    assert json.loads(out)["onchip_bytes"] == 0  # no device: no buffer


@pytest.mark.parametrize(
    "shape,needle",
    [
        ("99999999999999999999x3x224x224", "does not fit a 64-bit integer"),
        ("1x3x100000000x100000000", "more than the limit"),
        ("1x1x224x224", "has 1 channels but 'resnet18' expects 3"),
    ],
)
@pytest.mark.parametrize("command", ["profile", "simulate", "casestudy"])
def test_impossible_or_mismatched_input_shapes_are_refused(command, shape, needle, capsys):
    code, out, err = run([command, "resnet18", "--input-shape", shape], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and needle in lines[0], err
    assert out == ""


def test_fixed_shape_onnx_input_must_match(tmp_path, capsys):
    from edgecnn.models import resolve_model
    from edgecnn.runtime.export import export_onnx

    rm = resolve_model("edge-resnet")
    path = export_onnx(rm.module, tmp_path / "m.onnx", (1, 1, 28, 28))
    code, _, err = run(["profile", str(path), "--input-shape", "1x3x28x28"], capsys)
    assert code == 2 and "fixed shape 1x1x28x28" in err
    code, _, err = run(["bench", str(path), "--input-shape", "1x3x28x28", "--runs", "1"], capsys)
    assert code == 2 and "fixed shape 1x1x28x28" in err and len(err.strip().splitlines()) == 1
