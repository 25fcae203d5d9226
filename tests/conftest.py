"""Shared pytest configuration: deterministic, single-threaded torch for reproducible tests."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")

import torch  # noqa: E402

torch.set_num_threads(2)
