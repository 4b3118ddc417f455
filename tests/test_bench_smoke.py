"""A small run of the benchmark (bench/), so that it cannot rot: a real server process,
two protocol-level editors typing ten characters each, convergence and latency numbers.

The full benchmark is `bench/run` (docs/benchmarks.md); it is not part of the tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bench.server import TandemServer
from bench.tandem_load import LoadConfig, apply_delta, map_index, run_load


def test_the_load_clients_delta_arithmetic() -> None:
    assert apply_delta("abc", [{"retain": 3}, {"insert": "d"}]) == "abcd"
    assert apply_delta("abc", [{"retain": 1}, {"delete": 1}, {"insert": "X"}]) == "aXc"
    # What others appended at my (unsent) typing position goes before it.
    assert map_index([{"retain": 3}, {"insert": "xy"}], 3) == 5
    assert map_index([{"retain": 1}, {"delete": 2}], 2) == 1
    assert map_index([{"retain": 5}, {"insert": "q"}], 3) == 3


@pytest.fixture(scope="module")
def server() -> Iterator[TandemServer]:
    with TandemServer() as running:
        yield running


def test_two_editors_converge_and_latency_is_measured(server: TandemServer) -> None:
    cfg = LoadConfig(
        base_url=server.base_url,
        clients=2,
        updates=10,
        rate=20.0,
        server_pid=server.pid,
        label="smoke",
        drain_timeout=10.0,
        connect_timeout=20.0,
    )
    res = asyncio.run(run_load(cfg, hard_timeout=60.0))
    errors = res["client_error_samples"]
    assert res["converged"], (res["final_lens_minmax"], errors, server.output()[-2000:])
    assert res["server_text_matches"]
    assert res["client_errors"] == 0, errors
    assert res["duplicated_chars"] == 0 and res["overcounted_arrivals"] == 0
    assert res["observed_total"] == res["expected_observations"] == 2 * 1 * 10
    for key in ("lat_p50_ms", "lat_p99_ms", "lat_send_p50_ms", "ack_p50_ms", "ack_p99_ms"):
        assert res[key] is not None and res[key] >= 0, key
    # The two ways of deciding when a receiver holds an insert agree exactly.
    assert res["method_max_diff_ms"] == 0
    assert res["server_cpu_s"] is not None
    assert res["time_to_full_convergence_s"] is not None


def test_a_burst_converges(server: TandemServer) -> None:
    cfg = LoadConfig(
        base_url=server.base_url,
        clients=3,
        updates=30,
        rate=0.0,
        server_pid=server.pid,
        label="smoke-burst",
        drain_timeout=10.0,
        connect_timeout=20.0,
        burst_send_timeout=20.0,
    )
    res = asyncio.run(run_load(cfg, hard_timeout=60.0))
    assert res["converged"], (res["final_lens_minmax"], res["client_error_samples"])
    assert res["observed_fraction"] == 1.0
    # Keystrokes typed while a request is in flight travel together.
    assert res["requests_with_ops"] < 3 * 30
