"""The accelerator model: configs, mapping, SCALE-Sim and tiled cycle models, energy, search.

Main entry points::

    from edgecnn.hardware import load_accelerator, simulate, SimOptions
    result = simulate(graph, load_accelerator("tpu-32x32"), SimOptions(model_cycles="tiled"))
    result.to_dict()   # what `edgecnn simulate --json` prints

Commands are registered from ``edgecnn.cli.hardware_cmds``.
"""

from edgecnn.hardware.config import (
    PRESETS,
    AcceleratorConfig,
    Dataflow,
    EnergyTable,
    InterfaceBandwidth,
    Winograd,
    load_accelerator,
    load_preset,
)
from edgecnn.hardware.simulate import LayerResult, SimOptions, SimResult, simulate

__all__ = [
    "PRESETS",
    "AcceleratorConfig",
    "Dataflow",
    "EnergyTable",
    "InterfaceBandwidth",
    "LayerResult",
    "SimOptions",
    "SimResult",
    "Winograd",
    "load_accelerator",
    "load_preset",
    "simulate",
]
