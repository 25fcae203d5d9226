"""edgecnn: put convolutional networks on edge hardware.

Subpackages (see docs/architecture.md): ``graph`` (the network IR and its frontends),
``analysis`` (costs, traffic, memory, roofline), ``hardware`` (accelerator model),
``kernels`` (convolution algorithms), ``compress`` (fold, quantize, prune, distil),
``data``, ``models``, ``runtime`` (ONNX export, ONNX Runtime) and ``report``.
"""

from edgecnn.errors import (
    ConfigError,
    EdgecnnError,
    ModelLoadError,
    ShapeError,
    UnsupportedOpError,
)

__version__ = "0.1.0"
__all__ = [
    "ConfigError",
    "EdgecnnError",
    "ModelLoadError",
    "ShapeError",
    "UnsupportedOpError",
    "__version__",
]
