"""Quality floors: the verdict from hold-out figures, and what the registry and the deploy step do with it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dragon.calibration import Calibration, ModelCalibration
from dragon.spec import load_plant
from training.detectors import GateMetrics
from training.evaluation import GamMetrics
from training.quality import judge_quality

FLOORS = """
[quality]
r2 = 0.2
rmse_ratio = 1.5
coverage = 0.8
gate_recall = 0.9
false_alarm = 0.02

[quality.models.yield]
r2 = -0.5
"""


def _plant(tmp_path, floors: str = FLOORS):
    import re
    from importlib import resources

    text = resources.files("dragon.plants").joinpath("yet_dragon.toml").read_text()
    path = tmp_path / "plant.toml"
    path.write_text(re.sub(r"(?m)^\[quality\]\n(?:(?!\[).*\n?)*", "", text) + floors)
    return load_plant(path)


def _metrics(r2: float, rmse: float = 1.0, persistence: float = 1.0) -> GamMetrics:
    # pygam's raw interval coverage (0.3) is not what the floor judges: the calibrated one is
    return GamMetrics(rmse, rmse, r2, None, 100, 0.3, rmse, 0.0, persistence)


def _calibration(spec, **coverage: float) -> Calibration:
    """A calibration whose calibrated coverage is 0.95 for every model but those named."""
    return Calibration(
        models={
            name: ModelCalibration(
                interval_scale=1.0,
                covariance_scale=1.0,
                residual_autocorrelation=0.0,
                state_residual_sd=1.0,
                coverage_raw=0.3,
                coverage_calibrated=coverage.get(name, 0.95),
                holdout_rows=100,
            )
            for name in spec.models
        },
        measurement_noise={},
    )


def _gate(recall: float | None, false_alarms: float) -> GateMetrics:
    return GateMetrics(recall, {}, false_alarms, 100, 90, 0, {}, {})


def test_a_figure_below_its_floor_fails_naming_model_figure_and_floor(tmp_path):
    spec = _plant(tmp_path)
    good = {name: _metrics(0.9) for name in spec.models}
    assert judge_quality(spec, good, _gate(0.95, 0.01), _calibration(spec)).passed

    bad = good | {"concentration": _metrics(-1.32), "oxidation_1": _metrics(0.9, rmse=2.0)}
    verdict = judge_quality(spec, bad, _gate(0.5, 0.03), _calibration(spec, oxidation_1=0.5))
    assert not verdict.passed
    assert verdict.failures == [
        "oxidation_1: hold-out RMSE 2 is 2 x naive persistence's 1 > floor 1.5 x",
        "oxidation_1: calibrated 95 % interval coverage 50.0% on the hold-out < floor 80%",
        "concentration: hold-out R² -1.32 < floor 0.2",
        "gate: recall 50.0% of process-episode rows < floor 90%",
        "gate: false alarms 3.00% of normal rows > floor 2.0%",
    ]


def test_a_model_s_own_floor_replaces_the_common_one_key_by_key(tmp_path):
    spec = _plant(tmp_path)
    assert spec.quality.for_model("yield").r2 == -0.5
    assert spec.quality.for_model("yield").coverage == 0.8
    metrics = {name: _metrics(0.9) for name in spec.models} | {"yield": _metrics(-0.3)}
    assert judge_quality(
        spec, metrics, _gate(None, 0.0), _calibration(spec)
    ).passed  # no episode in the hold-out: recall unjudged


def test_a_floor_for_an_unknown_model_is_a_spec_error(tmp_path):
    from dragon.errors import SpecError

    with pytest.raises(SpecError, match=r"\[quality.models.yeild\]: unknown model 'yeild'"):
        _plant(tmp_path, "[quality.models.yeild]\nr2 = 0.1\n")


@pytest.fixture()
def below_floor_bundle(tmp_path, loaded_bundle):
    """The trained bundle, rewritten with a verdict that it fails a floor."""
    from dragon.bundle import write_bundle
    from dragon.provenance import Provenance

    verdict = {"passed": False, "failures": ["concentration: hold-out R² -1.32 < floor 0"]}
    return write_bundle(
        tmp_path / "below_floor",
        spec=loaded_bundle.spec,
        gams=loaded_bundle.gams,
        detectors=loaded_bundle.detectors,
        baselines=loaded_bundle.baselines,
        metrics={**loaded_bundle.metrics, "quality": verdict},
        calibration=loaded_bundle.calibration,
        provenance=Provenance(**loaded_bundle.manifest.provenance),
    )


def test_a_version_below_a_floor_is_registered_rejected_and_never_leads(
    dragon_home, trained_bundle, below_floor_bundle
):
    from deploy import steps
    from dragon.errors import RegistryError
    from dragon.registry import get_version, list_versions, set_alias
    from dragon.settings import load_settings

    settings = load_settings()
    rejected = steps.register(steps.RegisterInput(str(below_floor_bundle), "yet-dragon"), settings)
    assert (rejected.approval, rejected.promote) == ("rejected", False)
    info = get_version(settings, "yet-dragon", rejected.version)
    assert info.tags["quality"] == "rejected" and "R² -1.32" in info.tags["quality.failures"]
    assert info.tags["approval.reason"].startswith("quality: ")
    assert info.aliases == []  # the first version, yet not the champion
    with pytest.raises(RegistryError, match="cannot be approved"):
        steps.set_approval(steps.ApprovalInput("yet-dragon", rejected.version, "approved"), settings)
    with pytest.raises(RegistryError, match="cannot become the champion"):
        set_alias(settings, "yet-dragon", "champion", rejected.version)

    good = steps.register(steps.RegisterInput(str(trained_bundle), "yet-dragon"), settings)
    assert get_version(settings, "yet-dragon").version == good.version  # the one that passes leads
    assert {v.version: v.tags["quality"] for v in list_versions(settings, "yet-dragon")} == {
        rejected.version: "rejected",
        good.version: "passed",
    }


def test_deploy_refuses_a_version_below_a_floor_unless_forced_with_a_logged_reason(
    dragon_home, trained_bundle, below_floor_bundle
):
    import json

    from deploy import steps
    from dragon.errors import RegistryError
    from dragon.registry import get_version
    from dragon.settings import load_settings

    settings = load_settings()
    good = steps.register(steps.RegisterInput(str(trained_bundle), "yet-dragon"), settings)
    rejected = steps.register(steps.RegisterInput(str(below_floor_bundle), "yet-dragon"), settings)
    result = subprocess.run(
        [sys.executable, "-m", "dragon.cli", "pipeline", "deploy", "--version", rejected.version],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "rejected: quality" in result.stderr and "--force-reason" in result.stderr
    with pytest.raises(RegistryError, match="rejected: quality"):
        steps.resolve_version(steps.ResolveInput("yet-dragon", "dev", rejected.version), settings)

    forced = steps.ResolveInput("yet-dragon", "dev", rejected.version, force_reason="lab confirms the model")
    assert steps.resolve_version(forced, settings).version == rejected.version
    steps.tag_deployment(steps.TagInput("yet-dragon", rejected.version, "dev"), settings)
    info = get_version(settings, "yet-dragon", rejected.version)
    assert json.loads(info.tags["quality.override"]) == {
        "env": "dev",
        "reason": "lab confirms the model",
        "failures": "concentration: hold-out R² -1.32 < floor 0",
    }
    assert info.tags["deployed.dev"] == "true"
    assert get_version(settings, "yet-dragon").version == good.version  # deployed, yet not the champion
