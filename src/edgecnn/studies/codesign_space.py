"""The joint design space of ``edgecnn codesign``: network genes, accelerator genes, a genome.

A space (YAML, see ``codesign-example.yaml``)::

    network:                      # per stage of the supernet (models.supernet) ...
      depth: [1, 2, 3]
      width: [0.5, 0.75, 1.0]
      kernel: [3, 5]
      expand: [2, 3, 4]
      bits: [int8, int4, fp16]    # ... per conv layer: its weight precision
      prune: [0.0, 0.25, 0.5]     # ... per block: structured pruning ratio of its hidden channels
      resolution: [20, 24, 28]    # input resolution (one gene)
    accelerator:                  # the `explore` sweep keys
      base: seed-chip
      objective: latency
      array: [8x8, 16x16, 32x32]
      sram_kb: [64, 256, 1024]
      dataflow: [os, ws]
      winograd: [none, F2]
      precisions: [int8, int8+fp16]   # the datapath's precisions
    supernet: {epochs: 6, random_subnets: 2, lr: 0.003, label_weight: 0.0, quant_aware: true}
    search: {population: 24, generations: 8, seed: 0, operators: block}
    verify: {designs: 2, epochs: 8}
    bn_images: 300                # training images for BatchNorm re-estimation
    train_images: 0               # training images for supernet and retraining (0: all)

A *genome* is a tuple of indices into those lists: per stage (depth, width, kernel, expand,
then for each of the stage's ``MAX_DEPTH`` block slots the bits of its expand, depthwise and
project convolutions and its pruning ratio: :data:`NET_BLOCK_GENES`), then resolution, then
the accelerator genes in the order of :data:`ACCEL_GENES`. Bits are per conv layer, pruning
per block (the ratio of an inverted-residual block's hidden channels: the expand conv's
outputs, the depthwise conv's channels, the project conv's inputs); the genes of blocks past
the stage's depth are inactive (they do not change the design's key or costs).
Bit-width semantics: ``int8``/``int4`` quantize a layer's weights
(symmetric, per output channel) and run on the int8 datapath; int4 weights are stored packed
two per byte in DRAM and unpacked at the array (no int4 multipliers: int4 lowers accuracy,
model size and weight DRAM traffic, not compute cycles); ``fp16`` keeps fp16 weights
and runs at fp16 if the accelerator supports it, else at int8 with int8 weights. The stem and
the classifier are always int8. Activations stay in floating point in the accuracy model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import ConfigError
from edgecnn.models import supernet as sn

NET_STAGE_GENES = ("depth", "width", "kernel", "expand")
NET_BLOCK_GENES = ("bits",) * len(sn.BLOCK_CONVS) + ("prune",)
"""Per block slot: the bits of each of :data:`edgecnn.models.supernet.BLOCK_CONVS`, then the
pruning ratio."""
ACCEL_GENES = ("array", "sram_kb", "dataflow", "winograd", "precisions")
BITS = {"int8": 8, "int4": 4, "fp16": 16}
EXAMPLE_SPACE = Path(__file__).with_name("codesign-example.yaml")

_NET_DEFAULTS: dict[str, list[Any]] = {
    "depth": list(range(1, sn.MAX_DEPTH + 1)),
    "width": list(sn.WIDTHS),
    "kernel": list(sn.KERNELS),
    "expand": list(sn.EXPANDS),
    "bits": ["int8"],
    "prune": [0.0],
    "resolution": list(sn.RESOLUTIONS),
}


@dataclass(frozen=True)
class CodesignSpace:
    """The parsed space: gene value lists and the run's settings."""

    network: dict[str, list[Any]]
    accelerator: dict[str, list[Any]]
    base: str = "seed-chip"
    objective: str = "latency"
    supernet_epochs: int = 6
    random_subnets: int = 2
    supernet_lr: float = 3e-3
    supernet_label_weight: float = 0.0
    supernet_quant_aware: bool = True  # train smaller subnets with their stages' weight bits
    population: int = 24
    generations: int = 8
    seed: int = 0
    operators: str = "block"  # NSGA-II variation: block (codesign_operators) or sbx
    verify_designs: int = 2
    verify_epochs: int = 8
    bn_images: int = 300
    train_images: int = 0  # training images for the supernet and retraining (0: all)
    source: str = "space"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gene_sizes(self) -> list[int]:
        sizes = []
        for _ in range(sn.STAGES):
            sizes += [len(self.network[g]) for g in NET_STAGE_GENES]
            for _ in range(sn.MAX_DEPTH):
                sizes += [len(self.network[g]) for g in NET_BLOCK_GENES]
        sizes.append(len(self.network["resolution"]))
        sizes += [len(self.accelerator[g]) for g in ACCEL_GENES]
        return sizes

    @property
    def n_network_genes(self) -> int:
        per_stage = len(NET_STAGE_GENES) + sn.MAX_DEPTH * len(NET_BLOCK_GENES)
        return sn.STAGES * per_stage + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        """Hash of everything that decides a design's result (not the search settings)."""
        d = self.to_dict()
        for k in (
            "population",
            "generations",
            "operators",
            "verify_designs",
            "verify_epochs",
            "source",
        ):
            d.pop(k)
        d["genome_layout"] = self.gene_sizes  # a run of an older layout is not resumed into this
        return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_codesign_space(path: str | Path | None = None) -> CodesignSpace:
    """Read a space YAML (default: the built-in example); one clear error for a bad one."""
    import yaml

    p = Path(path) if path is not None else EXAMPLE_SPACE
    if not p.is_file():
        raise ConfigError(
            f"codesign space '{p}' does not exist: give a YAML file like {EXAMPLE_SPACE.name}"
        )
    try:
        data = yaml.safe_load(p.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(
            f"codesign space '{p}' is not valid YAML ({type(e).__name__}): fix the file"
        ) from None
    return codesign_space_from_dict(data, str(p))


def _choices(section: dict, key: str, source: str, default: list[Any] | None) -> list[Any]:
    v = section.get(key, default)
    if v is None:
        raise ConfigError(f"{source}: accelerator.{key} is missing: give a list of values")
    if not isinstance(v, list):
        v = [v]
    if not v:
        raise ConfigError(f"{source}: {key} is an empty list: give at least one value")
    return v


def codesign_space_from_dict(data: Any, source: str = "space") -> CodesignSpace:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a codesign space is a mapping with network and accelerator")
    unknown = set(data) - {
        "network",
        "accelerator",
        "supernet",
        "search",
        "verify",
        "bn_images",
        "train_images",
    }
    if unknown:
        raise ConfigError(f"{source}: unknown keys {sorted(unknown)}: see codesign-example.yaml")
    net_in = data.get("network") or {}
    acc_in = data.get("accelerator") or {}
    if not isinstance(net_in, dict) or not isinstance(acc_in, dict):
        raise ConfigError(f"{source}: network and accelerator must be mappings")
    bad = set(net_in) - set(_NET_DEFAULTS)
    if bad:
        raise ConfigError(
            f"{source}: unknown network genes {sorted(bad)}: choose {sorted(_NET_DEFAULTS)}"
        )
    network = {k: _choices(net_in, k, source, d) for k, d in _NET_DEFAULTS.items()}
    allowed = {
        "depth": set(range(1, sn.MAX_DEPTH + 1)),
        "width": set(sn.WIDTHS),
        "kernel": set(sn.KERNELS),
        "expand": set(sn.EXPANDS),
        "bits": set(BITS),
        "resolution": set(sn.RESOLUTIONS),
    }
    for k, ok in allowed.items():
        wrong = [v for v in network[k] if v not in ok]
        if wrong:
            raise ConfigError(
                f"{source}: network.{k} values {wrong} are not supported: choose from {sorted(ok, key=str)}"
            )
    if any(not isinstance(r, (int, float)) or not 0 <= r < 1 for r in network["prune"]):
        raise ConfigError(f"{source}: network.prune ratios must be numbers in [0, 1)")
    bad = set(acc_in) - set(ACCEL_GENES) - {"base", "objective"}
    if bad:
        raise ConfigError(
            f"{source}: unknown accelerator keys {sorted(bad)}: choose {list(ACCEL_GENES)}, base, objective"
        )
    accel = {
        "array": _choices(acc_in, "array", source, None),
        "sram_kb": _choices(acc_in, "sram_kb", source, None),
        "dataflow": _choices(acc_in, "dataflow", source, ["ws"]),
        "winograd": [str(w) for w in _choices(acc_in, "winograd", source, ["none"])],
        "precisions": [str(p) for p in _choices(acc_in, "precisions", source, ["int8"])],
    }
    for p in accel["precisions"]:
        parts = p.split("+")
        if "int8" not in parts or any(x not in ("int8", "fp16") for x in parts):
            raise ConfigError(f"{source}: accelerator.precisions '{p}': give int8 or int8+fp16")
    sup = data.get("supernet") or {}
    search = data.get("search") or {}
    verify = data.get("verify") or {}
    try:
        space = CodesignSpace(
            network=network,
            accelerator=accel,
            base=str(acc_in.get("base", "seed-chip")),
            objective=str(acc_in.get("objective", "latency")),
            supernet_epochs=int(sup.get("epochs", 6)),
            random_subnets=int(sup.get("random_subnets", 2)),
            supernet_lr=float(sup.get("lr", 3e-3)),
            supernet_label_weight=float(sup.get("label_weight", 0.0)),
            supernet_quant_aware=bool(sup.get("quant_aware", True)),
            population=int(search.get("population", 24)),
            generations=int(search.get("generations", 8)),
            seed=int(search.get("seed", 0)),
            operators=str(search.get("operators", "block")),
            verify_designs=int(verify.get("designs", 2)),
            verify_epochs=int(verify.get("epochs", 8)),
            bn_images=int(data.get("bn_images", 300)),
            train_images=int(data.get("train_images", 0)),
            source=source,
        )
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: a setting is not a number ({e})") from None
    if not 0.0 <= space.supernet_label_weight <= 1.0:
        raise ConfigError(f"{source}: supernet.label_weight must be in [0, 1]")
    if space.operators not in ("block", "sbx"):
        raise ConfigError(f"{source}: search.operators '{space.operators}': choose block or sbx")
    for name, v, lo in (
        ("supernet.epochs", space.supernet_epochs, 1),
        ("search.population", space.population, 4),
        ("search.generations", space.generations, 1),
        ("verify.designs", space.verify_designs, 0),
        ("verify.epochs", space.verify_epochs, 1),
        ("bn_images", space.bn_images, 1),
        ("train_images", space.train_images, 0),
    ):
        if v < lo:
            raise ConfigError(f"{source}: {name} must be >= {lo}, got {v}")
    return space


@dataclass(frozen=True)
class Design:
    """One decoded genome: the network (subnet, bits, pruning) and the accelerator point."""

    genome: tuple[int, ...]
    subnet: sn.SubnetConfig
    bits: tuple[str, ...]  # per conv-layer slot (sn.layer_slot), as requested
    prune: tuple[float, ...]  # per block slot
    accel_point: dict[str, Any]  # explore point keys: array, sram_kb, dataflow, winograd
    accel_precisions: tuple[str, ...]

    def effective_bits(self) -> tuple[str, ...]:
        """Per layer slot: fp16 only where the accelerator runs fp16, else int8 (int4 stays)."""
        return tuple(
            "int8" if b == "fp16" and "fp16" not in self.accel_precisions else b for b in self.bits
        )

    def active_slots(self) -> list[int]:
        """Block slots that run (``depth`` of each stage), in execution order."""
        return [sn.block_slot(s, i) for s, d in enumerate(self.subnet.depths) for i in range(d)]

    def active_layer_slots(self) -> list[int]:
        """Conv-layer slots of the blocks that run, in execution order."""
        n = len(sn.BLOCK_CONVS)
        return [b * n + j for b in self.active_slots() for j in range(n)]

    def network_key(self) -> str:
        """What decides the accuracy: subnet, and the running layers' effective bits and blocks'
        pruning (not the accelerator, nor the genes of blocks that do not run)."""
        eff = self.effective_bits()
        d = {
            "subnet": self.subnet.to_dict(),
            "bits": [eff[j] for j in self.active_layer_slots()],
            "prune": [self.prune[j] for j in self.active_slots()],
        }
        return json.dumps(d, sort_keys=True)

    def _per_stage(self, values: tuple[Any, ...]) -> list[list[Any]]:
        """Per stage, per running block: the block's value (or its layers', joined by "/")."""
        n = len(sn.BLOCK_CONVS)
        per_layer = len(values) == sn.LAYER_SLOTS

        def of(b: int) -> Any:
            return "/".join(str(v) for v in values[b * n : (b + 1) * n]) if per_layer else values[b]

        return [
            [of(sn.block_slot(s, i)) for i in range(d)] for s, d in enumerate(self.subnet.depths)
        ]

    def describe(self) -> dict[str, Any]:
        return {
            "depths": list(self.subnet.depths),
            "widths": list(self.subnet.widths),
            "kernels": list(self.subnet.kernels),
            "expands": list(self.subnet.expands),
            "resolution": self.subnet.resolution,
            "bits": self._per_stage(self.bits),  # per stage, per running block: expand/dw/project
            "effective_bits": self._per_stage(self.effective_bits()),
            "prune": self._per_stage(self.prune),
            # compact forms for tables: stages split by "|", blocks by ","
            "bits_summary": _summary(self._per_stage(self.effective_bits())),
            "prune_summary": _summary(self._per_stage(self.prune)),
            "accelerator": dict(self.accel_point),
            "accel_precisions": "+".join(self.accel_precisions),
        }


def _summary(per_stage: list[list[Any]]) -> str:
    return "|".join(",".join(str(v) for v in stage) for stage in per_stage)


def decode(space: CodesignSpace, genome: tuple[int, ...] | list[int]) -> Design:
    g = [int(v) for v in genome]
    sizes = space.gene_sizes
    if len(g) != len(sizes) or any(not 0 <= v < n for v, n in zip(g, sizes, strict=True)):
        raise ConfigError(f"genome {g} does not fit the space (sizes {sizes})")
    net = space.network
    per: dict[str, list[Any]] = {k: [] for k in NET_STAGE_GENES + NET_BLOCK_GENES}
    i = 0
    for _ in range(sn.STAGES):
        for k in NET_STAGE_GENES:
            per[k].append(net[k][g[i]])
            i += 1
        for _ in range(sn.MAX_DEPTH):
            for k in NET_BLOCK_GENES:  # bits of expand, dw, project (layer-slot order), prune
                per[k].append(net[k][g[i]])
                i += 1
    resolution = net["resolution"][g[i]]
    i += 1
    acc = {k: space.accelerator[k][g[i + j]] for j, k in enumerate(ACCEL_GENES)}
    subnet = sn.SubnetConfig(
        depths=tuple(per["depth"]),
        widths=tuple(float(w) for w in per["width"]),
        kernels=tuple(per["kernel"]),
        expands=tuple(per["expand"]),
        resolution=int(resolution),
    )
    precisions = tuple(str(acc.pop("precisions")).split("+"))
    return Design(
        genome=tuple(g),
        subnet=subnet,
        bits=tuple(str(b) for b in per["bits"]),
        prune=tuple(float(p) for p in per["prune"]),
        accel_point=acc,
        accel_precisions=precisions,
    )


def largest_genome(space: CodesignSpace) -> list[int]:
    """The reference network: deepest, widest, largest kernels/expansion, int8, no pruning,
    highest resolution; the accelerator genes at the middle of each list."""
    net = space.network
    g: list[int] = []
    bits, prune = net["bits"], net["prune"]
    for _ in range(sn.STAGES):
        for k in NET_STAGE_GENES:
            vals = net[k]
            g.append(max(range(len(vals)), key=lambda j: vals[j]))
        for _ in range(sn.MAX_DEPTH):
            for k in NET_BLOCK_GENES:
                if k == "bits":
                    g.append(bits.index("int8") if "int8" in bits else 0)
                else:
                    g.append(min(range(len(prune)), key=lambda j: prune[j]))
    res = net["resolution"]
    g.append(max(range(len(res)), key=lambda j: res[j]))
    g += [len(space.accelerator[k]) // 2 for k in ACCEL_GENES]
    return g
