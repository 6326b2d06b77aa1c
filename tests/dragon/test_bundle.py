"""The bundle verifies every file: a changed byte, a missing or an extra file is refused."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from dragon.bundle import archive_bundle, load_bundle, verify_bundle
from dragon.errors import BundleError
from dragon.features import add_derived


@pytest.fixture()
def bundle_copy(trained_bundle, tmp_path):
    return shutil.copytree(trained_bundle, tmp_path / "bundle")


def test_trained_bundle_loads_with_six_models(loaded_bundle, small_plant):
    assert set(loaded_bundle.gams) == set(small_plant.models)
    assert set(loaded_bundle.detectors) == set(small_plant.detectors)
    assert loaded_bundle.spec.name == small_plant.name
    provenance = loaded_bundle.manifest.provenance
    assert len(provenance["data_sha256"]) == 64 and len(provenance["lock_sha256"]) == 64
    assert "git_commit" in provenance and "git_dirty" in provenance


def test_bundle_holds_no_pickle(trained_bundle):
    suffixes = {path.suffix for path in trained_bundle.rglob("*") if path.is_file()}
    assert suffixes <= {".json", ".npz", ".skops", ".toml"}


def test_one_changed_byte_is_refused(bundle_copy):
    target = next(bundle_copy.glob("gams/*.npz"))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match its sha256"):
        load_bundle(bundle_copy)


def test_missing_and_unlisted_files_are_refused(bundle_copy):
    (bundle_copy / "extra.txt").write_text("x")
    with pytest.raises(BundleError, match="unlisted file extra.txt"):
        verify_bundle(bundle_copy)
    (bundle_copy / "extra.txt").unlink()
    (bundle_copy / "metrics.json").unlink()
    with pytest.raises(BundleError, match="missing file metrics.json"):
        verify_bundle(bundle_copy)


def test_not_a_bundle_is_refused(tmp_path):
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="no bundle here"):
        load_bundle(tmp_path / "nowhere")


def test_model_tar_gz_round_trip_predicts_identically(trained_bundle, loaded_bundle, tmp_path):
    archived = load_bundle(archive_bundle(trained_bundle, tmp_path / "model.tar.gz"))
    for name, gam in loaded_bundle.gams.items():
        spec = loaded_bundle.spec
        state = add_derived({t: b.mean for t, b in loaded_bundle.baselines.items()}, spec.derived_features)
        X = np.array([[state[f] for f in spec.models[name].features]])
        assert archived.gams[name].predict(X) == pytest.approx(gam.predict(X), rel=1e-12)
