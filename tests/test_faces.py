"""Faces below HTTP: the real dlib engine on real photos, the packed job store, hdbscan
clustering, and the operations behind the Face Clustering endpoints.

Photos: tests/data/faces (26 images of 4 people with labels.csv, a couple, a crowd); see
tests/data/README.md. Weights come from the face-recognition-models package, offline.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workers.engines.base import Face, ModelUnavailable
from workers.engines.faces import (
    DLIB_LANDMARKS_FILE,
    DLIB_RECOGNIZER_FILE,
    DeepFaceEngine,
    load_image_rgb,
    prepare_weights,
)
from workers.faces import service
from workers.faces.clustering import ClusterParams, cluster_embeddings
from workers.faces.storage import MAX_SEGMENTS, CorruptJob, read_job
from workers.store import hash_file

FACES = Path(__file__).resolve().parent / "data" / "faces"
JOB = "Four People"


@pytest.fixture(scope="module")
def deepface_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("deepface-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEEPFACE_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def engine(deepface_home) -> DeepFaceEngine:
    engine = DeepFaceEngine("dlib", "Dlib")
    engine.load()
    return engine


@pytest.fixture(scope="module")
def labelled(engine) -> list[tuple[str, str, str, list[Face]]]:
    """(file name, person, media hash, faces) for the 26 labelled photos."""
    with open(FACES / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [(row["filename"], row["person"], hash_file(FACES / row["filename"]),
             engine.detect(load_image_rgb(FACES / row["filename"]))) for row in rows]


@pytest.fixture()
def people_job(tmp_path, labelled) -> Path:
    """A cache_dir with the labelled photos stored in JOB (not clustered yet)."""
    for _, _, media_hash, faces in labelled:
        service.add_faces(tmp_path, JOB, media_hash, [(0.0, face) for face in faces], model="Dlib")
    return tmp_path


def pairwise_precision_recall(truth: list[str], predicted: list[int]) -> tuple[float, float]:
    tp = fp = fn = 0
    for i, j in itertools.combinations(range(len(truth)), 2):
        same = truth[i] == truth[j]
        together = predicted[i] == predicted[j] and predicted[i] != -1
        tp += same and together
        fp += together and not same
        fn += same and not together
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1)


def person_of_faces(cache_dir: Path, labelled) -> tuple[list[str], list[int]]:
    """Truth and predicted cluster per stored face, through the public cluster_faces call."""
    person_by_hash = {media_hash: person for _, person, media_hash, _ in labelled}
    jobs = service.list_jobs(cache_dir)["jobs"]
    cluster_ids = jobs[0]["cluster_ids"] + ["noise"]
    page = service.cluster_faces(cache_dir, JOB, cluster_ids, limit=2000)
    truth = [person_by_hash[f["media_hash"]] for f in page["faces"]]
    ids = {cid: n for n, cid in enumerate(cluster_ids[:-1])}
    predicted = [ids.get(f["cluster_id"], -1) for f in page["faces"]]
    return truth, predicted


# --- engine ---------------------------------------------------------------------------------


def test_packaged_dlib_weights_are_placed_offline_idempotently(deepface_home, engine):
    folder = prepare_weights(deepface_home)
    prepare_weights(deepface_home)  # a second worker start changes nothing
    for name in (DLIB_RECOGNIZER_FILE, DLIB_LANDMARKS_FILE):
        assert (folder / name).is_file()
        assert (folder / name).stat().st_size > 1_000_000
    assert folder == deepface_home / ".deepface" / "weights"
    assert engine.dim == 128


def test_weights_go_under_sightline_home_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPFACE_HOME", raising=False)
    monkeypatch.setenv("SIGHTLINE_HOME", str(tmp_path / "home"))
    folder = prepare_weights()
    assert folder == tmp_path / "home" / "deepface" / ".deepface" / "weights"
    assert (folder / DLIB_RECOGNIZER_FILE).is_file()
    assert os.environ["DEEPFACE_HOME"] == str(tmp_path / "home" / "deepface")


def test_a_model_without_weights_is_a_clear_error_naming_the_file(deepface_home):
    with pytest.raises(ModelUnavailable) as error:
        DeepFaceEngine("dlib", "ArcFace").load()
    message = str(error.value)
    assert "arcface_weights.pth" in message
    assert str(deepface_home / ".deepface" / "weights") in message
    with pytest.raises(ModelUnavailable, match="NoSuchModel"):
        DeepFaceEngine("dlib", "NoSuchModel").load()


def test_couple_photo_gives_two_embedded_faces_with_crops(engine):
    faces = engine.detect(load_image_rgb(FACES / "couple.jpg"))
    assert len(faces) == 2
    (ax, ay, aw, ah), (bx, by, bw, bh) = (f.box for f in faces)
    assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay, "the two boxes overlap"
    for face in faces:
        assert face.embedding.shape == (128,) and face.embedding.dtype == np.float32
        assert abs(float(np.linalg.norm(face.embedding)) - 1.0) < 1e-4
        assert 0.0 < face.score <= 1.0
        crop = Image.open(io.BytesIO(face.crop_jpeg))
        assert crop.format == "JPEG" and max(crop.size) <= 112
    # two different people: further apart than the model's same-person distance
    assert float(np.linalg.norm(faces[0].embedding - faces[1].embedding)) > engine.match_threshold


def test_big_photo_boxes_are_in_original_pixels(engine):
    big = load_image_rgb(FACES / "img49.jpg")
    assert max(big.shape[:2]) > 4000
    faces = engine.detect(big)
    assert len(faces) == 1
    half = np.asarray(Image.fromarray(big).resize((big.shape[1] // 2, big.shape[0] // 2)))
    (x, y, w, h), (hx, hy, hw, hh) = faces[0].box, engine.detect(half)[0].box
    assert x + w <= big.shape[1] and y + h <= big.shape[0]
    for full, halved in ((x, hx), (y, hy), (w, hw), (h, hh)):
        assert abs(full - 2 * halved) <= 0.05 * w
    # the same face at two resolutions is the same person
    assert float(np.linalg.norm(faces[0].embedding - engine.detect(half)[0].embedding)) < 0.2


def test_webp_named_jpg_is_decoded_by_content(engine):
    assert Image.open(FACES / "img47.jpg").format == "WEBP"
    assert len(engine.detect(load_image_rgb(FACES / "img47.jpg"))) == 1


def test_crowd_photo_keeps_only_faces_of_the_minimum_size(engine):
    # What bounds the time on a crowd is that faces below min_face_px are never looked for;
    # the seconds themselves depend on the CPU (bench/faces.py measures them).
    image = load_image_rgb(FACES / "crowd_retinaface_img3.jpg")
    started = time.monotonic()
    faces = engine.detect(image)
    print(f"crowd: {len(faces)} faces of at least {engine.min_face_px}px in {time.monotonic() - started:.2f}s")
    assert faces
    assert all(min(f.box[2], f.box[3]) >= engine.min_face_px for f in faces)


def test_bad_images_are_rejected_clearly(engine, tmp_path):
    with pytest.raises(ValueError, match="RGB"):
        engine.detect(np.zeros((100, 100), dtype=np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot decode"):
        load_image_rgb(tmp_path / "broken.jpg")


# --- clustering the labelled photos ----------------------------------------------------------


def test_four_people_cluster_into_four_people(people_job, labelled):
    assert all(len(faces) == 1 for _, _, _, faces in labelled), "every labelled photo shows one face"
    summary = service.cluster_job(people_job, JOB, min_samples=3)
    truth, predicted = person_of_faces(people_job, labelled)
    precision, recall = pairwise_precision_recall(truth, predicted)
    print(f"default eps, min_samples=3: {summary['num_clusters']} clusters, "
          f"pairwise precision {precision:.3f} recall {recall:.3f}")
    assert summary["num_clusters"] == 4
    assert precision >= 0.95 and recall >= 0.9
    assert sorted(summary["cluster_media_hashes"]) == sorted(h for _, _, h, _ in labelled)

    # Jumper's defaults (eps 0.48, 5 faces per cluster) suit them as well: the smallest
    # person has exactly 5 photos.
    service.cluster_job(people_job, JOB, eps=0.48, min_samples=5)
    precision, recall = pairwise_precision_recall(*person_of_faces(people_job, labelled))
    print(f"eps 0.48, min_samples=5: pairwise precision {precision:.3f} recall {recall:.3f}")
    assert precision >= 0.95 and recall >= 0.9


def test_auto_detected_params_also_find_the_people(people_job, labelled):
    summary = service.cluster_job(people_job, JOB, auto_detect_params=True)
    precision, recall = pairwise_precision_recall(*person_of_faces(people_job, labelled))
    print(f"auto: eps {summary['eps']} min_samples {summary['min_samples']} validity "
          f"{summary['relative_validity']:.3f}: precision {precision:.3f} recall {recall:.3f}")
    assert precision >= 0.95 and recall >= 0.9
    stored = service.list_jobs(people_job)["jobs"][0]
    assert stored["num_clusters"] == summary["num_clusters"]


def test_a_job_showing_one_person_is_one_cluster(tmp_path, labelled):
    one = [(media_hash, faces) for _, person, media_hash, faces in labelled if person == "person_01"]
    for media_hash, faces in one:
        service.add_faces(tmp_path, "Interview", media_hash, [(0.0, f) for f in faces], model="Dlib")
    summary = service.cluster_job(tmp_path, "Interview", min_samples=3)
    assert summary["num_clusters"] == 1 and summary["noise_entries"] == 0
    assert summary["total_entries"] == len(one) == 8


def test_recluster_keeps_ids_and_names_then_clear_names_drops_names(people_job):
    first = service.cluster_job(people_job, JOB, min_samples=3)
    names = {cid: f"Person {n}" for n, cid in enumerate(first["cluster_ids"])}
    result = service.set_names(people_job, JOB, [{"cluster_id": c, "name": n} for c, n in names.items()])
    assert result == {"updated": 4, "changes": names}

    again = service.cluster_job(people_job, JOB, eps=0.45, min_samples=3)  # barely different
    assert set(again["cluster_ids"]) == set(names)
    samples = service.cluster_samples(people_job, JOB, limit_per_cluster=1)
    assert {c["cluster_id"]: c["name"] for c in samples["clusters"]} == names

    cleared = service.cluster_job(people_job, JOB, eps=0.45, min_samples=3, clear_names=True)
    assert set(cleared["cluster_ids"]) == set(names)
    samples = service.cluster_samples(people_job, JOB)
    assert all(c["name"] is None for c in samples["clusters"])


def test_progress_is_reported_up_to_done(people_job):
    seen = []
    service.cluster_job(people_job, JOB, progress=seen.append)
    assert seen and seen[-1] == 1.0
    assert all(0.0 <= a <= b <= 1.0 for a, b in itertools.pairwise(seen))


# --- reading endpoints -----------------------------------------------------------------------


def test_list_jobs_and_samples_have_jumpers_shape(people_job):
    service.cluster_job(people_job, JOB, min_samples=3)
    listing = service.list_jobs(people_job)
    assert listing["cluster_jobs"] == [JOB]
    job = listing["jobs"][0]
    assert set(job) == {"name", "total_entries", "num_clusters", "noise_entries", "cluster_ids",
                        "face_storage_version", "media_hashes"}
    assert job["face_storage_version"] == 2 and job["total_entries"] == 26 and len(job["media_hashes"]) == 26

    body = service.cluster_samples(people_job, JOB, limit_per_cluster=4, min_cluster_size=6, max_clusters=1,
                                   include_noise=True)
    assert set(body) == {"cluster_job_name", "num_clusters", "num_clusters_after_filter", "total_entries",
                         "clusters"}
    assert body["num_clusters"] == 4 and body["total_entries"] == 26
    assert body["num_clusters_after_filter"] == 3  # the 5-photo person is filtered out
    biggest, noise = body["clusters"]
    assert biggest["size"] == 8 and len(biggest["sample_faces"]) == 4
    assert noise["cluster_id"] == "noise" and noise["size"] == job["noise_entries"]
    assert Image.open(io.BytesIO(base64.b64decode(biggest["sample_faces"][0]))).format == "JPEG"
    json.dumps(body)  # JSON-ready as it is


def test_cluster_faces_pages_through_every_face(people_job):
    ids = service.cluster_job(people_job, JOB, min_samples=3)["cluster_ids"]
    whole = service.cluster_faces(people_job, JOB, ids, limit=2000)
    assert whole["total"] == 26 and len(whole["faces"]) == 26
    pages = [service.cluster_faces(people_job, JOB, ids, limit=5, offset=o)["faces"] for o in range(0, 26, 5)]
    assert [f["face_id"] for page in pages for f in page] == [f["face_id"] for f in whole["faces"]]
    face = whole["faces"][0]
    assert set(face) == {"face_id", "cluster_id", "name", "media_hash", "time_seconds", "frame_idx", "box",
                         "score", "image"}
    with pytest.raises(ValueError, match="2000"):
        service.cluster_faces(people_job, JOB, ids, limit=2001)
    with pytest.raises(service.UnknownCluster):
        service.cluster_faces(people_job, JOB, ["not-a-cluster"])


def test_unknown_jobs_raise_unknown_job(tmp_path):
    calls = [
        lambda: service.cluster_job(tmp_path, "nope"),
        lambda: service.cluster_samples(tmp_path, "nope"),
        lambda: service.cluster_faces(tmp_path, "nope", ["x"]),
        lambda: service.set_names(tmp_path, "nope", []),
        lambda: service.modify(tmp_path, "nope", [], []),
        lambda: service.people_frames(tmp_path, [{"cluster_job_name": "nope", "person_name": "A"}]),
    ]
    for call in calls:
        with pytest.raises(service.UnknownJob):
            call()
    assert service.list_jobs(tmp_path) == {"cluster_jobs": [], "jobs": []}


# --- editing ---------------------------------------------------------------------------------


def job_state(cache_dir: Path) -> tuple[int, list[int], list[str], dict]:
    data = read_job(cache_dir, JOB)
    return data.meta["generation"], data.labels.tolist(), list(data.label_uuids), data.meta["clusters"]


def test_names_with_an_unknown_cluster_change_nothing(people_job):
    ids = service.cluster_job(people_job, JOB, min_samples=3)["cluster_ids"]
    before = job_state(people_job)
    with pytest.raises(service.UnknownCluster, match="ghost"):
        service.set_names(people_job, JOB, [{"cluster_id": ids[0], "name": "A"}, {"cluster_id": "ghost", "name": "B"}])
    assert job_state(people_job) == before


def test_invalid_modify_requests_change_nothing(people_job):
    ids = service.cluster_job(people_job, JOB, min_samples=3)["cluster_ids"]
    face_id = service.cluster_faces(people_job, JOB, [ids[0]])["faces"][0]["face_id"]
    before = job_state(people_job)
    bad_requests = [
        # the first merge is valid, the second names a missing cluster
        ({"merges": [{"cluster_ids": [ids[1]], "target_cluster_id": ids[0]},
                     {"cluster_ids": ["ghost"], "target_cluster_id": ids[0]}]}, service.UnknownCluster),
        # a cluster merged away cannot be a target afterwards
        ({"merges": [{"cluster_ids": [ids[1]], "target_cluster_id": ids[0]},
                     {"cluster_ids": [ids[2]], "target_cluster_id": ids[1]}]}, service.UnknownCluster),
        # valid merges and a move of a face that does not exist
        ({"merges": [{"cluster_ids": [ids[1]], "target_cluster_id": ids[0]}],
          "moves": [{"face_ids": [face_id, 999_999], "target_cluster_id": ids[2]}]}, service.UnknownFace),
        ({"moves": [{"face_ids": [face_id], "target_cluster_id": "ghost"}]}, service.UnknownCluster),
        ({"moves": [{"face_ids": "1", "target_cluster_id": ids[0]}]}, ValueError),
        ({"merges": [{"cluster_ids": [], "target_cluster_id": ids[0]}]}, ValueError),
    ]
    for request, error in bad_requests:
        with pytest.raises(error):
            service.modify(people_job, JOB, request.get("merges"), request.get("moves"))
        assert job_state(people_job) == before, request


def test_merge_then_move_faces_out_and_to_noise(people_job):
    ids = service.cluster_job(people_job, JOB, min_samples=3)["cluster_ids"]
    sizes = {c["cluster_id"]: c["size"] for c in service.cluster_samples(people_job, JOB)["clusters"]}
    service.set_names(people_job, JOB, [{"cluster_id": ids[1], "name": "Rodrigo"}])

    merged = service.modify(people_job, JOB, merges=[{"cluster_ids": [ids[1], ids[0]], "target_cluster_id": ids[0]}])
    assert merged["merged"] == 1 and merged["removed_cluster_ids"] == [ids[1]] and merged["num_clusters"] == 3
    after = {c["cluster_id"]: c for c in service.cluster_samples(people_job, JOB)["clusters"]}
    assert after[ids[0]]["size"] == sizes[ids[0]] + sizes[ids[1]]
    assert after[ids[0]]["name"] == "Rodrigo"  # the unnamed target takes the merged name

    faces = service.cluster_faces(people_job, JOB, [ids[2]])["faces"]
    split = service.modify(people_job, JOB, moves=[
        {"face_ids": [faces[0]["face_id"], faces[1]["face_id"]], "target_cluster_id": "new"},
        {"face_ids": [faces[2]["face_id"]], "target_cluster_id": "noise"},
    ])
    assert split["moved"] == 3 and len(split["created_cluster_ids"]) == 1
    new_id = split["created_cluster_ids"][0]
    moved = service.cluster_faces(people_job, JOB, [new_id, "noise"])["faces"]
    assert [f["cluster_id"] for f in moved] == [new_id, new_id, "noise"]
    assert service.list_jobs(people_job)["jobs"][0]["noise_entries"] == 1


def test_readding_a_media_file_replaces_its_faces(people_job, labelled):
    service.cluster_job(people_job, JOB, min_samples=3)
    _, _, media_hash, faces = labelled[0]
    old_ids = {f["face_id"] for f in service.cluster_faces(people_job, JOB, ["noise"] + service.list_jobs(
        people_job)["jobs"][0]["cluster_ids"], limit=2000)["faces"] if f["media_hash"] == media_hash}
    service.add_faces(people_job, JOB, media_hash, [(0.0, f) for f in faces], model="Dlib")
    job = service.list_jobs(people_job)["jobs"][0]
    assert job["total_entries"] == 26 and job["noise_entries"] == 1  # the new copy waits for a recluster
    stored = service.cluster_faces(people_job, JOB, ["noise"])["faces"]
    assert [f["media_hash"] for f in stored] == [media_hash] and stored[0]["face_id"] not in old_ids
    # a media file without faces still belongs to the job
    service.add_faces(people_job, JOB, "00000000facefree", [], model="Dlib")
    assert "00000000facefree" in service.list_jobs(people_job)["jobs"][0]["media_hashes"]
    with pytest.raises(ValueError, match="Dlib"):
        service.add_faces(people_job, JOB, media_hash, [(0.0, f) for f in faces], model="ArcFace")


# --- people filter ---------------------------------------------------------------------------


def synthetic_face(center: np.ndarray, rng: np.random.Generator) -> Face:
    vector = center + rng.normal(scale=0.02, size=center.shape)
    return Face(box=(10, 10, 80, 80), score=1.0, embedding=(vector / np.linalg.norm(vector)).astype(np.float32))


def test_people_frames_and_or(tmp_path):
    """A hand-made 'video': Ana on screen at seconds 0-5, Ben at 3-8, Cy alone in a second file."""
    rng = np.random.default_rng(7)
    ana, ben, cy = (np.eye(128)[i] for i in range(3))
    video = [(t + 0.2, synthetic_face(ana, rng)) for t in range(0, 6)]
    video += [(t + 0.7, synthetic_face(ben, rng)) for t in range(3, 9)]
    service.add_faces(tmp_path, "Film", "aaaaaaaaaaaaaaaa", video, model="Dlib")
    service.add_faces(tmp_path, "Film", "bbbbbbbbbbbbbbbb", [(float(t), synthetic_face(cy, rng)) for t in range(4)],
                      model="Dlib")
    ids = service.cluster_job(tmp_path, "Film", min_samples=3)["cluster_ids"]
    assert len(ids) == 3
    by_media = {}
    for cid in ids:
        face = service.cluster_faces(tmp_path, "Film", [cid], limit=1)["faces"][0]
        by_media.setdefault(face["media_hash"], []).append((face["time_seconds"], cid))
    ana_id, ben_id = (cid for _, cid in sorted(by_media["aaaaaaaaaaaaaaaa"]))
    cy_id = by_media["bbbbbbbbbbbbbbbb"][0][1]
    service.set_names(tmp_path, "Film", [{"cluster_id": ana_id, "name": "Ana"}, {"cluster_id": ben_id, "name": "Ben"}])

    ana_f = {"cluster_job_name": "Film", "person_name": "ana"}
    ben_f = {"cluster_job_name": "Film", "person_name": "Ben"}
    assert service.people_frames(tmp_path, [ana_f]) == {"aaaaaaaaaaaaaaaa": {0, 1, 2, 3, 4, 5}}
    assert service.people_frames(tmp_path, [ana_f, ben_f], "and") == {"aaaaaaaaaaaaaaaa": {3, 4, 5}}
    assert service.people_frames(tmp_path, [ana_f, ben_f], "or") == {"aaaaaaaaaaaaaaaa": set(range(9))}
    cy_f = {"cluster_job_name": "Film", "cluster_id": cy_id}
    assert service.people_frames(tmp_path, [ana_f, cy_f], "and") == {}
    assert service.people_frames(tmp_path, [ben_f, cy_f], "or") == {
        "aaaaaaaaaaaaaaaa": set(range(3, 9)), "bbbbbbbbbbbbbbbb": {0, 1, 2, 3}}
    with pytest.raises(service.UnknownPerson):
        service.people_frames(tmp_path, [{"cluster_job_name": "Film", "person_name": "Zed"}])
    with pytest.raises(service.UnknownCluster):
        service.people_frames(tmp_path, [{"cluster_job_name": "Film", "cluster_id": "ghost"}])
    with pytest.raises(ValueError):
        service.people_frames(tmp_path, [ana_f], mode="xor")


# --- storage ---------------------------------------------------------------------------------


def test_a_corrupt_job_fails_alone(tmp_path):
    rng = np.random.default_rng(1)
    for job in ("Good", "Bad", "Torn"):
        service.add_faces(tmp_path, job, "cccccccccccccccc", [(0.0, synthetic_face(np.eye(128)[0], rng))],
                          model="Dlib")
    bad = next(p for p in (tmp_path / "faces").iterdir() if p.name.startswith("Bad"))
    (bad / "job.json").write_text("{ torn")
    torn = read_job(tmp_path, "Torn")
    (torn.folder / torn.segments[0]["file"]).write_bytes(b"garbage")
    assert service.list_jobs(tmp_path)["cluster_jobs"] == ["Good", "Torn"]
    with pytest.raises(CorruptJob, match="seg-"):
        service.cluster_samples(tmp_path, "Torn")
    assert service.cluster_samples(tmp_path, "Good", include_noise=True)["clusters"][0]["size"] == 1


def test_many_media_files_stay_a_bounded_number_of_files(tmp_path):
    rng = np.random.default_rng(2)
    centers = np.eye(128)[:3]
    for n in range(MAX_SEGMENTS + 20):
        faces = [(float(t), synthetic_face(centers[n % 3], rng)) for t in range(2)]
        service.add_faces(tmp_path, "Library", f"{n:016x}", faces, model="Dlib")
    data = read_job(tmp_path, "Library")
    assert len(data.segments) <= MAX_SEGMENTS
    assert len(data.meta["media_hashes"]) == MAX_SEGMENTS + 20 and len(data.labels) == 2 * (MAX_SEGMENTS + 20)
    files = [p for p in data.folder.iterdir() if p.name != ".lock"]
    assert len(files) <= 4 * MAX_SEGMENTS + 3  # this generation and the one before
    summary = service.cluster_job(tmp_path, "Library", min_samples=3)
    assert summary["num_clusters"] == 3 and summary["noise_entries"] == 0
    # every face still has its own media and crop after segments were merged
    faces = service.cluster_faces(tmp_path, "Library", summary["cluster_ids"], limit=2000)["faces"]
    assert len({f["media_hash"] for f in faces}) == MAX_SEGMENTS + 20
    assert len({(f["media_hash"], f["frame_idx"]) for f in faces}) == len(faces)


def test_noise_stays_unassigned():
    rng = np.random.default_rng(3)
    tight = [np.eye(128)[0] + rng.normal(scale=0.02, size=128) for _ in range(10)]
    scattered = [rng.normal(size=128) for _ in range(5)]
    labels = cluster_embeddings(np.array(tight + scattered), ClusterParams(0.48, 3), match_threshold=0.4)
    assert len(set(labels[:10].tolist())) == 1 and labels[0] >= 0
    assert (labels[10:] == -1).all()


# --- clustering quality (issue 10: clusters must not merge different people) ---------------

SHARED_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "faces"


@pytest.fixture(scope="module")
def shared_sets(deepface_home) -> dict:
    """bench/faces.py's labelled sets (photos; photos + degraded copies + crowd strangers)."""
    if not (SHARED_FACES / "labels.csv").is_file():
        pytest.skip(f"no shared labelled photos at {SHARED_FACES}")
    from bench.faces import embed_sets

    return embed_sets(SHARED_FACES, video=False)


def test_shared_photos_reach_the_quality_goal_with_min_samples_2_and_auto(shared_sets):
    from workers.faces.clustering import auto_detect_params
    from workers.faces.quality import clustering_quality

    x, truth = shared_sets["photos"]
    for labels in (cluster_embeddings(x, ClusterParams(min_samples=2), 0.4), auto_detect_params(x, 0.4)[2]):
        quality = clustering_quality(truth, labels)
        assert quality.pairwise_precision >= 0.97 and quality.pairwise_f1 >= 0.95, quality
        assert quality.bcubed_f1 >= 0.95 and quality.clusters == 4, quality


def test_degraded_faces_and_strangers_join_nobody(shared_sets):
    """Soft, small copies of the photos and 28 strangers from a crowd: the faces that chained
    people together before (pairwise precision 0.50-0.54 with the old defaults)."""
    from workers.faces.clustering import auto_detect_params
    from workers.faces.quality import clustering_quality

    x, truth = shared_sets["photos_hard"]
    assert len(set(truth)) > 20
    default = clustering_quality(truth, cluster_embeddings(x, ClusterParams(), 0.4))
    photos = clustering_quality(truth, cluster_embeddings(x, ClusterParams(min_samples=2), 0.4))
    auto = clustering_quality(truth, auto_detect_params(x, 0.4)[2])
    for quality in (default, photos, auto):
        assert quality.pairwise_precision >= 0.97 and quality.pairwise_f1 >= 0.95, quality
        assert quality.bcubed_f1 >= 0.95, quality
    assert auto.pairwise_f1 >= default.pairwise_f1 - 1e-9


def _exact_mst_weight(x: np.ndarray, min_samples: int) -> float:
    from scipy.sparse.csgraph import minimum_spanning_tree

    d = np.sqrt(np.maximum(2 - 2 * x @ x.T, 0))
    core = np.sort(d, axis=1)[:, max(1, min_samples - 1) - 1]
    mr = np.maximum(d, np.maximum(core[:, None], core[None, :]))
    np.fill_diagonal(mr, 0)
    return float(minimum_spanning_tree(np.maximum(mr, 1e-12) * (1 - np.eye(len(x)))).sum())


@pytest.mark.parametrize("dense_limit", [10_000, 50])
def test_tree_is_exact_on_video_like_duplicates(monkeypatch, dense_limit):
    """Many near-identical frames per shot fill every kNN list with the same shot; the
    joins between shots must still be the closest pairs (the kNN path: dense_limit 50)."""
    from workers.faces import clustering

    monkeypatch.setattr(clustering, "DENSE_LIMIT", dense_limit)
    rng = np.random.default_rng(5)
    shots = rng.normal(size=(30, 128))
    x = np.repeat(shots / np.linalg.norm(shots, axis=1, keepdims=True), 20, axis=0)
    x = x + rng.normal(scale=0.003, size=x.shape)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    mst = clustering.mutual_reachability_mst(x, 5)
    assert len(mst) == len(x) - 1
    assert abs(mst[:, 2].sum() - _exact_mst_weight(x, 5)) < 1e-3 * len(x)


def test_hdbscan_adapter_matches_the_library():
    """Fails loudly when an hdbscan release changes the private functions the adapter uses."""
    import hdbscan
    from sklearn.metrics import adjusted_rand_score

    from workers.faces import clustering

    rng = np.random.default_rng(11)
    centers = rng.normal(size=(6, 128))
    x = np.concatenate([c + rng.normal(scale=0.08, size=(40, 128)) for c in centers])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    mst = clustering.mutual_reachability_mst(x, 5)
    ours = clustering.labels_from_mst(mst, len(x), 5, 0.1)
    library = hdbscan.HDBSCAN(min_cluster_size=5, min_samples=4, cluster_selection_epsilon=0.1).fit(x).labels_
    assert ours.max() + 1 == 6
    assert adjusted_rand_score(library, ours) > 0.99


def test_default_engine_runs_on_dlib_alone(engine):
    """The default pair needs no deepface internals (nor deepface at all)."""
    from workers.engines.faces import _DlibDetector, _DlibRecognizer

    assert isinstance(engine._detector, _DlibDetector) and isinstance(engine._recognizer, _DlibRecognizer)
    assert engine.dim == 128


def test_deepface_adapter_finds_what_it_uses():
    """Fails loudly when a deepface release moves what workers/engines/deepface_adapter.py uses."""
    import importlib
    import inspect

    from deepface import DeepFace
    from deepface.models.Detector import FacialAreaRegion
    from deepface.modules import detection, preprocessing

    from workers.engines.deepface_adapter import DOWNLOADERS

    assert list(inspect.signature(DeepFace.build_model).parameters)[:2] == ["model_name", "task"]
    assert list(inspect.signature(detection.extract_face).parameters)[:2] == ["facial_area", "img"]
    assert callable(preprocessing.resize_image) and callable(preprocessing.normalize_input)
    assert {"x", "y", "w", "h", "confidence", "left_eye", "right_eye"} <= set(inspect.signature(FacialAreaRegion).parameters)
    downloader = importlib.import_module(DOWNLOADERS[0]).download_weights_if_necessary
    assert "file_name" in inspect.signature(downloader).parameters
