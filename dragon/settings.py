"""Settings: flags first, then `DRAGON_*` environment variables, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    tracking_uri: str
    #: Where experiments store their artifacts (bundles, reports): a folder under the home, or on AWS
    #: an s3:// prefix in the project's bucket, so that they outlive the process that wrote them.
    artifact_uri: str = ""

    @property
    def artifact_root(self) -> str:
        return (self.artifact_uri or (self.home / "artifacts").as_uri()).rstrip("/")

    @property
    def events_dir(self) -> Path:
        """Where the embedded default drops events that EventBridge would carry on AWS."""
        return self.home / "events"

    @property
    def capture_dir(self) -> Path:
        return self.home / "capture"


def load_settings(home: str | Path | None = None, tracking_uri: str | None = None) -> Settings:
    home_path = Path(home or os.environ.get("DRAGON_HOME", ".dragon")).resolve()
    uri = tracking_uri or os.environ.get("DRAGON_TRACKING_URI") or f"sqlite:///{home_path / 'mlflow.db'}"
    artifacts = os.environ.get("DRAGON_ARTIFACT_URI", "")
    return Settings(home=home_path, tracking_uri=uri, artifact_uri=artifacts)
