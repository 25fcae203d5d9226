"""The torchvision classification zoo: names, published metadata, weight-free construction."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torchvision
from torch import nn
from torch.overrides import TorchFunctionMode

from edgecnn.errors import ModelLoadError
from edgecnn.models._arch import tag_arch

#: The compute-vs-bandwidth study's CNN zoo, AlexNet to EfficientNet (224x224, Inception v3 299).
ZOO_STUDY_MODELS: tuple[str, ...] = (
    "alexnet",
    "vgg16",
    "googlenet",
    "inception_v3",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "densenet121",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "squeezenet1_0",
    "squeezenet1_1",
    "shufflenet_v2_x1_0",
    "efficientnet_b0",
)


@dataclass(frozen=True)
class ZooEntry:
    """A torchvision classification model as its DEFAULT weights define it."""

    name: str
    num_classes: int
    crop_size: int
    num_params: int  #: torchvision's published parameter count
    gmacs: float  #: torchvision's published ``_ops`` (billions of multiply-adds, 3 decimals)
    builder_kwargs: tuple[tuple[str, object], ...] = ()

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, self.crop_size, self.crop_size)


def zoo_names() -> list[str]:
    """All classification models of ``torchvision.models`` (80 in torchvision 0.29)."""
    return list(torchvision.models.list_models(module=torchvision.models))


def zoo_entry(name: str) -> ZooEntry:
    """Metadata of ``name``'s DEFAULT weights (no download: metadata only)."""
    if name not in zoo_names():
        raise ModelLoadError(_unknown_name_message(name))
    weights = torchvision.models.get_model_weights(name).DEFAULT
    meta = weights.meta
    crop = weights.transforms.keywords.get("crop_size", 224)
    crop = crop[0] if isinstance(crop, (list, tuple)) else int(crop)
    kwargs: dict[str, object] = {}
    if name == "inception_v3":  # DEFAULT weights keep the auxiliary head and transform the input
        kwargs = {"aux_logits": True, "transform_input": True, "init_weights": False}
    elif name == "googlenet":  # DEFAULT weights drop the auxiliary heads after loading
        kwargs = {"aux_logits": False, "transform_input": True, "init_weights": False}
    elif name.startswith("vit_"):  # the builder takes the image size from the weights
        kwargs = {"image_size": int(meta["min_size"][0])}
    return ZooEntry(
        name=name,
        num_classes=len(meta["categories"]),
        crop_size=int(crop),
        num_params=int(meta["num_params"]),
        gmacs=float(meta["_ops"]),
        builder_kwargs=tuple(sorted(kwargs.items())),
    )


def build_zoo_model(name: str, num_classes: int | None = None, device: str = "meta") -> nn.Module:
    """Build torchvision's ``name`` without weights, in eval mode.

    ``device="meta"`` allocates nothing and skips weight initialisation (milliseconds per model);
    any other device builds an ordinary randomly initialised model.
    """
    entry = zoo_entry(name)
    kwargs = dict(entry.builder_kwargs)
    kwargs["num_classes"] = num_classes or entry.num_classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if device == "meta":
            with meta_construction(), _host_side_arithmetic():
                model = torchvision.models.get_model(name, weights=None, **kwargs)
        else:
            model = torchvision.models.get_model(name, weights=None, **kwargs).to(device)
    return tag_arch(model, name, kwargs).eval()


class _SkipInitOnMeta(TorchFunctionMode):
    """Skip in-place initialisers (``uniform_``, ``normal_``...) on meta tensors: they have no data."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.startswith("__"):
            first = args[0] if args else next(iter((kwargs or {}).values()), None)
            if isinstance(first, torch.Tensor) and first.is_meta:
                return first
        return func(*args, **(kwargs or {}))


@contextmanager
def meta_construction() -> Iterator[None]:
    """Build modules on the meta device without running weight initialisers (fast, no memory)."""
    with torch.device("meta"), _SkipInitOnMeta():
        yield


@contextmanager
def _host_side_arithmetic() -> Iterator[None]:
    """Let RegNet compute its block widths with real CPU tensors inside meta construction.

    ``BlockParams.from_init_params`` derives integer widths with torch ops and ``.tolist()``,
    which cannot run on meta tensors; running it under a nested CPU device context fixes that.
    """
    from torchvision.models import regnet

    original = regnet.BlockParams.__dict__["from_init_params"]

    def on_cpu(cls, *args, **kwargs):
        with torch.device("cpu"):
            return original.__func__(cls, *args, **kwargs)

    regnet.BlockParams.from_init_params = classmethod(on_cpu)
    try:
        yield
    finally:
        regnet.BlockParams.from_init_params = original


def _unknown_name_message(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, zoo_names(), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return (
        f"unknown model '{name}'{hint}: give a torchvision classification name "
        "(see torchvision.models.list_models()), an .onnx file, a .pt checkpoint or module:factory"
    )
