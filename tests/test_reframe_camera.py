"""The virtual camera on hand-built tracks: who it follows, and how it moves."""

from __future__ import annotations

import numpy as np

from workers.reframe import camera

FPS = 25.0
W, H = 1280, 720


def _tracks(faces: list[tuple[int, float, tuple[float, float] | None]], frames: int, noise: float = 0.0,
            every: int = 5, visible: tuple[int, int] | None = None):
    """faces: (face_id, centre x, (talk start s, talk end s) or None)."""
    rng = np.random.default_rng(7)
    tracks, speakers = [], []
    for face_id, cx, talk in faces:
        boxes, scores = [], []
        for frame in range(0, frames, every):
            if visible and not visible[0] <= frame < visible[1]:
                continue
            t = frame / FPS
            boxes.append({"timestamp": t, "frame_number": frame, "x": cx - 60 + rng.normal(0, noise), "y": 200,
                          "width": 120, "height": 140, "confidence": 0.9})
            speaking = bool(talk and talk[0] <= t < talk[1])
            scores.append({"timestamp": t, "frame_number": frame, "score": 0.9 if speaking else 0.1,
                           "speaking": speaking})
        tracks.append({"face_id": face_id, "first_seen": 0.0, "last_seen": frames / FPS, "boxes": boxes})
        speakers.append({"face_id": face_id, "speaking_fraction": 0.5, "scores": scores})
    return {"tracks": tracks}, {"tracks": speakers}


def _plan(faces, frames, scenes=None, **kwargs):
    tracks, speakers = _tracks(faces, frames, **kwargs)
    return camera.plan(fps=FPS, total_frames=frames, src_w=W, src_h=H, aspect_ratio="9:16",
                       scenes=scenes or [{"start_frame": 0, "end_frame": frames}], face_tracks=tracks,
                       active_speaker=speakers)


def _centre(path, frame):
    return path.x[frame] + path.size.width / 2


def test_crop_size_keeps_height_and_is_even():
    assert camera.crop_size(1280, 720, "9:16").__dict__ == {"width": 404, "height": 720, "y": 0}
    assert camera.crop_size(1920, 1080, "1:1").width == 1080
    assert camera.crop_size(1920, 1080, "4:5").width == 864
    narrow = camera.crop_size(400, 720, "1:1")  # narrower than the ratio: width kept, height cut
    assert (narrow.width, narrow.height) == (400, 400) and narrow.y % 2 == 0


def test_follows_whoever_speaks_and_pans_within_bounds():
    frames = 250  # 10 s: left talks 0-4 s, right 5-10 s
    path = _plan([(1, 300, (0.0, 4.0)), (2, 1000, (5.0, 10.0))], frames, noise=4.0)
    assert abs(_centre(path, 75) - 300) < 0.2 * path.size.width
    assert abs(_centre(path, 240) - 1000) < 0.2 * path.size.width
    assert path.subject[75] == 1 and path.subject[240] == 2
    # Bounded speed and acceleration: per-frame steps never exceed the limits (+ even rounding).
    steps = np.diff(path.x.astype(float))
    assert np.abs(steps).max() <= camera.MAX_SPEED * path.size.width / FPS + 2
    assert np.abs(np.diff(steps)).max() <= camera.MAX_ACCEL * path.size.width / FPS ** 2 + 4
    # Nobody speaking between 4 and 5 s: the crop holds the last speaker.
    assert abs(_centre(path, 115) - 300) < 0.2 * path.size.width


def test_detector_jitter_never_moves_the_crop():
    path = _plan([(1, 640, (0.0, 10.0))], 250, noise=12.0)
    assert len(set(path.x.tolist())) == 1


def test_jumps_at_a_scene_cut():
    frames = 200
    tracks, speakers = _tracks([(1, 250, (0.0, 4.0))], frames, visible=(0, 100))
    right, right_speaks = _tracks([(2, 1050, (4.0, 8.0))], frames, visible=(100, 200))
    tracks["tracks"] += right["tracks"]
    speakers["tracks"] += right_speaks["tracks"]
    path = camera.plan(fps=FPS, total_frames=frames, src_w=W, src_h=H, aspect_ratio="9:16",
                       scenes=[{"start_frame": 0, "end_frame": 100}, {"start_frame": 100, "end_frame": 200}],
                       face_tracks=tracks, active_speaker=speakers)
    assert abs(_centre(path, 99) - 250) < 0.2 * path.size.width
    assert abs(_centre(path, 100) - 1050) < 0.2 * path.size.width  # at once, no pan across the cut


def test_no_face_centres_and_silent_faces_are_framed_together():
    empty = camera.plan(fps=FPS, total_frames=50, src_w=W, src_h=H, aspect_ratio="9:16", scenes=None,
                        face_tracks={"tracks": []}, active_speaker=None)
    assert set(empty.x.tolist()) == {(W - empty.size.width) // 2 // 2 * 2}
    close = _plan([(1, 560, None), (2, 720, None)], 50)  # nobody talks, both fit: frame both
    assert abs(_centre(close, 25) - 640) < 10


def test_llm_forced_face_wins_over_the_speaker():
    tracks, speakers = _tracks([(1, 300, (0.0, 10.0)), (2, 1000, None)], 100)
    path = camera.plan(fps=FPS, total_frames=100, src_w=W, src_h=H, aspect_ratio="9:16", scenes=None,
                       face_tracks=tracks, active_speaker=speakers, forced_faces={0: 2})
    assert abs(_centre(path, 50) - 1000) < 0.2 * path.size.width
