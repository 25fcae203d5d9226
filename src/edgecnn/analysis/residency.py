"""On-chip feature-map residency: one greedy allocator shared by analysis and hardware.

The input is neutral: a sequence of :class:`Step` s (one per executed kernel, in order), each
naming the tensors it reads and the tensors it writes with their sizes in bytes. The rule:

* a tensor written by a step stays on chip (*resident*) when it fits, together with the tensors
  already held, in ``capacity_bytes`` (greedy, in execution order, outputs of a step in order);
  otherwise it is written to DRAM and every reader fetches it from there;
* graph outputs are never resident (they must reach DRAM), nor are tensors nobody produced
  (graph inputs, external tensors);
* a resident tensor is released after its last reader; one that nobody reads is released right
  after the step that wrote it (it still never crossed DRAM);
* a tensor's bytes are held while its last reader runs (its inputs and outputs share the buffer).

``capacity_bytes = 0`` keeps nothing on chip.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One kernel: ``reads`` / ``writes`` are ``(tensor name, bytes)`` pairs."""

    reads: tuple[tuple[str, int], ...]
    writes: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Residency:
    """Which tensors stay on chip, and the resident bytes held while each step runs.

    ``held_bytes[i]`` includes step ``i``'s resident inputs and the outputs it keeps.
    """

    resident: frozenset[str]
    held_bytes: tuple[int, ...]

    def __contains__(self, name: object) -> bool:
        return name in self.resident


def allocate_resident(
    steps: Sequence[Step], capacity_bytes: int, never_resident: Collection[str] = ()
) -> Residency:
    """Greedy residency over ``steps`` (see the module docstring).

    ``never_resident`` names the tensors that must go to DRAM (the graph outputs).
    """
    last_reader: dict[str, int] = {}
    for i, step in enumerate(steps):
        for name, _ in step.reads:
            last_reader[name] = i
    resident: set[str] = set()
    held: dict[str, int] = {}
    held_bytes: list[int] = []
    for i, step in enumerate(steps):
        for name, nbytes in step.writes:
            if (
                capacity_bytes > 0
                and name not in never_resident
                and name not in held
                and sum(held.values()) + nbytes <= capacity_bytes
            ):
                resident.add(name)
                held[name] = nbytes
        held_bytes.append(sum(held.values()))
        for name in [n for n in held if last_reader.get(n, -1) <= i]:
            del held[name]
    return Residency(frozenset(resident), tuple(held_bytes))
