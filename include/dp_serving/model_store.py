"""The served model and the registry poll that replaces it.

Only ``refresh`` changes the served model, under a lock, so the poll thread and
POST /admin/reload never load at the same time. A new version is loaded completely before
one reference assignment makes it current. A request reads that reference once and keeps
the model it got, so a swap never fails a request in flight.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from dp_serving.tracking import ProductionVersion, RegistryError, ServedModel

logger = logging.getLogger(__name__)

# After the first failure, the same failure is logged again only every this many checks.
REPEATED_FAILURE_LOG_INTERVAL = 30


class ModelSource(Protocol):
    model_name: str

    def find_production(self) -> ProductionVersion | None: ...

    def load(self, production: ProductionVersion) -> ServedModel: ...

    def release(self, served: ServedModel) -> None: ...


@dataclass(frozen=True)
class RefreshOutcome:
    """Outcome of one registry check."""

    changed: bool
    previous_version: str | None
    version: str | None
    message: str
    error: str | None = None


class ModelStore:
    """Holds the served model and follows the registry's Production version."""

    def __init__(self, source: ModelSource, poll_seconds: float):
        self.source = source
        self.model_name = source.model_name
        self.poll_seconds = poll_seconds
        self._current: ServedModel | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._not_ready_reason = "The server has not checked the registry yet."
        self.loading_version: str | None = None
        self.last_check_at: datetime | None = None
        self.last_error: str | None = None
        self._failure_key: str | None = None
        self._failure_count = 0

    @property
    def current(self) -> ServedModel | None:
        """The model that new requests use, or None when no version is loaded."""
        return self._current

    @property
    def not_ready_reason(self) -> str | None:
        if self._current is not None:
            return None
        if self.loading_version is not None:
            return f"Loading {self.model_name} version {self.loading_version}."
        return self._not_ready_reason

    def refresh(self) -> RefreshOutcome:
        """Check the registry once and load and swap in a new Production version if any."""
        with self._refresh_lock:
            return self._refresh()

    def _refresh(self) -> RefreshOutcome:
        served = self._current
        served_version = served.version if served else None
        self.last_check_at = datetime.now(UTC)
        try:
            production = self.source.find_production()
        except RegistryError as error:
            message = f"Checking the registry failed: {error}"
            if served is None:
                self._not_ready_reason = message
            self._record_failure("registry", message)
            return RefreshOutcome(False, served_version, served_version, message, str(error))

        if production is None:
            self._record_success()
            self._not_ready_reason = (
                f"No version of {self.model_name} is in Production: the registry has neither "
                "the production alias nor a version in the Production stage."
            )
            if served is None:
                return RefreshOutcome(False, None, None, self._not_ready_reason)
            self._current = None
            logger.warning(
                "No version of %s is in Production any more; stopped serving version %s",
                self.model_name,
                served_version,
            )
            self.source.release(served)
            return RefreshOutcome(True, served_version, None, self._not_ready_reason)

        if production.version == served_version:
            self._record_success()
            return RefreshOutcome(
                False, served_version, served_version, f"Version {served_version} is current."
            )

        logger.info(
            "Production version of %s is %s (found by %s); loading it while serving %s",
            self.model_name,
            production.version,
            production.resolved_by,
            served_version or "nothing",
        )
        self.loading_version = production.version
        try:
            loaded = self.source.load(production)
        except Exception as error:
            # Loading runs MLflow, cloudpickle and TensorFlow code, which can raise anything;
            # the poll thread must survive it and keep serving the previous version.
            message = f"Loading {self.model_name} version {production.version} failed: {error}"
            if served is None:
                self._not_ready_reason = message
            self._record_failure(f"load {production.version}", message, exc_info=True)
            return RefreshOutcome(False, served_version, served_version, message, str(error))
        finally:
            self.loading_version = None

        self._current = loaded
        self._record_success()
        logger.info(
            "Now serving %s version %s (previous: %s)",
            self.model_name,
            loaded.version,
            served_version or "none",
        )
        if served is not None:
            self.source.release(served)
        return RefreshOutcome(
            True, served_version, loaded.version, f"Now serving version {loaded.version}."
        )

    def _record_failure(self, key: str, message: str, exc_info: bool = False) -> None:
        self.last_error = message
        if key == self._failure_key:
            self._failure_count += 1
        else:
            self._failure_key, self._failure_count = key, 1
        still_serving = self._current.version if self._current else "nothing"
        if self._failure_count == 1:
            logger.error("%s; still serving %s", message, still_serving, exc_info=exc_info)
        elif self._failure_count % REPEATED_FAILURE_LOG_INTERVAL == 0:
            logger.error(
                "%s (%d checks in a row); still serving %s",
                message,
                self._failure_count,
                still_serving,
            )

    def _record_success(self) -> None:
        if self._failure_count:
            logger.info("Registry check succeeded after %d failed checks", self._failure_count)
        self.last_error = None
        self._failure_key, self._failure_count = None, 0

    def start(self) -> None:
        """Start the thread that checks now and then every ``poll_seconds``."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="registry-poll", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:
                # A bug here must not end the poll: log it and try again next time.
                logger.exception("Registry check of %s failed unexpectedly", self.model_name)
            if self.poll_seconds <= 0:
                return
            self._stop.wait(self.poll_seconds)
