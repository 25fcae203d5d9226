"""The co-design loop: supernet weight sharing, the joint space, design evaluation, the search."""

from __future__ import annotations

import json
import random

import pytest
import torch

from edgecnn.errors import ConfigError
from edgecnn.models import supernet as sn
from edgecnn.studies import codesign as cd
from edgecnn.studies.codesign_space import (
    codesign_space_from_dict,
    decode,
    largest_genome,
    load_codesign_space,
)

SMALL = {
    "network": {"bits": ["int8", "int4", "fp16"], "prune": [0.0, 0.5]},
    "accelerator": {
        "base": "seed-chip",
        "array": ["8x8", "16x16"],
        "sram_kb": [64, 256],
        "dataflow": ["os", "ws"],
        "winograd": ["none", "F2"],
        "precisions": ["int8", "int8+fp16"],
    },
    "supernet": {"epochs": 1, "random_subnets": 1},
    "search": {"population": 4, "generations": 1},
    "verify": {"designs": 1, "epochs": 1},
    "bn_images": 64,
    "train_images": 128,
}


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    net = sn.ElasticSuperNet()
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    sn.train_supernet(net, x, y, epochs=1, batch_size=32, random_subnets=1)
    return net


def test_extracted_subnets_compute_exactly_what_the_supernet_computes(supernet):
    rng = random.Random(3)
    x = torch.randn(3, 1, 28, 28)
    for _ in range(6):
        cfg = sn.random_config(rng)
        cfg = sn.prune_hidden(supernet, cfg, (0.25, 0.0, 0.5) * 3)
        sub = sn.extract_subnet(supernet, cfg).eval()
        xi = sn.resize(x, cfg.resolution)
        with torch.no_grad():
            assert torch.allclose(supernet(xi, cfg), sub(xi), atol=1e-5)


def test_a_3x3_kernel_is_the_centre_of_the_shared_5x5(supernet):
    cfg = sn.replace(sn.smallest_config(), kernels=(3, 3, 3))
    sub = sn.extract_subnet(supernet, cfg)
    w5 = supernet.stages[0][0].dw
    assert torch.equal(
        sub.stages[0][0].dw.weight, w5[: sub.stages[0][0].dw.out_channels, :, 1:4, 1:4]
    )


def test_pruning_keeps_the_most_important_hidden_channels(supernet):
    cfg = sn.largest_config()
    pruned = sn.prune_hidden(supernet, cfg, (0.5,) * sn.BLOCK_SLOTS)
    b = supernet.stages[0][0]
    cin = sn.STEM_CHANNELS
    hidden = cin * max(sn.EXPANDS)
    score = b.expand[:, :cin].abs().sum((1, 2, 3)) * b.project[: cfg.stage_channels()[0]].abs().sum(
        (0, 2, 3)
    )
    want = set(torch.topk(score, hidden // 2).indices.tolist())
    assert set(pruned.hidden()[0]) == want
    assert all(len(k) == len(h) // 2 for k, h in zip(pruned.hidden(), cfg.hidden(), strict=True))


def test_subnet_macs_follow_the_closed_form():
    from edgecnn.analysis import profile
    from edgecnn.models.resolve import load_graph

    cfg = sn.smallest_config()
    r = cfg.resolution
    h = (r + 1) // 2  # stem stride 2, padding 1
    macs = h * h * sn.STEM_CHANNELS * 9
    size = h
    for _s, _i, cin, cout, stride, k in cfg.blocks():
        hidden = cin * min(sn.EXPANDS)
        macs += size * size * cin * hidden
        out = (size + 2 * (k // 2) - k) // stride + 1
        macs += out * out * hidden * k * k + out * out * hidden * cout
        size = out
    macs += cfg.stage_channels()[-1] * sn.NUM_CLASSES
    got = profile(load_graph(sn.SubNet(cfg), (1, 1, r, r))).totals.macs
    assert got == macs


def test_space_decodes_and_refuses_bad_values():
    space = codesign_space_from_dict(SMALL)
    g = largest_genome(space)
    d = decode(space, g)
    assert d.subnet.depths == (sn.MAX_DEPTH,) * sn.STAGES and d.prune == (0.0,) * sn.BLOCK_SLOTS
    assert d.bits == ("int8",) * sn.LAYER_SLOTS
    with pytest.raises(ConfigError, match="does not fit"):
        decode(space, [99] * len(g))
    with pytest.raises(ConfigError, match="not supported"):
        codesign_space_from_dict({**SMALL, "network": {"kernel": [7]}})
    with pytest.raises(ConfigError, match="int8"):
        codesign_space_from_dict(
            {**SMALL, "accelerator": {**SMALL["accelerator"], "precisions": ["fp16"]}}
        )
    with pytest.raises(ConfigError, match="unknown keys"):
        codesign_space_from_dict({**SMALL, "nets": {}})
    assert load_codesign_space().population >= 4  # the built-in example parses


def test_fp16_falls_back_to_int8_without_an_fp16_datapath():
    space = codesign_space_from_dict(SMALL)
    g = largest_genome(space)
    bits_gene = 4  # stage 0: depth, width, kernel, expand, then block 0's expand-conv bits
    g[bits_gene] = space.network["bits"].index("fp16")
    prec_gene = len(g) - 1
    g[prec_gene] = space.accelerator["precisions"].index("int8")
    assert decode(space, g).effective_bits()[0] == "int8"
    g[prec_gene] = space.accelerator["precisions"].index("int8+fp16")
    assert decode(space, g).effective_bits()[0] == "fp16"


def _block_gene(space, stage, block, gene, conv="expand"):
    """Index of a block's gene in the genome: ``prune``, or the ``bits`` of its ``conv``."""
    from edgecnn.studies.codesign_space import NET_BLOCK_GENES, NET_STAGE_GENES

    per_stage = len(NET_STAGE_GENES) + sn.MAX_DEPTH * len(NET_BLOCK_GENES)
    offset = sn.BLOCK_CONVS.index(conv) if gene == "bits" else NET_BLOCK_GENES.index("prune")
    return stage * per_stage + len(NET_STAGE_GENES) + block * len(NET_BLOCK_GENES) + offset


def test_bits_per_layer_pruning_per_block_and_inactive_blocks_do_not_count(supernet):
    from edgecnn.hardware.config import load_accelerator

    space = codesign_space_from_dict(SMALL)
    base = load_accelerator("seed-chip")
    g = largest_genome(space)
    g[len(g) - 1] = space.accelerator["precisions"].index("int8+fp16")
    g[0] = space.network["depth"].index(2)  # stage 0 runs blocks 0 and 1; slot 2 is inactive
    ref = decode(space, g)

    def metrics(genome):
        d = decode(space, genome)
        return d, cd.hardware_metrics(sn.extract_subnet(supernet, d.subnet), d, base, "latency")

    _, m_ref = metrics(g)
    idle = list(g)
    idle[_block_gene(space, 0, 2, "bits", "dw")] = space.network["bits"].index("fp16")
    idle[_block_gene(space, 0, 2, "prune")] = space.network["prune"].index(0.5)
    d_idle, m_idle = metrics(idle)
    assert d_idle.network_key() == ref.network_key() and m_idle == m_ref
    firsts = []
    for block in (0, 1):
        h = list(g)
        h[_block_gene(space, 1, block, "bits")] = space.network["bits"].index("fp16")
        d, m = metrics(h)
        assert d.network_key() != ref.network_key() and m["energy_mj"] > m_ref["energy_mj"]
        firsts.append(m["energy_mj"])
    assert firsts[0] != firsts[1]  # stage 1's strided block 0 and block 1 priced separately
    layers = []
    for conv in sn.BLOCK_CONVS:  # and each conv of one block on its own
        h = list(g)
        h[_block_gene(space, 1, 0, "bits", conv)] = space.network["bits"].index("fp16")
        d, m = metrics(h)
        eff = d.effective_bits()
        assert [b for b in eff if b == "fp16"] == ["fp16"]
        assert eff[sn.layer_slot(1, 0, conv)] == "fp16"
        layers.append(m["energy_mj"])
    assert len(set(layers)) == 3
    p = list(g)
    p[_block_gene(space, 0, 1, "prune")] = space.network["prune"].index(0.5)
    cfg, _ = cd.design_network(supernet, decode(space, p))
    full = ref.subnet.hidden()
    assert [len(k) for k in cfg.hidden()][:2] == [len(full[0]), len(full[1]) // 2]


def test_weight_quantization_levels():
    net = sn.SubNet(sn.largest_config())
    bits = ["int8"] * sn.LAYER_SLOTS
    bits[sn.layer_slot(0, 0, "project")], bits[sn.layer_slot(1, 2, "project")] = "int4", "fp16"
    cd.quantize_weights(net, tuple(bits))
    w4 = net.stages[0][0].project.weight.flatten(1)
    assert all(len(torch.unique(row)) <= 16 for row in w4)
    for other in (net.stages[0][0].dw, net.stages[0][1].project):  # the same block / stage
        assert max(len(torch.unique(row)) for row in other.weight.flatten(1)) > 16
    wh = net.stages[1][2].project.weight
    assert torch.equal(wh, wh.half().float())
    w8 = net.stages[1][1].expand.weight.flatten(1)
    assert max(len(torch.unique(row)) for row in w8) > 16


def test_all_int8_design_costs_equal_one_int8_simulation(supernet):
    from edgecnn.hardware.config import load_accelerator
    from edgecnn.hardware.explore import point_accelerator
    from edgecnn.hardware.simulate import SimOptions, simulate
    from edgecnn.hardware.workload import build_workload
    from edgecnn.models.resolve import load_graph

    space = codesign_space_from_dict(SMALL)
    d = decode(space, largest_genome(space))
    net = sn.extract_subnet(supernet, d.subnet)
    base = load_accelerator("seed-chip")
    m = cd.hardware_metrics(net, d, base, "latency")
    accel, _ = point_accelerator(base, {**d.accel_point, "precision": "int8"})
    accel = accel.replace(precisions=d.accel_precisions, precision="int8")
    r = d.subnet.resolution
    ref = simulate(
        build_workload(load_graph(net, (1, 1, r, r))), accel, SimOptions(precision="int8")
    )
    assert m["cycles"] == ref.totals["cycles"]
    assert m["energy_mj"] == pytest.approx(ref.totals["energy_j"] * 1e3)


def test_int4_stages_halve_their_weight_dram_bytes_not_their_cycles(supernet):
    from edgecnn.hardware.config import load_accelerator
    from edgecnn.hardware.workload import build_workload
    from edgecnn.models.resolve import load_graph

    space = codesign_space_from_dict(SMALL)
    d = decode(space, largest_genome(space))
    net = sn.extract_subnet(supernet, d.subnet)
    r = d.subnet.resolution
    wl = build_workload(load_graph(net, (1, 1, r, r)))
    accel = load_accelerator("seed-chip").replace(precisions=("int8",), precision="int8")
    r8 = cd._simulate_at(wl, accel, "int8", "latency")
    r4 = cd._simulate_at(wl, accel, "int4", "latency")
    checked = 0
    for a, b in zip(r8.layers, r4.layers, strict=True):
        w8, w4 = a.dram_read_bytes["weight"], b.dram_read_bytes["weight"]
        assert b.cycles <= a.cycles and b.energy_j <= a.energy_j
        assert w4 <= w8
        if a.op == "conv" and w8 > 0:
            assert w4 == -(-w8 // 2)
            checked += 1
    assert checked >= 5
    assert r4.totals["energy_j"] < r8.totals["energy_j"]


def _row(i, *objs):
    return {"id": str(i), **dict(zip(cd.OBJECTIVES, objs, strict=True)), "accuracy": 1 - objs[0]}


def test_pareto_hypervolume_and_coverage():
    a = _row(1, 0.0, 0.0, 0.0, 0.0)
    b = _row(2, 1.0, 1.0, 1.0, 1.0)
    c = _row(3, 0.5, 1.0, 1.0, 1.0)
    assert cd.pareto([a, b, c]) == [a]
    assert cd.pareto([b, c]) == [c]
    norm = cd.Normaliser([a, b])
    assert cd.hypervolume([a], norm) == pytest.approx(1.1**4)
    assert cd.hypervolume([b], norm) == pytest.approx(0.1**4)
    # two non-dominated points: inclusion-exclusion in 4D
    p = _row(4, 0.0, 1.0, 0.0, 0.0)
    q = _row(5, 1.0, 0.0, 0.0, 0.0)
    hv = cd.hypervolume([p, q], norm)
    assert hv == pytest.approx(2 * 0.1 * 1.1**3 - 0.1 * 0.1 * 1.1**2)
    assert cd.coverage([a], [b, c]) == 1.0 and cd.coverage([c], [a]) == 0.0


def test_best_is_the_most_accurate_within_the_budget():
    rows = [_row(1, 0.01, 5.0, 1, 1), _row(2, 0.02, 2.0, 1, 1), _row(3, 0.05, 1.0, 1, 1)]
    assert cd.select_best(rows, {"latency_ms": 3.0})["id"] == "2"
    assert cd.select_best(rows, {"latency_ms": 0.5}) is None


class _FakeRunner:
    """Closed-form objectives of a genome: NSGA-II must keep fixed genes and see every row."""

    def __init__(self):
        self.calls = []

    def evaluate(self, genomes, on_done=None):
        rows = []
        for g in genomes:
            s = sum(g)
            rows.append(
                {
                    "id": json.dumps(g),
                    "genome": list(g),
                    **dict(zip(cd.OBJECTIVES, (1 / (1 + s), s, s, s), strict=True)),
                    "accuracy": 0,
                }
            )
        self.calls.append(len(genomes))
        return rows


def test_nsga2_respects_fixed_genes_and_budget():
    space = codesign_space_from_dict({**SMALL, "search": {"population": 6, "generations": 3}})
    fixed = {0: 2, 1: 1}
    runner = _FakeRunner()
    rows = cd.nsga2(runner, space, {"latency_ms": 10.0}, 3, fixed, seed=1)
    assert len(runner.calls) == 3 and sum(runner.calls) == len(rows)
    assert all(r["genome"][0] == 2 and r["genome"][1] == 1 for r in rows)
    sizes = space.gene_sizes
    assert all(0 <= v < n for r in rows for v, n in zip(r["genome"], sizes, strict=True))


def test_evaluations_resume_and_ignore_torn_lines(tmp_path):
    p = tmp_path / "e.jsonl"
    ev = cd.Evaluations(p, "ctx")
    ev.add({"genome": [1, 2], "x": 1})
    with open(p, "a") as f:
        f.write('{"genome": [3')  # torn
    again = cd.Evaluations(p, "ctx")
    assert again.resumed == 1 and again.genome_id([1, 2]) in again.rows
    assert cd.Evaluations(p, "other").resumed == 0  # another run's rows are not reused


def test_codesign_cli_end_to_end_and_resume(tmp_path, capsys):
    import yaml

    from cli_helpers import run_cli

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SMALL))
    out = tmp_path / "cd"
    argv = ["codesign", "--space", str(space), "--data", "digits", "--out", str(out)]
    code, stdout, err = run_cli([*argv, "--workers", "1", "--json"], capsys)
    assert code == 0, err
    d = json.loads(stdout)
    assert d["kind"] == "codesign" and d["joint_front"]
    for f in d["joint_front"]:
        assert 0 <= f["accuracy"] <= 1 and f["latency_ms"] > 0 and f["energy_mj"] > 0
    assert set(d["hypervolume"]) == {"joint", "network_first", "hardware_first"}
    assert len(d["verification"]) == 1
    assert (out / "report.html").stat().st_size > 1000 and (out / "front.png").is_file()
    assert "Co-design" in (out / "report.html").read_text()
    # resume: the supernet is reused and every design comes from the results file
    code, stdout, err = run_cli([*argv, "--workers", "1", "--json"], capsys)
    assert code == 0, err
    d2 = json.loads(stdout)
    assert d2["supernet_reused"] and d2["evaluations_resumed"] == d["evaluations"]
    assert d2["hypervolume"] == d["hypervolume"]


def test_codesign_bad_space_is_one_line(tmp_path, capsys):
    from cli_helpers import run_cli

    bad = tmp_path / "bad.yaml"
    bad.write_text("network: {kernel: [9]}\naccelerator: {array: [8x8], sram_kb: [64]}\n")
    code, _, err = run_cli(["codesign", "--space", str(bad), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "kernel" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "codesign.json").exists()


def test_elastic_pruning_drops_trailing_hidden_channels_and_is_trained(supernet):
    cfg = sn.largest_config()
    ratios = (0.5, 0.25, 0.0, 0.0, 0.5, 0.25, 0.25, 0.0, 0.5)  # per block slot
    cut = sn.drop_hidden(cfg, ratios)
    for (s, i, *_), k, full in zip(cut.blocks(), cut.hidden(), cfg.hidden(), strict=True):
        assert k == full[: sn.pruned_hidden_count(len(full), ratios[sn.block_slot(s, i)])]
    assert sn.drop_hidden(cfg, (0.0,) * sn.BLOCK_SLOTS) is cfg
    with pytest.raises(ConfigError, match="one per block slot"):
        sn.drop_hidden(cfg, (0.5, 0.25, 0.0))
    ch = sn.ElasticChoices(prunes=(0.0, 0.5))
    assert ch.smallest().hidden()[0] == list(range(sn.STEM_CHANNELS * min(sn.EXPANDS) // 2))


def test_quant_aware_forward_equals_the_subnet_with_quantized_layer_weights(supernet):
    from edgecnn.compress.fakequant import fake_quant_weight

    def quantizer(w, bits):
        return fake_quant_weight(w, bits, per_channel=True)

    rng = random.Random(5)
    x = torch.randn(2, 1, 28, 28)
    for bits in ((4, 8, 32) * 9, (4,) * 27, (32, 16, 8, 4, 8, 4, 32, 4, 8) * 3):
        cfg = sn.drop_hidden(sn.random_config(rng), (0.25, 0.0, 0.5) * 3)
        xi = sn.resize(x, cfg.resolution)
        sub = sn.extract_subnet(supernet, cfg).eval()
        with torch.no_grad():
            for name, m in sub.named_modules():
                if isinstance(m, torch.nn.Conv2d) and name.startswith("stages."):
                    parts = name.split(".")
                    b = bits[sn.layer_slot(int(parts[1]), int(parts[2]), parts[3])]
                    if b < 16:
                        m.weight.copy_(quantizer(m.weight, b))
            got = supernet(xi, cfg, bits, quantizer)
            assert torch.allclose(got, sub(xi), atol=1e-5)
            if min(bits) < 16:  # and the quantization did change the output
                assert not torch.equal(got, supernet(xi, cfg))


def test_block_operators_exchange_and_mutate_whole_blocks():
    import numpy as np
    from pymoo.core.problem import Problem

    from edgecnn.studies.codesign_operators import BlockCrossover, BlockMutation

    net, acc = list(range(0, 5)), list(range(5, 8))
    problem = Problem(n_var=8, n_obj=1, xl=0.0, xu=np.array([3, 3, 3, 3, 3, 2, 2, 2.0]))
    rs = np.random.default_rng(0)
    X = np.stack([np.zeros((6, 8)), np.ones((6, 8))])  # parent 0: all 0, parent 1: all 1
    swapped = BlockCrossover([net, acc], swap=1.0)._do(problem, X, random_state=rs)
    for child0, child1 in zip(swapped[0], swapped[1], strict=True):
        from_p1 = child0 == 1
        assert from_p1.tolist() in ([True] * 5 + [False] * 3, [False] * 5 + [True] * 3)
        assert np.array_equal(child1, 1 - child0)  # the other child takes the other block
    uniform = BlockCrossover([net, acc], swap=0.0)._do(problem, X, random_state=rs)
    assert np.array_equal(uniform[0] + uniform[1], np.ones((6, 8)))  # genes exchanged, not made
    Y = np.tile(np.array([0, 1, 2, 3, 0, 1, 2, 0.0]), (200, 1))
    M = BlockMutation([net, acc])._do(problem, Y, random_state=rs)
    changed = M != Y
    assert changed.any(1).all()  # every individual changes
    assert not (changed[:, :5].any(1) & changed[:, 5:].any(1)).any()  # one block at a time
    assert changed[:, :5].any(1).sum() > 50 and changed[:, 5:].any(1).sum() > 50
    assert (M >= 0).all() and (M <= problem.xu).all() and np.array_equal(M, M.round())
    one = BlockCrossover([list(range(8))], swap=1.0)._do(problem, X, random_state=rs)
    assert not np.array_equal(one[0], X[1])  # one block: uniform crossover, never a full swap


def test_ray_evaluation_equals_in_process(tmp_path):
    import ray  # the test extra installs Ray

    space = codesign_space_from_dict(SMALL)
    sup_path, _, _ = cd.prepare_supernet(space, "digits", tmp_path, lambda e: None)
    rng = random.Random(2)
    genomes = [largest_genome(space), [rng.randrange(n) for n in space.gene_sizes]]
    ctx = ":".join(("t", cd._file_digest(sup_path)))
    local = cd.Runner(space, sup_path, "digits", cd.Evaluations(tmp_path / "a.jsonl", ctx), 1)
    try:
        want = local.evaluate(genomes)
    finally:
        local.close()
    try:
        remote = cd.Runner(
            space, sup_path, "digits", cd.Evaluations(tmp_path / "b.jsonl", ctx), 1, "local"
        )
        try:
            got = remote.evaluate(genomes)
        finally:
            remote.close()
    finally:
        ray.shutdown()
    assert remote.computed == 2
    for a, b in zip(want, got, strict=True):
        assert a["id"] == b["id"]
        assert {k: a[k] for k in cd.OBJECTIVES} == {k: b[k] for k in cd.OBJECTIVES}
