"""What rprp.cluster tells HAProxy and Prefect's servers, checked without starting them."""

from __future__ import annotations

from pathlib import Path

from rprp.cluster import Cluster, ClusterOptions, database_url, haproxy_config


def test_the_balancer_checks_every_replica_and_retries_a_refused_request_elsewhere() -> None:
    config = haproxy_config(4200, {"api1": 5001, "api2": 5002})
    assert "bind 127.0.0.1:4200" in config
    assert "server api1 127.0.0.1:5001 check" in config
    assert "server api2 127.0.0.1:5002 check" in config
    assert "option httpchk GET /api/health" in config  # unauthenticated in Prefect
    assert "option redispatch" in config and "retry-on conn-failure" in config
    assert "timeout tunnel" in config  # the workers' event websockets stay open


def test_every_server_process_shares_redis_and_none_migrates_on_start(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, ClusterOptions(redis_url="redis://10.0.0.5:6380"))
    env = cluster.redis_env()
    assert env["PREFECT_MESSAGING_BROKER"] == "prefect_redis.messaging"
    assert env["PREFECT_SERVER_EVENTS_CAUSAL_ORDERING"] == "prefect_redis.ordering"
    assert env["PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"] == "prefect_redis.lease_storage"
    assert env["PREFECT_REDIS_MESSAGING_URL"] == "redis://10.0.0.5:6380/0"
    assert env["PREFECT_SERVER_DOCKET_URL"] == "redis://10.0.0.5:6380/1"
    assert env["PREFECT_API_DATABASE_MIGRATE_ON_START"] == "false"


def test_the_databases_are_named_on_the_server_given() -> None:
    server = "postgresql://rprp:secret@db.force.internal:5433/postgres"
    assert database_url(server, "rprp_cluster_cases", "psycopg") == \
        "postgresql+psycopg://rprp:secret@db.force.internal:5433/rprp_cluster_cases"
    cluster = Cluster(Path("/tmp/x"), ClusterOptions(postgres_url=server,
                                                     database_prefix="force"))
    assert cluster.prefect_db_url == \
        "postgresql+asyncpg://rprp:secret@db.force.internal:5433/force_prefect"
    assert cluster.case_url.endswith("/force_cases")


def test_a_server_of_its_own_holds_both_databases_on_its_own_port(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, ClusterOptions(own_postgres=True, database_prefix="chaos"))
    server = f"postgresql://postgres@127.0.0.1:{cluster.postgres_port}/postgres"
    assert cluster.postgres_url == server
    assert cluster.case_url == \
        f"postgresql+psycopg://postgres@127.0.0.1:{cluster.postgres_port}/chaos_cases"
    assert cluster.prefect_db_url.endswith(f":{cluster.postgres_port}/chaos_prefect")
    # Given a server instead, it uses that one.
    shared = Cluster(tmp_path, ClusterOptions(postgres_url="postgresql://u@db:5433/postgres"))
    assert shared.postgres_url == "postgresql://u@db:5433/postgres"
