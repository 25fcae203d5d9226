"""The one model resolver (edgecnn.models.resolve): sources, default shapes, devices, errors."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch
from torch import nn

from edgecnn.errors import ModelLoadError, ShapeError
from edgecnn.models import ResolvedModel, load_graph, resolve_model
from edgecnn.models.checkpoint import _load_error_reason, load_checkpoint, save_checkpoint
from edgecnn.models.edge import EDGE_MODELS, build_edge_model
from edgecnn.models.resolve import DEFAULT_INPUT_SHAPE
from edgecnn.models.zoo import build_zoo_model, zoo_entry


def _recipe_shape(source, tmp_path) -> tuple[int, ...]:
    from edgecnn.compress.recipe import _resolve_input

    return tuple(_resolve_input(source, None, tmp_path).input_shape)


def _checkpoint(tmp_path, arch: str, name: str = "m.pt", **kwargs):
    torch.manual_seed(0)
    if arch in EDGE_MODELS:
        model = build_edge_model(arch, **kwargs)
    else:
        model = build_zoo_model(arch, device="cpu")
        kwargs = {}
    return save_checkpoint(model, tmp_path / name, arch, kwargs)


@pytest.mark.parametrize(
    "arch,kwargs,expected",
    [
        ("edge-resnet", {}, (1, 1, 28, 28)),
        ("edge-mobilenet", {"in_channels": 3, "width": 0.5}, (1, 3, 28, 28)),
    ],
)
def test_edge_default_shape_is_the_same_on_every_path(tmp_path, arch, kwargs, expected):
    ckpt = _checkpoint(tmp_path, arch, **kwargs)
    module = build_edge_model(arch, **kwargs)
    shapes = {
        "resolve(checkpoint)": resolve_model(ckpt).input_shape,
        "load_graph(checkpoint)": load_graph(ckpt).inputs[0].shape,
        "recipe(checkpoint)": _recipe_shape(ckpt, tmp_path),
        "resolve(module)": resolve_model(module).input_shape,
        "load_graph(module)": load_graph(module).inputs[0].shape,
        "registry": EDGE_MODELS[arch].input_shape(kwargs),
    }
    if not kwargs:
        shapes["resolve(name)"] = resolve_model(arch).input_shape
        shapes["load_graph(name)"] = load_graph(arch).inputs[0].shape
        shapes["recipe(name)"] = _recipe_shape(arch, tmp_path)
    assert shapes == dict.fromkeys(shapes, expected)
    rm = resolve_model(ckpt)
    assert rm.arch == arch and rm.arch_kwargs == kwargs and rm.name == arch


def test_zoo_default_shape_comes_from_the_weights_metadata():
    expected = zoo_entry("inception_v3").input_shape
    assert expected == (1, 3, 299, 299)
    assert resolve_model("inception_v3", device="meta").input_shape == expected
    assert load_graph("inception_v3").inputs[0].shape == expected
    assert resolve_model(build_zoo_model("inception_v3")).input_shape == expected


@pytest.mark.slow
def test_zoo_checkpoint_default_shape(tmp_path):
    """A checkpoint of a torchvision arch is profiled at that arch's crop (240 here, not 224)."""
    ckpt = _checkpoint(tmp_path, "efficientnet_b1")
    expected = (1, 3, 240, 240)
    assert resolve_model(ckpt).input_shape == expected
    assert load_graph(ckpt).inputs[0].shape == expected
    assert _recipe_shape(ckpt, tmp_path) == expected


@pytest.mark.parametrize("name", sorted(EDGE_MODELS))
def test_registry_shape_runs_through_the_model(name):
    shape = EDGE_MODELS[name].input_shape({"in_channels": 3})
    assert shape[:2] == (1, 3)
    model = build_edge_model(name, in_channels=3).eval()
    assert model(torch.zeros(shape)).shape == (1, 10)


@pytest.mark.parametrize("suffix", [".PT", ".Pth", ".CKPT"])
def test_upper_case_checkpoint_suffix(tmp_path, suffix):
    src = _checkpoint(tmp_path, "edge-resnet")
    path = tmp_path / f"model{suffix}"
    shutil.copyfile(src, path)
    rm = resolve_model(path)
    assert rm.arch == "edge-resnet" and rm.input_shape == (1, 1, 28, 28)
    assert load_graph(str(path)).meta["frontend"] == "torch"


def test_upper_case_onnx_suffix(tmp_path, capsys):
    from cli_helpers import run_cli
    from edgecnn.runtime.export import export_onnx

    path = tmp_path / "model.onnx"
    export_onnx(build_edge_model("edge-resnet"), path, (1, 1, 28, 28))
    upper = path.rename(tmp_path / "MODEL.ONNX")
    graph = load_graph(str(upper))
    assert graph.meta["frontend"] == "onnx" and graph.inputs[0].shape == (1, 1, 28, 28)
    with pytest.raises(ModelLoadError, match="is an ONNX file"):
        resolve_model(str(upper))
    with pytest.raises(ModelLoadError, match="not found"):
        load_graph(str(tmp_path / "missing.ONNX"))
    code, out, err = run_cli(
        ["bench", str(upper), "--runs", "2", "--warmup", "0", "--json"], capsys
    )
    assert code == 0, err
    assert json.loads(out)["input_shape"] == [1, 1, 28, 28]


@pytest.mark.parametrize("dirname", ["models", "net.onnx", "net.pt", "pkg:attr"])
def test_directory_is_named_a_directory(tmp_path, dirname):
    d = tmp_path / dirname
    d.mkdir()
    for fn in (resolve_model, load_graph, lambda src: _recipe_shape(src, tmp_path)):
        with pytest.raises(ModelLoadError, match="is a directory") as info:
            fn(str(d))
        assert "\n" not in str(info.value) and "not found" not in str(info.value)


def test_unknown_file_and_missing_path(tmp_path):
    junk = tmp_path / "weights.bin"
    junk.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="cannot read as a model"):
        resolve_model(str(junk))
    with pytest.raises(ModelLoadError, match="not found"):
        resolve_model(str(tmp_path / "missing.pt"))
    with pytest.raises(ModelLoadError, match="not found"):
        resolve_model(str(tmp_path / "sub" / "net.bin"))


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    (tmp_path / "edgecnn_test_factories.py").write_text(
        "import torch\n"
        "from edgecnn.models.edge import build_edge_model\n"
        "def plain():\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())\n"
        "def tagged():\n"
        "    return build_edge_model('edge-resnet', in_channels=3)\n"
        "def not_a_module():\n"
        "    return 42\n"
        "INSTANCE = torch.nn.Linear(3, 2)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "edgecnn_test_factories"
    sys.modules.pop("edgecnn_test_factories", None)


def test_factory(factory_module):
    rm = resolve_model(f"{factory_module}:plain")
    assert isinstance(rm, ResolvedModel) and isinstance(rm.module, nn.Sequential)
    assert rm.name == f"{factory_module}:plain" and rm.arch is None
    assert rm.input_shape == DEFAULT_INPUT_SHAPE == (1, 3, 224, 224)
    assert resolve_model(f"{factory_module}:plain", (2, 3, 8, 8)).input_shape == (2, 3, 8, 8)
    graph = load_graph(f"{factory_module}:plain", (1, 3, 8, 8))
    assert graph.outputs[0].shape == (1, 4, 6, 6)
    tagged = resolve_model(f"{factory_module}:tagged")
    assert tagged.arch == "edge-resnet" and tagged.input_shape == (1, 3, 28, 28)
    assert isinstance(resolve_model(f"{factory_module}:INSTANCE", (1, 3)).module, nn.Linear)
    with pytest.raises(ModelLoadError, match="not a torch.nn.Module"):
        resolve_model(f"{factory_module}:not_a_module")
    with pytest.raises(ModelLoadError, match="has no attribute 'nope'"):
        resolve_model(f"{factory_module}:nope")
    with pytest.raises(ModelLoadError, match="cannot import module"):
        resolve_model("edgecnn_no_such_module_xyz:make")


@pytest.mark.parametrize(
    "name,suggestion", [("edge-resnt", "edge-resnet"), ("resnt18", "resnet18")]
)
def test_unknown_name_with_suggestion(name, suggestion):
    for fn in (resolve_model, load_graph):
        with pytest.raises(ModelLoadError, match=f"unknown model '{name}'") as info:
            fn(name)
        msg = str(info.value)
        assert f"did you mean {suggestion}" in msg and "\n" not in msg


def test_meta_vs_cpu_device():
    meta = resolve_model("resnet18", device="meta")
    assert all(p.is_meta for p in meta.module.parameters())
    cpu = resolve_model("resnet18", device="cpu")
    assert not any(p.is_meta for p in cpu.module.parameters())
    assert float(cpu.module.conv1.weight.detach().abs().sum()) > 0  # really initialised
    assert meta.input_shape == cpu.input_shape == (1, 3, 224, 224)
    edge_meta = resolve_model("edge-resnet", device="meta")
    assert all(p.is_meta for p in edge_meta.module.parameters())


def test_random_init_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = resolve_model("edge-resnet", seed=0).module
    after = torch.rand(3)
    b = resolve_model("edge-resnet", seed=0).module
    c = resolve_model("edge-resnet", seed=1).module
    assert torch.equal(after, expected)
    assert torch.equal(a.fc.weight, b.fc.weight) and not torch.equal(a.fc.weight, c.fc.weight)


def test_batch_and_bad_shapes():
    assert resolve_model("edge-resnet", batch=4).input_shape == (4, 1, 28, 28)
    assert resolve_model("edge-resnet", (2, 1, 32, 32), batch=3).input_shape == (3, 1, 32, 32)
    with pytest.raises(ShapeError, match="batch"):
        resolve_model("edge-resnet", batch=0)
    with pytest.raises(ShapeError, match="positive"):
        resolve_model("edge-resnet", (1, 0, 28, 28))


def test_load_graph_keeps_a_module_training_mode():
    module = build_edge_model("edge-resnet").train()
    graph = load_graph(module)
    assert module.training and graph.inputs[0].shape == (1, 1, 28, 28)


def test_module_arch_tag_survives_checkpoints_and_copies(tmp_path):
    import copy

    ckpt = _checkpoint(tmp_path, "edge-mobilenet", width=0.5)
    module, _ = load_checkpoint(ckpt)
    rm = resolve_model(copy.deepcopy(module))
    assert (rm.arch, rm.arch_kwargs) == ("edge-mobilenet", {"width": 0.5})
    assert resolve_model(nn.Conv2d(3, 3, 1)).arch is None


def test_checkpoint_error_reason_is_a_whole_sentence(tmp_path):
    long_tail = "Re-running it " + "with other options " * 20 + "will work."
    assert _load_error_reason(RuntimeError(f"Bad file. {long_tail}")) == "Bad file"
    weights_only = RuntimeError(
        "Weights only load failed. In PyTorch 2.6 we changed a default. Do it only if trusted.\n"
        "\tWeightsUnpickler error: Unsupported global: GLOBAL x.Y was not allowed. Please use "
        "add_safe_globals.\n\nCheck the documentation."
    )
    assert _load_error_reason(weights_only) == (
        "not loadable with weights_only: Unsupported global: GLOBAL x.Y was not allowed"
    )
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelLoadError, match="cannot read checkpoint") as info:
        resolve_model(bad)
    msg = str(info.value)
    assert "\n" not in msg and "In PyTorch 2.6" not in msg and msg.endswith("save_checkpoint")


def test_input_channels_must_match_the_first_layer():
    import pytest
    from torch import nn

    from edgecnn.errors import ShapeError
    from edgecnn.models import load_graph, resolve_model

    with pytest.raises(ShapeError, match="has 1 channels but 'resnet18' expects 3"):
        resolve_model("resnet18", (1, 1, 224, 224), device="meta")
    with pytest.raises(ShapeError, match="expects 1"):
        load_graph("edge-resnet", (1, 3, 28, 28))
    mlp = nn.Sequential(nn.Linear(8, 4), nn.ReLU())
    with pytest.raises(ShapeError, match="has 5 input features but 'Sequential' expects 8"):
        resolve_model(mlp, (2, 5))
    assert resolve_model(mlp, (2, 8)).input_shape == (2, 8)
    flat = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))  # a rank-4 input flattened first
    assert load_graph(flat, (1, 3, 2, 2)).param_count == 26
