"""Accelerator descriptions: frozen, validated dataclasses and their loaders.

An :class:`AcceleratorConfig` describes one accelerator: a PE array (``rows x cols`` systolic
array, or a flat count of MAC units with ``rows = 1`` and ``flat = True``), its dataflow, its
on-chip SRAM (separate input/weight/output buffers or one shared buffer), DRAM bandwidth and
clock, an optional Winograd unit, zero-skipping, and a per-access energy table.

Units are in the field names: ``*_bytes``, ``*_hz``, ``*_pj`` (picojoules), ``*_per_cycle``.

Loaders: :func:`load_accelerator` takes a preset name (``seed-chip``, ``tpu-32x32``,
``tpu-128x128``, ``eyeriss``, ``edge-tpu``), a TOML or YAML file, or a SCALE-Sim ``.cfg``. Unknown
keys are rejected with the list of valid keys.
"""

from __future__ import annotations

import configparser
import dataclasses
import math
from dataclasses import dataclass, field, fields
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any

from edgecnn.errors import ConfigError

WORD_BYTES: dict[str, int] = {"int8": 1, "fp16": 2, "fp32": 4}
"""Operand word size per precision, in bytes."""

PSUM_BYTES: dict[str, int] = {"int8": 4, "fp16": 4, "fp32": 4}
"""Partial-sum (accumulator) word size per precision, in bytes (int32 / fp32 accumulation)."""


class Dataflow(str, Enum):
    """Which operand stays in the PEs: output-, weight-, input- or row-stationary.

    ``RS`` is Eyeriss's row-stationary dataflow (Chen et al., ISCA 2016 / JSSC 2017): filter
    rows stay in the PE register files, 1-D row convolutions are mapped as logical PE sets
    folded onto the array (:func:`edgecnn.hardware.mapping.rs_mapping`).
    """

    OS = "os"
    WS = "ws"
    IS = "is"
    RS = "rs"


class Winograd(str, Enum):
    """Optional Winograd unit for 3x3 stride-1 convolutions: none, F(2x2,3x3) or F(4x4,3x3)."""

    NONE = "none"
    F2 = "F2"
    F4 = "F4"

    @property
    def m(self) -> int:
        """Output tile size m of F(m x m, 3 x 3) (0 for none)."""
        return {"none": 0, "F2": 2, "F4": 4}[self.value]


class InterfaceBandwidth(str, Enum):
    """How DRAM bandwidth is set, after SCALE-Sim's ``[run_presets] InterfaceBandwidth``.

    ``USER``: ``dram_bw_bytes_per_cycle`` (SCALE-Sim's ``Bandwidth``) limits transfers, so layers
    may stall. ``CALC``: the interface is sized to what each layer needs, so nothing stalls
    (total cycles = compute cycles; DRAM bytes are still counted).
    """

    USER = "user"
    CALC = "calc"


def _enum(cls: type[Enum], value: Any, name: str) -> Any:
    if isinstance(value, cls):
        return value
    for member in cls:  # type: ignore[attr-defined]
        if str(value).lower() == str(member.value).lower():
            return member
    valid = ", ".join(str(m.value) for m in cls)  # type: ignore[attr-defined]
    raise ConfigError(f"{name} = {value!r} is not valid: choose one of {valid}")


@dataclass(frozen=True)
class EnergyTable:
    """Energy per access, in picojoules, with 45 nm defaults.

    Defaults follow M. Horowitz, "Computing's energy problem (and what we can do about it)",
    ISSCC 2014, 45 nm at 0.9 V: a MAC is a multiply plus an add (int8: 0.2 + 0.03 pJ; fp16:
    1.1 + 0.4 pJ; fp32: 3.7 + 0.9 pJ); a 64-bit SRAM read costs 10 pJ at 8 KB, 20 pJ at 32 KB and
    ~100 pJ at 1 MB, which ``sram_pj_per_byte`` models as ``sram_pj_per_byte_8kb * sqrt(KB / 8)``
    per byte (1.25 pJ/B at 8 KB); a 64-bit DRAM access costs 1.3-2.6 nJ (we take 2.0 nJ, i.e.
    250 pJ/B). The register file (< 1 KB, not in the paper) uses the same square-root law at
    0.5 KB: 0.3 pJ/B.
    """

    mac_pj: dict[str, float] = field(
        default_factory=lambda: {"int8": 0.23, "fp16": 1.5, "fp32": 4.6}
    )
    register_pj_per_byte: float = 0.3
    sram_pj_per_byte_8kb: float = 1.25
    dram_pj_per_byte: float = 250.0
    vector_op_pj: float = 0.4
    """One vector-unit op (add/compare/transform step), ~ a 16-bit FP add."""

    def __post_init__(self) -> None:
        for k, v in self.mac_pj.items():
            if k not in WORD_BYTES:
                raise ConfigError(
                    f"energy.mac_pj has unknown precision {k!r}: valid {', '.join(WORD_BYTES)}"
                )
            if not (v >= 0 and math.isfinite(v)):
                raise ConfigError(f"energy.mac_pj[{k}] = {v} must be a finite number >= 0")
        for name in (
            "register_pj_per_byte",
            "sram_pj_per_byte_8kb",
            "dram_pj_per_byte",
            "vector_op_pj",
        ):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
                raise ConfigError(f"energy.{name} = {v!r} must be a finite number >= 0")

    def sram_pj_per_byte(self, size_bytes: int) -> float:
        """SRAM access energy per byte for a buffer of ``size_bytes`` (square-root law)."""
        kb = max(size_bytes, 1) / 1024
        return self.sram_pj_per_byte_8kb * math.sqrt(kb / 8)

    def mac(self, precision: str) -> float:
        if precision not in self.mac_pj:
            raise ConfigError(
                f"energy table has no MAC energy for {precision}: add energy.mac_pj.{precision}"
            )
        return self.mac_pj[precision]


@dataclass(frozen=True)
class AcceleratorConfig:
    """One accelerator. See the module docstring for units.

    Buffers: either ``shared_sram_bytes > 0`` (one buffer for all operands, as the seed chip's
    4 MB) or the three ``*_sram_bytes`` fields. With ``double_buffering`` half of each buffer
    holds the working tiles while the other half is filled/drained.
    """

    name: str = "custom"
    rows: int = 32
    cols: int = 32
    flat: bool = False
    """True: ``rows * cols`` independent MAC units (no systolic skew), mapped flexibly per layer."""
    dataflow: Dataflow = Dataflow.OS
    precision: str = "int8"
    """Default precision; ``precisions`` lists all the datapath supports."""
    precisions: tuple[str, ...] = ("int8",)
    ifmap_sram_bytes: int = 64 * 1024
    filter_sram_bytes: int = 64 * 1024
    ofmap_sram_bytes: int = 64 * 1024
    shared_sram_bytes: int = 0
    double_buffering: bool = True
    dram_bw_bytes_per_cycle: float = 16.0
    interface_bandwidth: InterfaceBandwidth = InterfaceBandwidth.USER
    """``calc``: stall-free interface (SCALE-Sim's CALC mode); ``user``: the bandwidth above."""
    clock_hz: float = 1.0e9
    winograd: Winograd = Winograd.NONE
    zero_skipping: bool = False
    vector_lanes: int = 0
    """Ops per cycle of the vector unit (pooling, elementwise, Winograd transforms); 0 = ``cols``."""
    mac_efficiency: float = 1.0
    """Fraction of cycles an active PE performs a MAC (NoC delivery, pipeline bubbles), in
    (0, 1]. 1.0 unless calibrated: ``edgecnn validate`` fits it on a stated calibration subset."""
    fmap_rlc: bool = False
    """Run-length-compress feature maps crossing DRAM (Eyeriss, Chen et al., JSSC 2017: RLC of ifmaps/ofmaps): see
    :func:`rlc_bytes`. Graph inputs (images) are not compressed."""
    fmap_zero_fraction: float = 0.5
    """Zero fraction of ReLU outputs for RLC, in [0, 1). Default 0.5: ReLU zeroes the negative
    half of roughly zero-centred pre-activations; give a measured value when known."""
    weight_bits: int = 0
    """Compressed weights in DRAM (Deep Compression, Han et al., ICLR 2016): bits per nonzero
    weight after pruning + quantization; 0 = weights stored densely at the word size."""
    weight_index_bits: int = 4
    """Relative-index bits stored with every nonzero weight (Deep Compression: 4 for conv,
    5 for FC layers; we use one figure)."""
    pe_weight_rf_bytes: int = 0
    """Weight register file per PE, bytes (Eyeriss: a 224 x 16-bit filter scratch pad per PE,
    JSSC 2017). With a shared SRAM, ``pes x this`` holds weight tiles beside the SRAM, as row
    stationary keeps filter rows in the PEs (one pad per PE: not double-buffered)."""
    psum_bytes: int = 0
    """Partial-sum word in bytes; 0 = :data:`PSUM_BYTES` of the precision (int32/fp32
    accumulation). Eyeriss accumulates in 16 bits (24 x 16-bit psum pads): 2."""
    param_cache: bool = False
    """Parameters stay on chip across inferences (Edge TPU: "the on-chip SRAM caches the
    model's parameters", Coral docs): the layers' weights, in execution order, fill the SRAM
    left after the activation working set (largest layer input + output); cached weights
    cross DRAM once per model load, not per inference; the rest stream every inference."""
    param_cache_bytes: int = 0
    """Bytes of the on-chip SRAM the parameter cache may use; 0 = the SRAM left after the
    activation working set. The Edge TPU compiler reports its budget (e.g. "On-chip memory
    available for caching model parameters: 6.25MiB" for ResNet-50)."""
    psum_noc_words_per_cycle: float = 0.0
    """Row stationary only: partial-sum words per cycle the network between the global buffer
    and the PE array carries each way (Eyeriss: the 64-bit psum GIN and GON, 4 x 16-bit words
    each, JSSC 2017 Sec. V-B). A pass writes every psum strip it accumulates back to the GLB,
    so a layer takes at least ``psum writes / this`` cycles
    (:func:`edgecnn.hardware.mapping.rs_glb_plan`). 0 = unlimited."""
    fmap_dram_overlap: bool = True
    """True: feature-map DRAM transfers overlap compute (double-buffered tiles; stalls only
    where the link is slower). False: the array idles while feature maps load from or dump to
    DRAM, as on Eyeriss ("the chip does not perform processing while it is loading ifmap from
    DRAM or dumping ofmaps to DRAM", Chen et al., JSSC 2017, Sec. VI-A); weights still
    overlap (its GLB preloads the next pass's filters)."""
    energy: EnergyTable = field(default_factory=EnergyTable)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataflow", _enum(Dataflow, self.dataflow, "dataflow"))
        object.__setattr__(self, "winograd", _enum(Winograd, self.winograd, "winograd"))
        object.__setattr__(
            self,
            "interface_bandwidth",
            _enum(InterfaceBandwidth, self.interface_bandwidth, "interface_bandwidth"),
        )
        object.__setattr__(self, "precisions", tuple(self.precisions))
        for name in ("rows", "cols"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} = {v!r} is invalid: the PE array needs {name} >= 1")
        for p in self.precisions + (self.precision,):
            if p not in WORD_BYTES:
                raise ConfigError(
                    f"precision {p!r} is not valid: choose from {', '.join(WORD_BYTES)}"
                )
        if self.precision not in self.precisions:
            raise ConfigError(
                f"precision {self.precision!r} is not among precisions {list(self.precisions)}"
            )
        for name in (
            "ifmap_sram_bytes",
            "filter_sram_bytes",
            "ofmap_sram_bytes",
            "shared_sram_bytes",
            "param_cache_bytes",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(
                    f"{name} = {v!r} is invalid: give an integer number of bytes >= 0"
                )
        if (
            self.shared_sram_bytes == 0
            and min(self.ifmap_sram_bytes, self.filter_sram_bytes, self.ofmap_sram_bytes) < 1
        ):
            raise ConfigError(
                "SRAM is empty: give shared_sram_bytes > 0 or all of ifmap/filter/ofmap_sram_bytes > 0"
            )
        bw = self.dram_bw_bytes_per_cycle
        if not isinstance(bw, (int, float)) or not (bw > 0 and math.isfinite(bw)):
            raise ConfigError(
                f"dram_bw_bytes_per_cycle = {bw!r} is invalid: bandwidth must be a number > 0 bytes/cycle"
            )
        if not isinstance(self.clock_hz, (int, float)) or not (
            self.clock_hz > 0 and math.isfinite(self.clock_hz)
        ):
            raise ConfigError(f"clock_hz = {self.clock_hz!r} is invalid: must be > 0 Hz")
        if not isinstance(self.vector_lanes, int) or self.vector_lanes < 0:
            raise ConfigError(f"vector_lanes = {self.vector_lanes!r} is invalid: must be >= 0")
        eff = self.mac_efficiency
        if not isinstance(eff, (int, float)) or isinstance(eff, bool) or not 0 < eff <= 1:
            raise ConfigError(f"mac_efficiency = {eff!r} is invalid: give a fraction in (0, 1]")
        noc = self.psum_noc_words_per_cycle
        if (
            not isinstance(noc, (int, float))
            or isinstance(noc, bool)
            or not (noc >= 0 and math.isfinite(noc))
        ):
            raise ConfigError(
                f"psum_noc_words_per_cycle = {noc!r} is invalid: give words per cycle >= 0 "
                "(0 = unlimited)"
            )
        z = self.fmap_zero_fraction
        if not isinstance(z, (int, float)) or isinstance(z, bool) or not 0 <= z < 1:
            raise ConfigError(f"fmap_zero_fraction = {z!r} is invalid: give a fraction in [0, 1)")
        if self.psum_bytes not in (0, 1, 2, 4, 8):
            raise ConfigError(f"psum_bytes = {self.psum_bytes!r} is invalid: give 0, 1, 2, 4 or 8")
        rf = self.pe_weight_rf_bytes
        if not isinstance(rf, int) or isinstance(rf, bool) or rf < 0:
            raise ConfigError(f"pe_weight_rf_bytes = {rf!r} is invalid: give bytes >= 0")
        for name, hi in (("weight_bits", 32), ("weight_index_bits", 16)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= hi:
                raise ConfigError(f"{name} = {v!r} is invalid: give an integer in [0, {hi}]")

    @property
    def compresses_dram(self) -> bool:
        """True when DRAM traffic is compressed (RLC feature maps or compressed weights)."""
        return self.fmap_rlc or self.weight_bits > 0

    @property
    def pes(self) -> int:
        """Number of MAC units."""
        return self.rows * self.cols

    @property
    def stall_bw_bytes_per_cycle(self) -> float:
        """The bandwidth stalls are computed with: infinite (no stalls) in ``calc`` mode."""
        if self.interface_bandwidth is InterfaceBandwidth.CALC:
            return math.inf
        return self.dram_bw_bytes_per_cycle

    @property
    def lanes(self) -> int:
        """Vector-unit ops per cycle."""
        return self.vector_lanes or self.cols

    @property
    def sram_bytes(self) -> int:
        """Total on-chip SRAM in bytes."""
        if self.shared_sram_bytes:
            return self.shared_sram_bytes
        return self.ifmap_sram_bytes + self.filter_sram_bytes + self.ofmap_sram_bytes

    def partial_sum_bytes(self, precision: str | None = None) -> int:
        """Partial-sum word in bytes: ``psum_bytes``, else the precision's, never below a word."""
        p = self.check_precision(precision)
        return max(self.psum_bytes or PSUM_BYTES[p], WORD_BYTES[p])

    def word_bytes(self, precision: str | None = None) -> int:
        return WORD_BYTES[self.check_precision(precision)]

    def check_precision(self, precision: str | None) -> str:
        p = precision or self.precision
        if p not in self.precisions:
            raise ConfigError(
                f"accelerator {self.name!r} does not support precision {p!r}: "
                f"choose from {', '.join(self.precisions)}"
            )
        return p

    def replace(self, **changes: Any) -> AcceleratorConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["dataflow"] = self.dataflow.value
        d["winograd"] = self.winograd.value
        d["interface_bandwidth"] = self.interface_bandwidth.value
        d["precisions"] = list(self.precisions)
        d["pes"] = self.pes
        d["sram_bytes"] = self.sram_bytes
        return d


_ACCEL_KEYS = {f.name for f in fields(AcceleratorConfig)}
_ENERGY_KEYS = {f.name for f in fields(EnergyTable)}
_KB_KEYS = {
    "ifmap_sram_kb": "ifmap_sram_bytes",
    "filter_sram_kb": "filter_sram_bytes",
    "ofmap_sram_kb": "ofmap_sram_bytes",
    "shared_sram_kb": "shared_sram_bytes",
}


def accelerator_from_dict(data: dict[str, Any], source: str = "config") -> AcceleratorConfig:
    """Build a config from a plain mapping (TOML/YAML). ``*_sram_kb`` keys are accepted (x1024).

    ``macs = N`` is a shorthand for a flat array of N MAC units (``rows = 1, cols = N, flat = true``).

    ``device = NAME`` takes the host/DRAM link and on-chip memory from the sourced device catalog
    (:mod:`edgecnn.analysis.devices`, ``devices.toml``), so the two never disagree:
    ``dram_bw_bytes_per_cycle = dram_bytes_per_s / clock_hz`` (``clock_hz`` is required) and,
    unless a buffer size is given, ``shared_sram_bytes = onchip_bytes``. Giving ``device`` and
    ``dram_bw_bytes_per_cycle`` together is an error (two sources for one figure).

    An array size is required (``rows`` and ``cols``, or ``macs``): an empty file is refused,
    not read as a default 32 x 32. ``shared_sram_kb = 0`` means "no shared buffer": it needs
    the three per-operand buffers, else it is refused (0 never falls back to defaults).
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a table of accelerator settings, got {type(data).__name__}"
        )
    data = dict(data)
    if "accelerator" in data and isinstance(data["accelerator"], dict) and len(data) <= 2:
        extra = {k: v for k, v in data.items() if k != "accelerator"}
        data = {**data["accelerator"], **extra}
    valid = sorted(_ACCEL_KEYS | set(_KB_KEYS) | {"macs", "device"})
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}"
        )
    for kb_key, byte_key in _KB_KEYS.items():
        if kb_key in data:
            v = data.pop(kb_key)
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise ConfigError(f"{source}: {kb_key} = {v!r} must be a number of KB")
            data[byte_key] = int(round(v * 1024))
    separate = ("ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes")
    if data.get("shared_sram_bytes", None) == 0 and not all(k in data for k in separate):
        raise ConfigError(
            f"{source}: shared_sram_kb = 0 leaves no shared buffer: give shared_sram_kb > 0, "
            "or all of ifmap_sram_kb, filter_sram_kb and ofmap_sram_kb"
        )
    if "device" in data:
        data.update(_from_device(data.pop("device"), data, source))
    if "macs" in data:
        n = data.pop("macs")
        data.update(rows=1, cols=n, flat=True)
    if "energy" in data:
        e = data["energy"]
        if not isinstance(e, dict):
            raise ConfigError(f"{source}: energy must be a table")
        bad = sorted(set(e) - _ENERGY_KEYS)
        if bad:
            raise ConfigError(
                f"{source}: unknown energy key(s) {', '.join(bad)}; valid: {', '.join(sorted(_ENERGY_KEYS))}"
            )
        base = EnergyTable()
        if "mac_pj" in e:
            e = {**e, "mac_pj": {**base.mac_pj, **e["mac_pj"]}}
        data["energy"] = EnergyTable(**e)
    if not ({"rows", "cols"} <= set(data) or "macs" in data):
        given = ", ".join(sorted(data)) or "nothing"
        raise ConfigError(
            f"{source}: no PE array given (found: {given}); required keys: rows and cols "
            "(or macs = N for a flat MAC array)"
        )
    if "precisions" in data and isinstance(data["precisions"], str):
        data["precisions"] = (data["precisions"],)
    if "precision" in data and "precisions" not in data:
        data["precisions"] = (data["precision"],)
    try:
        return AcceleratorConfig(**data)
    except TypeError as e:  # wrong value types that __post_init__ comparisons trip on
        raise ConfigError(f"{source}: {e}") from None


def _from_device(name: Any, data: dict[str, Any], source: str) -> dict[str, Any]:
    """DRAM bandwidth per cycle (and on-chip SRAM) of catalog device ``name``."""
    from edgecnn.analysis.devices import load_catalog

    catalog = load_catalog()
    if name not in catalog:
        raise ConfigError(
            f"{source}: device = {name!r} is not in the device catalog: choose one of "
            f"{', '.join(catalog)}"
        )
    if "dram_bw_bytes_per_cycle" in data:
        raise ConfigError(
            f"{source}: give either device = {name!r} (its catalog bandwidth) or "
            "dram_bw_bytes_per_cycle, not both"
        )
    clock = data.get("clock_hz")
    if not isinstance(clock, (int, float)) or isinstance(clock, bool) or not clock > 0:
        raise ConfigError(f"{source}: device = {name!r} needs clock_hz > 0 to convert bytes/s")
    dev = catalog[name]
    out: dict[str, Any] = {"dram_bw_bytes_per_cycle": dev.dram_bytes_per_s / clock}
    buffers = ("shared_sram_bytes", "ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes")
    if dev.onchip_bytes and not any(k in data for k in buffers):
        out["shared_sram_bytes"] = dev.onchip_bytes
    return out


_CFG_MAP = {
    "arrayheight": ("rows", int),
    "arraywidth": ("cols", int),
    "ifmapsramszkb": ("ifmap_sram_bytes", lambda v: int(float(v) * 1024)),
    "filtersramszkb": ("filter_sram_bytes", lambda v: int(float(v) * 1024)),
    "ofmapsramszkb": ("ofmap_sram_bytes", lambda v: int(float(v) * 1024)),
    "dataflow": ("dataflow", str.strip),
    "bandwidth": ("dram_bw_bytes_per_cycle", float),
}


def load_scalesim_cfg(path: str | Path) -> AcceleratorConfig:
    """Read a SCALE-Sim ``.cfg`` (array size, SRAM KB per operand, dataflow, bandwidth).

    SCALE-Sim works in 1-byte words (int8) and double-buffers every SRAM; other sections
    (layout, sparsity) are ignored. ``Bandwidth`` is words (= bytes) per cycle.
    ``[run_presets] InterfaceBandwidth``: ``CALC`` sizes the interface so nothing stalls
    (:attr:`InterfaceBandwidth.CALC`), ``USER`` uses ``Bandwidth`` (which it then requires);
    without the key, ``Bandwidth`` (or the default) applies as in ``USER``.
    """
    p = Path(path)
    parser = configparser.ConfigParser(strict=False, inline_comment_prefixes=("#", ";"))
    try:
        parser.read_string(p.read_text())
    except (OSError, configparser.Error) as e:
        raise ConfigError(f"cannot read SCALE-Sim config '{p}': {e}") from None
    if not parser.has_section("architecture_presets"):
        raise ConfigError(f"'{p}' has no [architecture_presets] section: is it a SCALE-Sim .cfg?")
    sec = parser["architecture_presets"]
    values: dict[str, Any] = {
        "name": parser.get("general", "run_name", fallback=p.stem).strip(),
        "precision": "int8",
        "precisions": ("int8",),
        "double_buffering": True,
    }
    for key, (target, conv) in _CFG_MAP.items():
        if key in sec:
            try:
                values[target] = conv(sec[key])
            except ValueError:
                raise ConfigError(f"'{p}': {key} = {sec[key]!r} is not a number") from None
    mode = parser.get("run_presets", "interfacebandwidth", fallback=None)
    mode = sec.get("interfacebandwidth", mode)  # tolerated in [architecture_presets] too
    if mode is not None:
        try:
            values["interface_bandwidth"] = InterfaceBandwidth(mode.strip().lower())
        except ValueError:
            raise ConfigError(
                f"'{p}': InterfaceBandwidth = {mode.strip()!r} is not valid: choose CALC or USER"
            ) from None
        if values["interface_bandwidth"] is InterfaceBandwidth.USER and "bandwidth" not in sec:
            raise ConfigError(
                f"'{p}': InterfaceBandwidth = USER needs Bandwidth in [architecture_presets]"
            )
    return AcceleratorConfig(**values)


PRESETS: tuple[str, ...] = ("seed-chip", "tpu-32x32", "tpu-128x128", "eyeriss", "edge-tpu")


def load_preset(name: str) -> AcceleratorConfig:
    """One of :data:`PRESETS` (TOML files shipped in ``edgecnn/hardware/presets``)."""
    if name not in PRESETS:
        raise ConfigError(
            f"unknown accelerator preset {name!r}: choose one of {', '.join(PRESETS)} or give a .toml/.yaml/.cfg file"
        )
    text = resources.files("edgecnn.hardware").joinpath(f"presets/{name}.toml").read_text()
    return accelerator_from_dict(_parse_toml(text, name), source=f"preset {name}")


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: invalid TOML: {e}") from None


def load_accelerator(spec: str | Path | AcceleratorConfig | None) -> AcceleratorConfig:
    """A preset name, a ``.toml``/``.yaml``/``.yml``/``.cfg`` path, or a config (returned as is).

    ``None`` gives the seed-chip preset.
    """
    if isinstance(spec, AcceleratorConfig):
        return spec
    if spec is None:
        return load_preset("seed-chip")
    s = str(spec)
    if s in PRESETS:
        return load_preset(s)
    p = Path(s)
    suffix = p.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml", ".cfg"):
        raise ConfigError(
            f"unknown accelerator {s!r}: give a preset ({', '.join(PRESETS)}) or a .toml/.yaml/.cfg file"
        )
    if not p.is_file():
        raise ConfigError(f"accelerator file '{p}' does not exist")
    if suffix == ".cfg":
        return load_scalesim_cfg(p)
    text = p.read_text()
    if suffix == ".toml":
        data = _parse_toml(text, str(p))
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML: {' '.join(str(e).split())}") from None
    return accelerator_from_dict(data, source=str(p))


RLC_WORD_BITS = 64
"""Eyeriss's RLC word: three (5-bit run, 16-bit level) pairs + 1 end bit (Chen et al., JSSC 2017)."""
RLC_PAIRS_PER_WORD = 3
RLC_MAX_RUN = 31


def rlc_bytes(elems: int, zero_fraction: float, word_bytes: int) -> int:
    """DRAM bytes of ``elems`` feature-map values after Eyeriss-style run-length coding.

    Each nonzero is one (run, level) pair with the zeros before it; a run longer than 31
    zeros needs an extra pair, about one per 32 zeros. Three pairs fill a 64-bit word:
    ``bytes = ceil(pairs / 3) * 8`` with ``pairs = n (1 - z) + n z / 32``. Never more than the
    raw ``n * word_bytes`` (dense data is sent uncompressed).
    """
    if elems <= 0:
        return 0
    z = zero_fraction
    pairs = elems * (1 - z) + elems * z / (RLC_MAX_RUN + 1)
    packed = math.ceil(pairs / RLC_PAIRS_PER_WORD) * RLC_WORD_BITS // 8
    return min(elems * word_bytes, packed)


def compressed_weight_bytes(elems: int, density: float, bits: int, index_bits: int) -> int:
    """DRAM bytes of ``elems`` weights at ``density`` (1 - sparsity) after Deep Compression:
    ``ceil(elems * density * (bits + index_bits) / 8)``."""
    return math.ceil(elems * density * (bits + index_bits) / 8)
