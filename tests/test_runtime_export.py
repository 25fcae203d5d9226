"""ONNX export: outputs checked against PyTorch, mismatches and bad files rejected clearly."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torchvision
from torch import nn

from edgecnn.errors import EdgecnnError, ModelLoadError, ShapeError
from edgecnn.runtime.export import check_onnx_matches_torch, export_onnx
from edgecnn.runtime.session import input_feeds, make_session


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8),
            nn.ReLU6(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ExportOnlyBranch(nn.Module):
    """Deliberately wrong: computes something else while being exported."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if torch.onnx.is_in_onnx_export():
            return y * 2.0
        return y


class DataDependent(nn.Module):
    """Deliberately wrong for tracing: the branch depends on the input's values."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x + 1.0
        return x - 1.0


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_torchvision_export_matches_torch(tmp_path, name):
    torch.manual_seed(0)
    m = torchvision.models.get_model(name, weights=None)
    p = export_onnx(m, tmp_path / f"{name}.onnx", (1, 3, 224, 224), opset=17)
    model = onnx.load(p)
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == 17
    # independent re-check on another input: ORT output equals eager within tolerance
    err = check_onnx_matches_torch(m, p, (1, 3, 224, 224), seed=7)
    assert err < 1e-3
    assert m.training  # training flag restored


def test_small_cnn_export_and_session_outputs(tmp_path):
    torch.manual_seed(0)
    m = SmallCNN().eval()
    p = export_onnx(m, tmp_path / "s.onnx", (2, 1, 28, 28), dynamic_batch=True)
    sess = make_session(p, threads=1)
    feeds = input_feeds(sess, batch=5, input_shape=(5, 1, 28, 28))
    (out,) = sess.run(None, feeds)
    with torch.no_grad():
        ref = m(torch.from_numpy(feeds["input"])).numpy()
    assert out.shape == (5, 10)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_export_mismatch_detected_and_nothing_written(tmp_path):
    target = tmp_path / "bad.onnx"
    with pytest.raises(EdgecnnError, match="differs from PyTorch"):
        export_onnx(ExportOnlyBranch(), target, (1, 3, 16, 16))
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_data_dependent_branch_detected(tmp_path):
    # the export input (seed 0) and check input (seed 1) of shape (1,1,1,4) have opposite sums
    g0 = torch.randn((1, 1, 1, 4), generator=torch.Generator().manual_seed(0)).sum()
    g1 = torch.randn((1, 1, 1, 4), generator=torch.Generator().manual_seed(1)).sum()
    assert (g0 > 0) != (g1 > 0)
    with pytest.raises(EdgecnnError, match="differs from PyTorch"):
        export_onnx(DataDependent(), tmp_path / "d.onnx", (1, 1, 1, 4))


def test_export_without_check_writes_file(tmp_path):
    p = export_onnx(ExportOnlyBranch(), tmp_path / "unchecked.onnx", (1, 3, 16, 16), check=False)
    assert p.stat().st_size > 0


def test_export_bad_output_dir_and_shape(tmp_path):
    with pytest.raises(EdgecnnError, match="does not exist"):
        export_onnx(SmallCNN(), tmp_path / "nope" / "m.onnx", (1, 1, 28, 28))
    with pytest.raises(ShapeError):
        export_onnx(SmallCNN(), tmp_path / "m.onnx", (1, 0, 28, 28))
    with pytest.raises(EdgecnnError, match="export of SmallCNN failed"):
        export_onnx(SmallCNN(), tmp_path / "m.onnx", (1, 3, 28, 28))  # wrong channel count


def test_meta_module_rejected(tmp_path):
    with torch.device("meta"):
        m = SmallCNN()
    with pytest.raises(EdgecnnError, match="meta device"):
        export_onnx(m, tmp_path / "m.onnx", (1, 1, 28, 28))


def test_missing_empty_truncated_and_garbage_files(tmp_path):
    good = export_onnx(SmallCNN(), tmp_path / "g.onnx", (1, 1, 28, 28))
    with pytest.raises(ModelLoadError, match="does not exist"):
        make_session(tmp_path / "missing.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        make_session(tmp_path / "empty.onnx")
    data = good.read_bytes()
    (tmp_path / "trunc.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelLoadError, match="truncated, corrupt"):
        make_session(tmp_path / "trunc.onnx")
    (tmp_path / "text.onnx").write_text("this is not a model\n")
    with pytest.raises(ModelLoadError):
        make_session(tmp_path / "text.onnx")
    with pytest.raises(ModelLoadError):
        make_session(tmp_path)  # a directory


def tiny_vit() -> nn.Module:
    """torchvision's ViT at toy size (32x32 input): its encoder takes the fused multi-head
    attention fast path in eval mode under no_grad, which the exporters cannot translate."""
    torch.manual_seed(0)
    m = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64
    )
    nn.init.normal_(m.heads.head.weight)  # torchvision zero-inits the head: outputs would be 0
    return m


class Noisy(nn.Module):
    """Writes to stdout and stderr from Python and at the file-descriptor level, as the
    exporters' C++ diagnostics do."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        import os
        import sys

        print("python stdout noise")
        print("python stderr noise", file=sys.stderr)
        os.write(1, b"fd stdout noise\n")
        os.write(2, b"fd stderr noise\n")
        return self.conv(x)


def noisy() -> nn.Module:
    return Noisy()


def test_vit_exports_with_the_mha_fast_path_off(tmp_path, capfd):
    import json

    from cli_helpers import run_cli

    out = tmp_path / "vit.onnx"
    args = ["export", "test_runtime_export:tiny_vit", "--input-shape", "1x3x32x32"]
    code, stdout, err = run_cli([*args, "--out", str(out), "--json"], capfd)
    assert code == 0, err
    d = json.loads(stdout)  # stdout is exactly one JSON document
    assert d["kind"] == "export" and 0 < d["max_abs_error"] < 1e-3
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    ops = {n.op_type for n in model.graph.node}
    assert "MatMul" in ops and "Softmax" in ops
    assert torch.backends.mha.get_fastpath_enabled()  # restored


def test_export_json_stdout_is_pure_even_when_the_model_prints(tmp_path, capfd):
    import json

    from cli_helpers import run_cli

    out = tmp_path / "n.onnx"
    args = ["export", "test_runtime_export:noisy", "--input-shape", "1x1x8x8", "--json"]
    code, stdout, err = run_cli([*args, "--out", str(out)], capfd)
    assert code == 0, err
    assert json.loads(stdout)["kind"] == "export"
    assert "noise" not in stdout and "noise" not in err
    print("visible")  # the streams work again afterwards
    os_out = capfd.readouterr().out
    assert os_out == "visible\n"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vit_b_16"])
def test_torchvision_transformer_exports(name, tmp_path, capfd):
    import json

    from cli_helpers import run_cli

    out = tmp_path / f"{name}.onnx"
    code, stdout, err = run_cli(["export", name, "--out", str(out), "--json"], capfd)
    assert code == 0, err
    assert json.loads(stdout)["model"] == name
    onnx.checker.check_model(str(out))
