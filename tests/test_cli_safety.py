"""The user's files are safe: outputs never overwrite inputs, failed writes are one line, SIGTERM
cleans up, and a checkpoint remembers its training data."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import run_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A trained checkpoint (digits, one epoch), its ONNX export and a results JSON."""
    d = tmp_path_factory.mktemp("inputs")
    ckpt, onnx_path, results = d / "model.pt", d / "model.onnx", d / "r.json"
    from edgecnn.cli import main

    for argv in (
        ["train", "edge-resnet", "--data", "digits", "--epochs", "1", "--out", str(ckpt)],
        ["export", str(ckpt), "--out", str(onnx_path)],
    ):
        try:
            main([*argv, "--json"])
        except SystemExit as e:
            assert e.code == 0
    from edgecnn.analysis import profile
    from edgecnn.graph.from_onnx import graph_from_onnx

    results.write_text(json.dumps(profile(graph_from_onnx(onnx_path)).to_dict()))
    return {"ckpt": ckpt, "onnx": onnx_path, "results": results, "dir": d}


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def _one_line_exit_2(args, capsys) -> str:
    code, out, err = run_cli(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("edgecnn: error:"), (args, err)
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    "make_args",
    [
        lambda f: ["export", str(f["ckpt"]), "--out", str(f["ckpt"])],
        lambda f: ["profile", str(f["onnx"]), "--csv", str(f["onnx"])],
        lambda f: ["simulate", str(f["onnx"]), "--csv", str(f["onnx"])],
        lambda f: ["report", str(f["results"]), "--out", str(f["results"])],
        lambda f: ["export-topology", str(f["onnx"]), "--out", str(f["onnx"])],
        lambda f: [
            "explore",
            str(f["onnx"]),
            "--space",
            "src/edgecnn/hardware/presets/space-example.yaml",
            "--out",
            str(f["onnx"]),
        ],
        lambda f: [
            "explore",
            str(f["onnx"]),
            "--space",
            "src/edgecnn/hardware/presets/space-example.yaml",
            "--out",
            str(f["dir"] / "points.jsonl"),
            "--plot",
            str(f["dir"] / "points.jsonl"),
        ],
        lambda f: [
            "compress",
            str(f["ckpt"]),
            "--recipe",
            "recipes/int8.yaml",
            "--out",
            str(f["dir"]),
        ],
    ],
    ids=["export", "profile-csv", "simulate-csv", "report", "topology", "explore", "plot", "dir"],
)
def test_output_equal_to_an_input_is_refused(files, make_args, capsys):
    before = _snapshot(files["dir"])
    line = _one_line_exit_2(make_args(files), capsys)
    assert "overwrite the input" in line
    assert _snapshot(files["dir"]) == before  # nothing changed, nothing added


def test_output_that_is_a_directory_is_refused(files, tmp_path, capsys):
    for args in (
        ["export", str(files["ckpt"]), "--out", str(tmp_path)],
        ["report", str(files["results"]), "--out", str(tmp_path)],
        ["profile", str(files["onnx"]), "--csv", str(tmp_path)],
    ):
        assert "is a directory" in _one_line_exit_2(args, capsys)


def test_a_failed_write_is_one_line(files, tmp_path, capsys, monkeypatch):
    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    out = tmp_path / "r.html"
    line = _one_line_exit_2(["report", str(files["results"]), "--out", str(out)], capsys)
    assert "No space left on device" in line
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone


@pytest.mark.parametrize(
    "width, needle", [("-1", "--width must be in"), ("0", "--width must be in"), ("nan", "in")]
)
def test_train_width_validated_before_training(tmp_path, capsys, width, needle):
    out = tmp_path / "m.pt"
    line = _one_line_exit_2(
        ["train", "edge-mobilenet", "--width", width, "--out", str(out)], capsys
    )
    assert needle in line and not out.exists()


def test_train_width_refused_for_a_model_without_one(tmp_path, capsys):
    line = _one_line_exit_2(
        ["train", "edge-resnet", "--width", "2", "--out", str(tmp_path / "m.pt")], capsys
    )
    assert "no width multiplier" in line and "edge-mobilenet" in line


def test_compress_uses_the_checkpoints_data(files, tmp_path, capsys):
    out = tmp_path / "folded"
    (tmp_path / "fold.yaml").write_text("steps:\n  - step: fold\n")
    code, stdout, err = run_cli(
        [
            "compress",
            str(files["ckpt"]),
            "--recipe",
            str(tmp_path / "fold.yaml"),
            "--out",
            str(out),
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    rep = json.loads(stdout)
    assert rep["data"] == "digits"
    assert all(s["accuracy"] is not None for s in rep["steps"])  # measured on digits' test split


def test_sigterm_cleans_up_and_exits_130(files, tmp_path):
    """SIGTERM during compress: 'edgecnn: interrupted', exit 130, no temporary files left."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out"
    recipe = tmp_path / "slow.yaml"
    recipe.write_text(
        "steps:\n  - step: prune\n    method: structured\n    target_macs_reduction: 0.5\n"
        "    finetune_epochs: 50\n    rounds: 4\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecnn", "compress", str(files["ckpt"]), "--recipe", str(recipe)]
        + ["--data", "digits", "--out", str(out), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(tmp.iterdir()):
        time.sleep(0.2)  # wait until the work directory exists: the run is under way
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "edgecnn: interrupted"
    # Libraries keep their own files in TMPDIR across runs, by design: onnxruntime's session-id
    # file ".ses" (written when an InferenceSession is made) and torch's "torchinductor_<user>"
    # cache. Everything else there would be ours, left half-way.
    ours = [
        p.name
        for p in tmp.iterdir()
        if p.name != ".ses" and not p.name.startswith("torchinductor_")
    ]
    assert ours == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert not out.exists()


BIG_SPACE = """
base: seed-chip
sweep:
  array: [8x8, 16x16, 32x32, 64x64]
  sram_kb: [256, 1024, 4096]
  dataflow: [os, ws]
  bandwidth: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
"""


def _children_of(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize("how", ["sigint-group", "sigint-main", "sigterm-main"])
def test_explore_stops_promptly_on_interrupt(tmp_path, how):
    """Ctrl-C (to the process group or the main process) or SIGTERM: the sweep stops (no hang),
    no worker survives, every line of the results file is complete, exit 130."""
    import psutil

    (tmp_path / "space.yaml").write_text(BIG_SPACE)
    out = tmp_path / "r.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecnn", "explore", "resnet18", "--space"]
        + [str(tmp_path / "space.yaml"), "--workers", "2", "--out", str(out), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out.exists() and out.read_text().count("\n") >= 3):
        time.sleep(0.1)
    workers = _children_of(proc.pid)
    assert workers, "the sweep should be running on worker processes"
    sig = signal.SIGTERM if how == "sigterm-main" else signal.SIGINT
    if how == "sigint-group":
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)  # a hang guard, not a speed assertion
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "edgecnn: interrupted"
    time.sleep(0.5)
    assert not [
        p for p in workers if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
    ]
    rows = [json.loads(line) for line in out.read_text().splitlines()]  # every line complete
    assert 3 <= len(rows) < 480 and all("latency_s" in r for r in rows)


def test_piped_output_is_wide_and_in_one_unit_convention(capsys):
    """Under pytest stdout is not a terminal, as in a pipe: tables are not cut to 80 columns,
    sizes use decimal SI prefixes and the device table gives OP/s."""
    code, out, _ = run_cli(["profile", "resnet18", "--all"], capsys)
    assert code == 0
    assert max(len(line) for line in out.splitlines()) > 80
    assert "layer2.0.downsample.0" in out  # whole layer names, not cut with an ellipsis
    code, out, _ = run_cli(["devices"], capsys)
    assert code == 0 and "OP/s" in out and "B/s" in out
    assert "MiB" not in out and "e+" not in out


def test_html_cells_never_use_exponents():
    from edgecnn.report._html import fmt

    assert fmt(7e8)[0] == "700,000,000"
    assert fmt(3.2e-5)[0] == "0.000032"
    assert fmt(0.5)[0] == "0.5"


SWALLOWER = """
import sys, time
import edgecnn.cli as cli
from edgecnn.cli.app import app

cli.REDELIVER_S = 1.0


@app.command("swallow")
def swallow():
    print("ready", file=sys.stderr, flush=True)
    try:  # a library with a bare except (Torch-Pruning's tracing has one) loses the interrupt
        while True:
            time.sleep(0.05)
    except:  # noqa: E722
        pass
    print("working on", file=sys.stderr, flush=True)
    while True:
        time.sleep(0.05)


sys.argv = ["edgecnn", "swallow"]
cli.main()
"""


def test_an_interrupt_swallowed_by_a_library_is_delivered_again(tmp_path):
    script = tmp_path / "swallow.py"
    script.write_text(SWALLOWER)
    proc = subprocess.Popen(
        [sys.executable, str(script)], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stderr.readline().strip() == "ready"  # the command runs, handlers installed
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert lines == ["working on", "edgecnn: interrupted"]


def test_an_interrupt_a_library_turned_into_its_own_error_is_still_an_interrupt(
    monkeypatch, capsys
):
    """SIGINT during a native import: onnxruntime re-raises it as ImportError; exit 130, one line."""
    import edgecnn.cli as cli

    def interrupted_import(*_a, **_k):
        os.kill(os.getpid(), signal.SIGINT)  # the handler raises KeyboardInterrupt here ...
        time.sleep(1.0)

    def wrapped(*a, **k):
        try:
            interrupted_import()
        except KeyboardInterrupt as e:  # ... which the "library" converts
            raise ImportError("initialization failed") from e

    monkeypatch.setattr(cli, "app", wrapped)
    with pytest.raises(SystemExit) as exc:
        cli._main(["devices"])
    assert exc.value.code == 130
    assert capsys.readouterr().err.strip() == "edgecnn: interrupted"
    monkeypatch.setattr(cli, "app", lambda *a, **k: (_ for _ in ()).throw(ImportError("real")))
    with pytest.raises(ImportError, match="real"):  # without an interrupt, errors stay errors
        cli._main(["devices"])
