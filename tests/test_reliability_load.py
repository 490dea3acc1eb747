"""A small version of ``bench/reliability.py``'s mixed load (``bench/mixed_load.py``)
against a real server.

16 client threads, 20 requests each (bounded to 30 s), mixing ``/add/message``,
``/product/add``, ``/search/memory``, ``/product/search``, ``/get/memory`` and
``/get/message`` over 4 users per client. Every read checks the client's own
writes (read-your-writes); afterwards a fresh client reads each user back. The
kill -9 tests are in ``tests/test_durability.py``; ``make bench-reliability``
runs the full 32-client load and three SIGKILLs.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.timeout(120)

CLIENTS = 16
REQUESTS = 20
DURATION_S = 30.0
BENCH = Path(__file__).resolve().parents[1] / "bench" / "mixed_load.py"


def bench_module() -> ModuleType:
    """``bench/mixed_load.py`` (bench/ is no package) loaded by path."""
    name = "bench_mixed_load"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def test_mixed_load_has_no_5xx_and_reads_its_writes(restartable_server: Any) -> None:
    mixed_load = bench_module()
    srv = restartable_server(embedder="minilm")
    result = mixed_load.run_load(
        srv.base_url, clients=CLIENTS, requests_per_client=REQUESTS, duration_s=DURATION_S,
        seed=7,
    )
    print({k: result[k] for k in ("requests_completed", "wall_s", "throughput_rps", "overall")})
    assert result["stuck_clients"] == 0
    assert result["errors_5xx"] == 0, result["statuses"]
    # the mix sends only valid requests: anything but 200 (or a dropped connection) is a bug
    assert result["statuses"] == {"200": result["requests_sent"]}, result["routes"]
    assert result["envelope_errors"] == {}
    assert result["ryw_misses"] == 0, result["ryw_miss_examples"]
    assert result["ryw_checks"] > 0
    if not result["hit_time_bound"]:
        assert result["requests_completed"] == CLIENTS * REQUESTS
    for route, stats in result["routes"].items():
        assert stats["n"] > 0, f"{route} was never requested"

    # a fresh connection sees every acknowledged message of every user as a memory
    written: dict[str, int] = result["written_per_user"]
    assert result["acknowledged_messages"] > 0
    with httpx.Client(base_url=srv.base_url, timeout=30.0) as http:
        for user, n in written.items():
            if n == 0:
                continue
            resp = http.post("/get/memory", json={"user_id": user, "size": 1})
            assert resp.status_code == 200, resp.text[:500]
            assert resp.json()["data"]["total"] == n, user
