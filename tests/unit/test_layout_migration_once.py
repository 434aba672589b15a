"""The older layout's migration is start-up work: run once, retried by a sweep only if the engine failed it."""

from __future__ import annotations

from twisted.internet.defer import ensureDeferred

from beater.store import QueryStore
from common.engine import EngineUnavailable


class Migration:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.runs = 0

    async def migrate(self) -> int:
        self.runs += 1
        if self.failures:
            self.failures -= 1
            raise EngineUnavailable("engine down")
        return 3


def run(store: QueryStore) -> BaseException | None:
    failures: list[BaseException] = []
    ensureDeferred(store.migrate_layout()).addErrback(lambda f: failures.append(f.value))
    return failures[0] if failures else None


def test_the_migration_runs_once() -> None:
    store = QueryStore(None, "estrom-queries-")  # type: ignore[arg-type]  # the engine is the migration's
    store.migration = Migration(failures=0)  # type: ignore[assignment]
    assert run(store) is None
    assert run(store) is None
    assert store.migration.runs == 1  # type: ignore[attr-defined]


def test_a_migration_the_engine_failed_runs_again_until_it_ran() -> None:
    store = QueryStore(None, "estrom-queries-")  # type: ignore[arg-type]
    store.migration = Migration(failures=1)  # type: ignore[assignment]
    assert isinstance(run(store), EngineUnavailable)
    assert not store.layout_migrated
    assert run(store) is None
    assert run(store) is None
    assert store.migration.runs == 2  # type: ignore[attr-defined]
