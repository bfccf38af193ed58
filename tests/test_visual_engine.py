"""The visual engine on tiny, randomly initialised CLIP / SigLIP / SigLIP2 checkpoints built
offline, going through the same import -> load -> embed path as a real checkpoint."""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import numpy as np
import pytest

from tests.tiny_models import build_tiny_clip, build_tiny_siglip, build_tiny_siglip2, empty_tokenizer_copy
from workers.engines import catalogue
from workers.engines.base import ModelUnavailable
from workers.engines.onnx_visual import int8_weight_type
from workers.engines.visual import (
    TokenizerError,
    TransformersVisualEngine,
    load_visual_engine,
    preprocess,
    read_image_prep,
    unload_visual_engines,
)
from workers.models_admin import PullError, import_model, list_models, pull_model

DATA = Path(__file__).resolve().parent / "data"
BUILDERS = {"tiny-clip": build_tiny_clip, "tiny-siglip": build_tiny_siglip, "tiny-siglip2": build_tiny_siglip2}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {key: build(root / key) for key, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, sources) -> Path:
    base = tmp_path_factory.mktemp("models")
    for key, source in sources.items():
        import_model(key, source, models_dir=base)
    yield base
    unload_visual_engines()


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Three real frames of different content (black, leaf, deer) and a portrait crop."""
    wanted, out = {0.0, 3.0, 10.0}, []
    with av.open(str(DATA / "testvideo.mp4")) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base)
            if any(abs(t - w) < 0.02 for w in wanted):
                out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == len(wanted):
                break
    out.append(np.ascontiguousarray(out[1][:, 500:800]))  # 720x300: taller than wide
    return out


def engine(key: str, models_dir: Path, runtime: str = "torch") -> TransformersVisualEngine:
    spec = catalogue.get_spec(key, models_dir)
    return TransformersVisualEngine(spec, catalogue.local_path(spec, models_dir), runtime=runtime)


def test_import_detects_each_family_and_lists_it(models_dir):
    rows = {row["key"]: row for row in list_models(models_dir)}
    for key, family in (("tiny-clip", "clip"), ("tiny-siglip", "siglip"), ("tiny-siglip2", "siglip2")):
        assert rows[key]["kind"] == "visual" and rows[key]["family"] == family
        assert rows[key]["downloaded"] is True
        assert Path(rows[key]["path"]) == models_dir / key
        assert (models_dir / key / "config.json").exists()
    assert rows["clip-vit-b32"]["downloaded"] is False  # built-in alias, not on this machine
    assert catalogue.get_spec("tiny-clip", models_dir).resolution == 32


@pytest.mark.parametrize("key", sorted(BUILDERS))
def test_engine_embeds_frames_and_texts_as_unit_rows(key, models_dir, frames):
    eng = load_visual_engine(key, models_dir=models_dir, runtime="torch")
    images = eng.embed_images(frames)
    assert images.shape == (len(frames), eng.dim) and images.dtype == np.float32
    assert np.linalg.norm(images, axis=1) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(eng.embed_images(frames), images)  # deterministic
    single = eng.embed_images(frames[1:2])  # batching does not change a frame's embedding
    assert float(single[0] @ images[1]) > 0.9999
    assert float(images[0] @ images[2]) < 0.9999  # black and deer frames differ
    texts = eng.embed_texts(["a dog on the beach", "A red car in the street", ""])
    assert texts.shape == (3, eng.dim) and texts.dtype == np.float32
    assert np.linalg.norm(texts, axis=1) == pytest.approx(1.0, abs=1e-5)
    assert float(texts[0] @ texts[1]) < 0.9999
    # Alone or padded in a batch, a text embeds the same (up to float rounding).
    assert float(eng.embed_texts(["a dog on the beach"])[0] @ texts[0]) > 0.99999
    assert eng.embed_images([]).shape == (0, eng.dim) and eng.embed_texts([]).shape == (0, eng.dim)


@pytest.mark.parametrize("key,family", [("tiny-clip", "clip"), ("tiny-siglip", "siglip")])
def test_own_preprocessing_matches_the_checkpoints_image_processor(key, family, models_dir, frames):
    from transformers import AutoImageProcessor

    folder = models_dir / key
    reference = AutoImageProcessor.from_pretrained(folder)(images=frames, return_tensors="np")["pixel_values"]
    ours = preprocess(frames, read_image_prep(folder, family))
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() < 1e-4


@pytest.mark.parametrize("key", ["tiny-clip", "tiny-siglip"])
def test_onnx_export_agrees_with_pytorch_and_is_reused(key, models_dir, frames):
    torch_engine = engine(key, models_dir, "torch")
    onnx_engine = engine(key, models_dir, "onnx")
    onnx_engine.load()
    assert onnx_engine.active_runtime == "onnx"
    exported = models_dir / key / "onnx" / "vision.onnx"
    record = json.loads((models_dir / key / "onnx" / "vision.json").read_text())
    assert exported.exists() and record["runtimes"]["onnx"]["min_cosine_vs_torch"] > 0.999
    cosines = np.sum(onnx_engine.embed_images(frames) * torch_engine.embed_images(frames), axis=1)
    assert cosines.min() > 0.99
    # A second load (another worker process) reuses the exports instead of redoing them.
    stamps = {p: p.stat().st_mtime_ns for p in (exported, exported.with_name("vision.int8.onnx"))}
    again = engine(key, models_dir, "auto")
    again.load()
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert again.active_runtime == record["runtime"]
    assert record["runtimes"][record["runtime"]]["agrees"]  # auto only picks an agreeing runtime


@pytest.mark.parametrize("key", ["tiny-clip", "tiny-siglip", "tiny-siglip2"])
def test_texts_run_on_onnx_when_it_agrees_with_pytorch(key, models_dir):
    texts = ["a", "a deer in the forest at dawn, seen from far away", "Numbers", "ein Hund"]
    reference = engine(key, models_dir, "torch").embed_texts(texts)
    fast = engine(key, models_dir, "onnx")
    fast.load()
    assert fast.text_runtime == "onnx"
    record = json.loads((models_dir / key / "onnx" / "text.json").read_text())
    assert record["agrees"] and record["min_cosine"] > 0.9999
    batched = fast.embed_texts(texts)
    assert np.sum(batched * reference, axis=1).min() > 0.9999
    alone = np.stack([fast.embed_texts([text])[0] for text in texts])
    assert np.abs(alone - batched).max() < 1e-5  # a text's vector does not depend on its batch


def test_a_text_export_that_disagrees_leaves_texts_on_pytorch(tmp_path, sources):
    import_model("text-check", sources["tiny-clip"], models_dir=tmp_path)
    first = engine("text-check", tmp_path, "onnx")
    first.load()
    record_path = tmp_path / "text-check" / "onnx" / "text.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "agrees": False, "min_cosine": 0.5}))
    second = engine("text-check", tmp_path, "auto")
    second.load()
    assert second.text_runtime == "torch"
    assert engine("text-check", tmp_path, "torch").embed_texts(["a dog"]) @ second.embed_texts(["a dog"])[0] > 0.9999


@pytest.mark.parametrize("key", ["tiny-clip", "tiny-siglip"])
def test_int8_export_is_used_when_it_agrees_with_pytorch(key, models_dir, frames):
    int8 = engine(key, models_dir, "onnx-int8")
    int8.load()
    assert int8.active_runtime == "onnx-int8"
    assert (models_dir / key / "onnx" / "vision.int8.onnx").exists()
    checked = int8.onnx_meta["runtimes"]["onnx-int8"]
    assert checked["agrees"] and checked["min_cosine_vs_torch"] >= 0.99
    # On real frames (not the synthetic calibration batch) int8 embeddings still agree with
    # PyTorch's, and frame-to-frame similarities (what /search/image ranks by) barely move.
    ours, reference = int8.embed_images(frames), engine(key, models_dir, "torch").embed_images(frames)
    assert np.linalg.norm(ours, axis=1) == pytest.approx(1.0, abs=1e-5)
    assert np.sum(ours * reference, axis=1).min() >= 0.99
    assert np.abs(ours @ ours.T - reference @ reference.T).max() < 0.02


def _clip_with_activation_outlier(folder: Path) -> Path:
    """A tiny CLIP whose MLPs carry one huge hidden activation that their output ignores.

    Trained ViTs have such outlier channels; int8 activations quantized per tensor then
    lose the small channels that carry the meaning, while float32 is unaffected.
    """
    import torch
    from transformers import CLIPModel

    build_tiny_clip(folder)
    model = CLIPModel.from_pretrained(folder)
    with torch.no_grad():
        for layer in model.vision_model.encoder.layers:
            layer.mlp.fc1.bias[0] = 1000.0
            layer.mlp.fc2.weight[:, 0] = 0.0
    model.save_pretrained(folder)
    return folder


def test_int8_is_refused_when_it_disagrees_with_pytorch(tmp_path, frames):
    import_model("outlier-clip", _clip_with_activation_outlier(tmp_path / "src"), models_dir=tmp_path)
    asked = engine("outlier-clip", tmp_path, "onnx-int8")
    asked.load()
    assert asked.active_runtime == "onnx"  # float32 instead
    checked = asked.onnx_meta["runtimes"]["onnx-int8"]
    assert not checked["agrees"] and checked["min_cosine_vs_torch"] < 0.99
    reference = engine("outlier-clip", tmp_path, "torch").embed_images(frames)
    assert np.sum(asked.embed_images(frames) * reference, axis=1).min() > 0.999
    auto = engine("outlier-clip", tmp_path, "auto")
    auto.load()
    assert auto.active_runtime in ("onnx", "torch")


def test_a_record_from_another_machine_is_timed_again_without_exporting_again(tmp_path, sources):
    import_model("moved", sources["tiny-siglip"], models_dir=tmp_path)
    engine("moved", tmp_path, "auto").load()
    folder = tmp_path / "moved" / "onnx"
    record = json.loads((folder / "vision.json").read_text())
    (folder / "vision.json").write_text(json.dumps(record | {"machine": "another CPU x64"}))
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.onnx")}
    engine("moved", tmp_path, "auto").load()
    assert json.loads((folder / "vision.json").read_text())["machine"] == record["machine"]
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.onnx")} == stamps


def test_int8_weights_follow_the_cpu_and_a_foreign_quantization_is_redone(tmp_path, sources):
    """Signed int8 weights saturate without VNNI (measured: agreement 0.93 on an AVX2
    Haswell), so a machine re-quantizes an export another kind of CPU made."""
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    vnni = bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags.split(":", 1)[1].split()))
    assert int8_weight_type() == ("s8" if vnni else "u8")
    import_model("shared", sources["tiny-clip"], models_dir=tmp_path)
    engine("shared", tmp_path, "auto").load()
    folder = tmp_path / "shared" / "onnx"
    record = json.loads((folder / "vision.json").read_text())
    assert record["int8_weights"] == int8_weight_type() and record["runtimes"]["onnx-int8"]["agrees"]
    other = "u8" if int8_weight_type() == "s8" else "s8"
    (folder / "vision.json").write_text(json.dumps(record | {"machine": "another CPU x64", "int8_weights": other}))
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.onnx")}
    engine("shared", tmp_path, "auto").load()
    assert json.loads((folder / "vision.json").read_text())["int8_weights"] == int8_weight_type()
    now = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.onnx")}
    assert now["vision.onnx"] == stamps["vision.onnx"] and now["vision.int8.onnx"] != stamps["vision.int8.onnx"]


def test_a_replaced_checkpoint_is_exported_again(tmp_path, sources):
    import_model("re-export", sources["tiny-clip"], models_dir=tmp_path)
    first = engine("re-export", tmp_path, "onnx")
    first.load()
    old = json.loads((tmp_path / "re-export" / "onnx" / "vision.json").read_text())
    build_tiny_clip(tmp_path / "retrained", seed=7)
    import_model("re-export", tmp_path / "retrained", models_dir=tmp_path)
    second = engine("re-export", tmp_path, "onnx")
    second.load()
    new = json.loads((tmp_path / "re-export" / "onnx" / "vision.json").read_text())
    assert new["fingerprint"] != old["fingerprint"]
    image = [np.full((40, 60, 3), 128, dtype=np.uint8)]
    assert float(second.embed_images(image)[0] @ engine("re-export", tmp_path).embed_images(image)[0]) > 0.99


def test_an_empty_tokenizer_is_refused(tmp_path, sources):
    broken = empty_tokenizer_copy(sources["tiny-clip"], tmp_path / "broken")
    with pytest.raises(ModelUnavailable, match="vocabulary|no known tokens"):
        import_model("broken-clip", broken, models_dir=tmp_path / "models")
    assert catalogue.get_spec("broken-clip", tmp_path / "models") is None
    assert not (tmp_path / "models" / "broken-clip").exists()
    spec = catalogue.ModelSpec("broken-clip", catalogue.VISUAL, "clip", "import:x")
    with pytest.raises(TokenizerError, match="sightline models"):
        TransformersVisualEngine(spec, broken).load()


def test_bad_frames_are_refused_with_a_clear_message(models_dir):
    eng = load_visual_engine("tiny-clip", models_dir=models_dir, runtime="torch")
    with pytest.raises(ValueError, match="image 1: expected uint8"):
        eng.embed_images([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match="HxWx3"):
        eng.embed_images([np.zeros((8, 8, 5), np.uint8)])
    with pytest.raises(ValueError, match="list of strings"):
        eng.embed_texts("a dog")


def test_pull_fails_fast_with_the_import_alternative_when_the_hub_is_unreachable(tmp_path, monkeypatch):
    # The hub is made unreachable here (a closed local port), so the test means the same on a
    # machine with internet access, where it would otherwise download the checkpoint.
    from tests.conftest import free_port

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(proxy, raising=False)
    started = time.monotonic()
    with pytest.raises(PullError, match="sightline models import clip-vit-b32"):
        pull_model("clip-vit-b32", progress=False, models_dir=tmp_path)
    assert time.monotonic() - started < 20
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PullError, match="HF_HUB_OFFLINE"):
        pull_model("v2-medium-256", progress=False, models_dir=tmp_path)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no half-pulled folder left
    with pytest.raises(ValueError, match="unknown model"):
        pull_model("nope", models_dir=tmp_path)


def test_import_refuses_what_is_not_a_checkpoint(tmp_path):
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="CLIP, SigLIP or SigLIP2"):
        import_model("bert", bert, models_dir=tmp_path / "models")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(ValueError, match="not an openai-whisper"):
        import_model("notes", notes, models_dir=tmp_path / "models")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="not a loadable openai-whisper"):
        import_model("corrupt", corrupt, models_dir=tmp_path / "models")
    with pytest.raises(ValueError, match="model key"):
        import_model("../escape", bert, models_dir=tmp_path / "models")
    with pytest.raises(ValueError, match="built-in visual model"):
        import_model("clip-vit-b32", corrupt, models_dir=tmp_path / "models")


def test_import_speech_checkpoints(tmp_path):
    import torch

    checkpoint = tmp_path / "tiny.pt"
    torch.save({"dims": {"n_mels": 80}, "model_state_dict": {"w": torch.zeros(2)}}, checkpoint)
    spec = import_model("my-whisper-pt", checkpoint, models_dir=tmp_path / "models")
    assert (spec.kind, spec.family) == ("speech", "openai-whisper")
    assert catalogue.is_downloaded(spec, tmp_path / "models")
    ct2 = catalogue.local_path(catalogue.BUILTIN["whisper-tiny.en"])
    if not (ct2 / "model.bin").exists():
        pytest.skip("the whisper-tiny.en package is not installed")
    spec = import_model("my-whisper", ct2, models_dir=tmp_path / "models")
    assert (spec.kind, spec.family, spec.multilingual) == ("speech", "faster-whisper", True)
    assert (tmp_path / "models" / "my-whisper" / "model.bin").exists()


@pytest.mark.parametrize("key", ["tiny-clip", "tiny-siglip"])
def test_the_export_writes_patch_embeddings_as_a_matmul_and_leaves_the_model_as_it_was(key, sources, tmp_path):
    import onnx
    import torch
    from transformers import AutoModel

    from workers.engines.onnx_visual import OnnxVision, export_vision, quantize_vision, vision_tower

    model = AutoModel.from_pretrained(sources[key]).eval()
    resolution = model.config.vision_config.image_size
    pixels = torch.from_numpy(np.random.default_rng(3).normal(size=(3, 3, resolution, resolution)).astype(np.float32))
    with torch.no_grad():
        before = vision_tower(model)(pixels).numpy()
    folder = tmp_path / key
    (folder / "onnx").mkdir(parents=True)
    exported = export_vision(model, folder, resolution)
    ops = {node.op_type for node in onnx.load(str(exported)).graph.node}
    assert "Conv" not in ops  # the patch embedding is a MatMul, so int8 quantizes it too
    int8_ops = {node.op_type for node in onnx.load(str(quantize_vision(folder))).graph.node}
    assert "Conv" not in int8_ops
    with torch.no_grad():
        after = vision_tower(model)(pixels).numpy()
    assert isinstance(model.vision_model.embeddings.patch_embedding, torch.nn.Conv2d)
    np.testing.assert_array_equal(after, before)  # the PyTorch model itself is untouched
    assert np.sum(OnnxVision(exported)(pixels.numpy()) * before, axis=1).min() > 0.99999
