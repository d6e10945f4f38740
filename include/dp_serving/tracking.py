"""Registry access of the model server: which version is in Production, and its files.

The MLflow client takes the server from MLFLOW_TRACKING_URI and the login from
MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD. Model files come through the
tracking server's artifact proxy, so no S3 credentials are needed.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dp_pipeline.registry import PRODUCTION_ALIAS
from dp_serving import schemas
from dp_serving.scoring import Scorer, scorer_for

logger = logging.getLogger(__name__)

PRODUCTION_STAGE = "Production"
# Error codes with which the registry reports a missing alias or registered model.
NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}


class RegistryError(RuntimeError):
    """The registry could not be reached or returned an error."""


@dataclass(frozen=True)
class ProductionVersion:
    """The model version that the registry names as Production."""

    name: str
    version: str
    stage: str
    aliases: tuple[str, ...]
    resolved_by: str
    run_id: str | None
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True)
class ServedModel:
    """A fully loaded model version. Requests keep the instance they started with."""

    info: schemas.ModelInfo
    scorer: Scorer
    folder: Path | None = None

    @property
    def version(self) -> str:
        return self.info.version


def _timestamp(milliseconds: int | None) -> datetime | None:
    if not milliseconds:
        return None
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC)


def _number(text: str | None) -> float | None:
    """Parse a version tag as a finite number; None when it is absent or not one."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class RegistrySource:
    """Finds and loads the Production version of one registered model."""

    def __init__(self, model_name: str, download_root: Path | None = None, client=None):
        import mlflow

        self.model_name = model_name
        self.client = client or mlflow.MlflowClient()
        self._own_root = download_root is None
        self.download_root = Path(download_root or tempfile.mkdtemp(prefix="dp-serving-"))

    @property
    def tracking_uri(self) -> str:
        return self.client.tracking_uri

    def find_production(self) -> ProductionVersion | None:
        """Return the version that the ``production`` alias names, else the latest one in
        the Production stage, or None when neither exists.

        Raises RegistryError when the registry cannot be reached or fails.
        """
        from mlflow.exceptions import MlflowException

        try:
            version = self._by_alias()
            resolved_by = "alias"
            if version is None:
                version = self._by_stage()
                resolved_by = "stage"
        except MlflowException as error:
            raise RegistryError(f"MLflow registry at {self.tracking_uri}: {error}") from error
        if version is None:
            return None
        return ProductionVersion(
            name=self.model_name,
            version=str(version.version),
            stage=version.current_stage or "None",
            aliases=tuple(version.aliases or ()),
            resolved_by=resolved_by,
            run_id=version.run_id or None,
            source=version.source,
            tags=dict(version.tags or {}),
            created_at=_timestamp(version.creation_timestamp),
        )

    def _by_alias(self):
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.model_name, PRODUCTION_ALIAS)
        except MlflowException as error:
            if error.error_code in NOT_FOUND_CODES:
                return None
            raise

    def _by_stage(self):
        from mlflow.exceptions import MlflowException

        try:
            with warnings.catch_warnings():
                # Stages are deprecated in MLflow 3 but still set by dp_pipeline.registry.
                warnings.simplefilter("ignore", FutureWarning)
                versions = self.client.get_latest_versions(self.model_name, [PRODUCTION_STAGE])
        except MlflowException as error:
            if error.error_code in NOT_FOUND_CODES:
                return None
            raise
        return max(versions, key=lambda version: int(version.version)) if versions else None

    def load(self, production: ProductionVersion) -> ServedModel:
        """Download and load the version, and score one record so that it is ready to serve."""
        import mlflow.pyfunc

        started = time.monotonic()
        folder = Path(tempfile.mkdtemp(prefix=f"v{production.version}-", dir=self.download_root))
        try:
            pyfunc_model = mlflow.pyfunc.load_model(
                f"models:/{production.name}/{production.version}", dst_path=str(folder)
            )
            scorer = scorer_for(pyfunc_model)
            # The first call traces the TensorFlow graph; do it before the swap.
            scorer.score({column: [value] for column, value in schemas.EXAMPLE_RECORD.items()})
            info = self._describe(production)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        logger.info(
            "Loaded %s version %s with the %s scorer in %.1f s",
            production.name,
            production.version,
            scorer.kind,
            time.monotonic() - started,
        )
        return ServedModel(info=info, scorer=scorer, folder=folder)

    def _describe(self, production: ProductionVersion) -> schemas.ModelInfo:
        metrics: dict[str, float] = {}
        started_at = None
        if production.run_id:
            run = self.client.get_run(production.run_id)
            metrics = dict(run.data.metrics)
            started_at = _timestamp(run.info.start_time)
        tags = production.tags

        def value(tag: str, metric: str) -> float | None:
            # registry.register copies these metrics into version tags; a version registered
            # by hand may have only the run's metrics.
            from_tag = _number(tags.get(tag))
            if from_tag is not None:
                return from_tag
            from_run = metrics.get(metric)
            return from_run if from_run is not None and math.isfinite(from_run) else None

        return schemas.ModelInfo(
            name=production.name,
            version=production.version,
            stage=production.stage,
            aliases=list(production.aliases),
            resolved_by=production.resolved_by,
            run_id=production.run_id,
            source=production.source,
            epsilon=value("epsilon", "epsilon"),
            delta=value("delta", "delta"),
            accuracy=value("accuracy", "test_accuracy"),
            roc_auc=value("roc_auc", "test_roc_auc"),
            training_date=started_at,
            registered_at=production.created_at,
            loaded_at=datetime.now(UTC),
        )

    def release(self, served: ServedModel) -> None:
        """Delete the files of a model that is no longer served.

        Safe while requests still use ``served``, because IncomeClassifier reads its Keras
        model and encoder into memory when it loads.
        NOTE: a pyfunc that reads its files lazily would fail after this; none does so yet.
        """
        if served.folder is not None:
            shutil.rmtree(served.folder, ignore_errors=True)

    def close(self) -> None:
        if self._own_root:
            shutil.rmtree(self.download_root, ignore_errors=True)
