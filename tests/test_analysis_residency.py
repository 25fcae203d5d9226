"""The one on-chip residency allocator, against closed-form small cases."""

from edgecnn.analysis.residency import Step, allocate_resident


def _chain(n: int, nbytes: int) -> list[Step]:
    """x -> t0 -> t1 -> ... -> t{n-1} (the last one is the graph output)."""
    steps, prev = [], "x"
    for i in range(n):
        steps.append(Step(((prev, nbytes),), ((f"t{i}", nbytes),)))
        prev = f"t{i}"
    return steps


def test_chain_keeps_every_intermediate_when_two_fit():
    # While step i runs, t{i-1} (its input) and t{i} are held: 2 x 100 bytes.
    r = allocate_resident(_chain(4, 100), 200, never_resident={"t3"})
    assert r.resident == {"t0", "t1", "t2"}
    assert r.held_bytes == (100, 200, 200, 100)


def test_chain_capacity_for_one_map_keeps_every_other():
    # t0 is held while step 1 runs, so t1 does not fit; t1 goes to DRAM, so t2 fits again.
    r = allocate_resident(_chain(4, 100), 199, never_resident={"t3"})
    assert r.resident == {"t0", "t2"}
    assert r.held_bytes == (100, 100, 100, 100)


def test_capacity_zero_keeps_nothing():
    r = allocate_resident(_chain(3, 10), 0)
    assert r.resident == frozenset()
    assert r.held_bytes == (0, 0, 0)


def test_capacity_that_fits_exactly_and_one_byte_less():
    assert "t0" in allocate_resident(_chain(2, 64), 64, {"t1"})
    assert "t0" not in allocate_resident(_chain(2, 64), 63, {"t1"})


def test_graph_outputs_and_inputs_never_resident():
    r = allocate_resident(_chain(2, 8), 10**9, never_resident={"t1"})
    assert r.resident == {"t0"}  # x is a graph input (never written), t1 a graph output


def test_branch_holds_the_fork_until_its_last_reader():
    # a is read by b and by the join c: while b runs a and b are held (300);
    # c reads a and b and writes out.
    steps = [
        Step((("x", 100),), (("a", 100),)),
        Step((("a", 100),), (("b", 200),)),
        Step((("a", 100), ("b", 200)), (("out", 100),)),
    ]
    r = allocate_resident(steps, 300, never_resident={"out"})
    assert r.resident == {"a", "b"}
    assert r.held_bytes == (100, 300, 300)
    # With 299 bytes b does not fit beside a: b goes to DRAM, a stays until c.
    r = allocate_resident(steps, 299, never_resident={"out"})
    assert r.resident == {"a"}
    assert r.held_bytes == (100, 100, 100)


def test_release_after_last_reader_frees_room_for_later_maps():
    steps = [
        Step((("x", 1),), (("a", 100),)),
        Step((("a", 100),), (("b", 100),)),  # a's last reader: released after this step
        Step((("b", 100),), (("c", 100),)),
        Step((("c", 100),), (("out", 1),)),
    ]
    r = allocate_resident(steps, 200, never_resident={"out"})
    assert r.resident == {"a", "b", "c"}
    assert max(r.held_bytes) == 200


def test_unread_tensor_is_resident_then_released_at_once():
    steps = [Step((("x", 1),), (("dead", 50), ("a", 50))), Step((("a", 50),), (("out", 1),))]
    r = allocate_resident(steps, 100, never_resident={"out"})
    assert r.resident == {"dead", "a"}
    assert r.held_bytes == (100, 50)
