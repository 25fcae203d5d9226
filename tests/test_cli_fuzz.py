"""CLI fuzz test: every command, with bad files and bad option values drawn by hypothesis.

Each invocation must end with exit code 2 and exactly one ``edgecnn: error:`` line on stderr (no
traceback), and must leave the input files as they were. The bad values are chosen so that a
correct program refuses them before doing slow work.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_helpers import run_cli

SPACE = Path(__file__).resolve().parents[1] / "src/edgecnn/hardware/presets/space-example.yaml"
RECIPE = Path(__file__).resolve().parents[1] / "recipes/int8.yaml"


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """Bad inputs of every kind, in one directory whose contents must never change."""
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.onnx").write_bytes(b"")
    (d / "garbage.onnx").write_bytes(b"\x00\x01 this is not a protobuf \xff" * 10)
    (d / "truncated.onnx").write_bytes(b"\x08\x07\x12\x07pytorch\x1a\x032.1:\xb1\x02\n")
    (d / "garbage.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    (d / "garbage.json").write_bytes(b"{not json")
    (d / "list.json").write_text("[1, 2, 3]")
    (d / "wrong.json").write_text('{"kind": "profile", "model": 3}')
    (d / "bad.yaml").write_text("steps: [ {step: quantize, calibration: nope} ]")
    (d / "empty.yaml").write_text("")
    (d / "bad.toml").write_text("rows = -4\ncols = 'x'\n")
    (d / "a_dir.onnx").mkdir()
    (d / "folder").mkdir()
    return d


def _digest(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


BAD_MODELS = [
    "missing.onnx",
    "MISSING.ONNX",
    "missing.pt",
    "empty.onnx",
    "garbage.onnx",
    "truncated.onnx",
    "garbage.pt",
    "a_dir.onnx",
    "folder",
    "no_such_net",
    "resnet5O",
    "no.such.module:factory",
    "os:getcwd",
]
BAD_SHAPES = [
    "0x3x224x224",
    "1x3",
    "axbxc",
    "-1x3x224x224",
    "1x3x224x224x7x7",
    "99999999999999999999x3x224x224",
    "1x3x100000000x100000000",
    "1x5x224x224",
]
BAD_NUMBERS = ["nan", "-1", "0", "inf", "-inf", "1e400", "x"]

# (command prefix, needs a model, options that take a bad value: {option: bad values})
COMMANDS: list[tuple[list[str], bool, dict[str, list[str]]]] = [
    (
        ["profile"],
        True,
        {
            "--input-shape": BAD_SHAPES,
            "--precision": ["int3", ""],
            "--device": ["nope"],
            "--onchip-bytes": ["-5", "x"],
            "--csv": ["folder", "nodir/x.csv"],
        },
    ),
    (
        ["simulate"],
        True,
        {
            "--input-shape": BAD_SHAPES,
            "--accel": ["nope", "bad.toml", "empty.yaml", "missing.toml"],
            "--model-cycles": ["fast"],
            "--precision": ["int3"],
            "--objective": ["speed"],
            "--sparsity": ["nan", "-1", "inf", "1e400", "x", "1.5"],
            "--csv": ["folder", "nodir/x.csv"],
        },
    ),
    (["export-topology"], True, {"--input-shape": BAD_SHAPES, "--out": ["folder", "nodir/t.csv"]}),
    (["casestudy"], True, {"--accel": ["nope", "bad.toml"], "--input-shape": BAD_SHAPES}),
    (
        ["explore"],
        True,
        {
            "--space": ["missing.yaml", "empty.yaml", "bad.yaml"],
            "--workers": ["0", "-1", "x"],
            "--input-shape": BAD_SHAPES,
            "--out": ["folder", "nodir/r.jsonl"],
        },
    ),
    (
        ["export"],
        True,
        {"--input-shape": BAD_SHAPES, "--opset": ["3", "99", "x"], "--out": ["folder"]},
    ),
    (
        ["bench"],
        True,
        {
            "--input-shape": BAD_SHAPES,
            "--runs": ["0", "-3", "x"],
            "--batch": ["0", "-1"],
            "--threads": ["0"],
        },
    ),
    (
        ["compress"],
        True,
        {
            "--recipe": ["missing.yaml", "empty.yaml", "bad.yaml", "garbage.json"],
            "--data": ["nope", "missing_dir"],
            "--max-drop": BAD_NUMBERS,
            "--out": ["garbage.pt", "nodir/out"],
        },
    ),
    (
        ["train", "edge-resnet"],
        False,
        {
            "--epochs": ["0", "-3", "x"],
            "--width": BAD_NUMBERS,
            "--data": ["nope"],
            "--out": ["folder", "nodir/m.pt"],
            "--threads": ["0"],
        },
    ),
    (
        ["report", "garbage.json"],
        False,
        {"--out": ["folder", "nodir/r.html"], "--title": ["t"]},
    ),
    (["report", "list.json"], False, {"--title": ["t"]}),
    (["report", "wrong.json"], False, {"--title": ["t"]}),
    (
        ["kernels", "compare"],
        False,
        {
            "--layer": ["x", "0x0x1x1k3", "100000x100000x4096x4096k3", "8x8x4x4k3s0"],
            "--precisions": ["fp7"],
            "--buffers": ["x", "-1x1x1"],
            "--tiles": ["0x0x0x0", "a"],
        },
    ),
    (
        ["kernels", "bench"],
        False,
        {
            "--batches": ["0", "-1", "x", "100000"],
            "--layers": ["nope"],
            "--algorithms": ["magic"],
            "--repeats": ["0", "-1"],
            "--threads": ["0", "-1"],
        },
    ),
    (["zoo"], False, {"--precision": ["int3"], "--device": ["nope"], "--out": ["garbage.pt"]}),
    (
        ["predicted-vs-measured", "edge-resnet"],
        False,
        {"--precision": ["int4"], "--runs": ["0"], "--out": ["garbage.pt", "nodir/p"]},
    ),
    (
        ["demo"],
        False,
        {
            "--epochs": ["0"],
            "--runs": ["0"],
            "--recipe": ["missing.yaml", "bad.yaml", "empty.yaml"],
            "--out": ["garbage.pt", "nodir/demo"],
        },
    ),
]
GOOD_MODEL = "edge-resnet"
REQUIRED = {
    "export-topology": ["--out", "topo.csv"],
    "explore": ["--space", str(SPACE)],
    "export": ["--out", "m.onnx"],
    "compress": ["--recipe", str(RECIPE), "--out", "c-out"],
    "train": ["--out", "m.pt"],
}


@st.composite
def bad_invocation(draw):
    prefix, takes_model, options = draw(st.sampled_from(COMMANDS))
    args = list(prefix)
    bad_model = takes_model and draw(st.booleans())
    if takes_model:
        args.append(draw(st.sampled_from(BAD_MODELS)) if bad_model else GOOD_MODEL)
    req = REQUIRED.get(prefix[0], [])
    opts = dict(zip(req[::2], req[1::2], strict=True))
    if not bad_model:  # exactly one bad thing: the model, or one option's value
        option = draw(st.sampled_from(sorted(options)))
        opts[option] = draw(st.sampled_from(options[option]))
    for k, v in opts.items():
        args += [k, v]
    if draw(st.booleans()):
        args.append("--json")
    return args


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(args=bad_invocation())
def test_bad_input_is_one_line_exit_2_and_touches_nothing(bad_files, monkeypatch, capsys, args):
    monkeypatch.chdir(bad_files)
    before = _digest(bad_files)
    code, out, err = run_cli(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2, (args, code, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("edgecnn: error:"), (args, err[-2000:])
    assert "Traceback" not in err
    assert _digest(bad_files) == before, args  # inputs unchanged, nothing written
    assert not [p for p in bad_files.iterdir() if p.name.startswith(".")], args
