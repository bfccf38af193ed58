"""Model families in one table (workers/engines/families.py): every catalogue entry's family
resolves to a real engine class, and a key whose family this version has no engine for is
one clear error, from the loaders and from `sightline models`."""

import os
from pathlib import Path

import pytest

from tests.conftest import sightline
from workers.engines import catalogue, families
from workers.engines.base import ModelUnavailable
from workers.engines.speech import load_speech_engine
from workers.engines.visual import load_visual_engine
from workers.models_admin import pull_model

LOADERS = {
    "speech": lambda key, base: load_speech_engine(key, base=base),
    "visual": lambda key, base: load_visual_engine(key, models_dir=base),
}


def test_every_catalogue_family_resolves_to_an_engine_class():
    for spec in catalogue.BUILTIN.values():
        row = catalogue.family_of(spec)
        assert row.kind == spec.kind
    for row in families.FAMILIES.values():
        engine = row.engine_class()
        assert isinstance(engine, type) and callable(engine.load), row.name
    assert {catalogue.family_of(s).engine_class().__name__ for s in catalogue.BUILTIN.values()} == {
        "TransformersVisualEngine", "FasterWhisperEngine", "DeepFaceEngine"}


@pytest.mark.parametrize("kind,missing,other_kind", [("speech", "whisper-small", "clip-vit-b32"),
                                                     ("visual", "clip-vit-b32", "whisper-base")])
def test_missing_and_unknown_models_say_how_to_fix(tmp_path, kind, missing, other_kind):
    load = LOADERS[kind]
    with pytest.raises(ModelUnavailable, match=f"sightline models pull {missing}"):
        load(missing, tmp_path)
    with pytest.raises(ValueError, match=f"unknown {kind} model 'no-such-model'"):
        load("no-such-model", tmp_path)
    with pytest.raises(ValueError, match=f"not a {kind} model"):
        load(other_kind, tmp_path)


def test_a_family_without_an_engine_is_one_clear_error(tmp_path):
    # A registry.json written by a newer sightline (or by hand) names a family this one lacks.
    models = tmp_path / "models"
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "model.gguf").write_bytes(b"weights")
    catalogue.register_import(catalogue.ModelSpec("future-whisper", catalogue.SPEECH, "whisper-cpp",
                                                  str(tmp_path / "checkpoint")), base=models)
    clear = r"model 'future-whisper': unknown speech model family 'whisper-cpp'; .*faster-whisper, openai-whisper"
    with pytest.raises(ValueError, match=clear):
        load_speech_engine("future-whisper", base=models)
    with pytest.raises(ValueError, match=clear):
        pull_model("future-whisper", models_dir=models)

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
           "SIGHTLINE_HOME": str(tmp_path / "home"), "SIGHTLINE_MODELS_DIR": str(models)}
    listing = sightline("models", "list", env=env).stdout.splitlines()
    row = next(line.split("\t") for line in listing if line.startswith("future-whisper\t"))
    assert row[1:4] == ["speech", "whisper-cpp", "-"]  # listed, never "downloaded": nothing can load it
    pulled = sightline("models", "pull", "future-whisper", env=env, check=False)
    assert pulled.returncode == 1
    assert "unknown speech model family 'whisper-cpp'" in pulled.stderr and "Traceback" not in pulled.stderr
