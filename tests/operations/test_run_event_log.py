"""`legcramp-run` holds the run's SQLite event-log databases open while it runs (pipelines/run.py,
`event_log_held_open`), so that storing an event does not checkpoint and delete the write-ahead log each time.
A real Dagster instance with the default SQLite event log; the events are stored as without it."""

import uuid
from pathlib import Path

import dagster as dg

from pipelines.run import event_log_held_open


def _wal(instance: dg.DagsterInstance, run_id: str) -> Path:
    return Path(instance.event_log_storage.path_for_shard(run_id) + "-wal")


def _engine_event(instance: dg.DagsterInstance, run: dg.DagsterRun, message: str) -> None:
    instance.report_engine_event(message, dagster_run=run)


def test_the_write_ahead_log_stays_between_events_while_held_and_every_event_is_stored(dagster_instance):
    run = dagster_instance.create_run_for_job(dg.GraphDefinition(name="empty").to_job(), run_id=str(uuid.uuid4()))

    _engine_event(dagster_instance, run, "before")
    # Without a connection held open, the connection that stored the event was the last: it checkpointed the log
    # into the database and deleted it.
    assert not _wal(dagster_instance, run.run_id).exists()

    with event_log_held_open(dagster_instance, run.run_id):
        _engine_event(dagster_instance, run, "held 1")
        _engine_event(dagster_instance, run, "held 2")
        assert _wal(dagster_instance, run.run_id).exists()  # appended to, not checkpointed per event
    assert not _wal(dagster_instance, run.run_id).exists()  # the last close checkpointed the rest

    messages = [record.message for record in dagster_instance.all_logs(run.run_id)]
    assert messages[-3:] == ["before", "held 1", "held 2"]


def test_a_run_refused_before_it_starts_leaves_no_event_log_database(dagster_instance):
    run_id = str(uuid.uuid4())
    shard = Path(dagster_instance.event_log_storage.path_for_shard(run_id))
    try:
        with event_log_held_open(dagster_instance, run_id):
            assert shard.exists()
            raise ValueError("refused, e.g. by its run configuration")
    except ValueError:
        pass
    assert not shard.exists()
    assert not list(shard.parent.glob(f"{run_id}.db*"))
