"""A flow with nothing in it, for tests of the worker itself (tests/integration/test_worker_pickup.py)."""

from __future__ import annotations

from prefect import flow


@flow(name="rprp-test-tiny", persist_result=False)
def tiny() -> str:
    return "done"
