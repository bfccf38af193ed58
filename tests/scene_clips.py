"""Scene-detection material: PySceneDetect's clips (shared, read-only) with their hard cuts, and
a clip built on the fly whose shots move, fade and change light (tests and bench/scenes.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av

SHARED_VIDEO = Path(__file__).resolve().parents[1] / ".." / "shared" / "testdata" / "video"
# Hard cuts (0-based first frame of the new shot). testvideo: ground_truth.json's "derived"
# hard cuts, 1.001 s and 6.006 s at 29.97 fps; its fades and dissolve (fade-ins starting at 211
# and 394, a dissolve 529-558, fade-outs) are no cuts. counter: the card colour changes grey →
# red → green at frames 10 and 20 (each frame shows its number). fades.mp4 only fades.
HARD_CUTS = {"testvideo.mp4": [30, 180], "counter.mp4": [10, 20], "fades.mp4": []}

SHOT_SECONDS, RATE = 2, 30
# Five 2 s shots at 30 fps: a fast pan with a red box crossing it; a texture whose brightness
# jumps (a lamp) while its contrast ramps up; a fade-in from black while the camera drifts;
# two framings of one leaf (same colours: a cut only the structure shows), the second with a
# slow push-in. None of the motion or light is a cut.
MOVING_CUTS = [60, 120, 180, 240]


def _stills(folder: Path) -> dict[int, Path]:
    """Three pictures from testvideo.mp4: a leaf (100), a second leaf (450), tyre tread (600)."""
    stills = {number: folder / f"still{number}.png" for number in (100, 450, 600)}
    if all(path.exists() for path in stills.values()):
        return stills
    with av.open(str(SHARED_VIDEO / "testvideo.mp4")) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number in stills:
                frame.to_image().save(stills[number])
            if number >= 600:
                break
    return stills


HIDDEN_CUT = 62


def hidden_cut_clip(folder: Path) -> Path:
    """A hard cut on a frame nobody references: x264 with a fixed I/P + 3 B-frame pattern
    and no scene-cut keyframe, cut at frame 62 (a B-frame between P-frames 60 and 64)."""
    from workers.exports.ffmpeg import ffmpeg_exe

    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "hidden_cut.mp4"
    if out.exists():
        return out
    stills = _stills(folder)
    inputs = ["-loop", "1", "-framerate", str(RATE), "-t", f"{HIDDEN_CUT / RATE:.4f}", "-i", str(stills[100]),
              "-loop", "1", "-framerate", str(RATE), "-t", "2", "-i", str(stills[600])]
    graph = "[0]scale=320:180,setsar=1[a];[1]scale=320:180,setsar=1[b];[a][b]concat=n=2:v=1[v]"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *inputs, "-filter_complex", graph,
                    "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-x264-params",
                    "bframes=3:b-pyramid=none:b-adapt=0:scenecut=0:keyint=250", "-pix_fmt", "yuv420p",
                    "-r", str(RATE), str(out.with_suffix(".tmp.mp4"))], check=True)
    out.with_suffix(".tmp.mp4").rename(out)
    return out


def moving_shots_clip(folder: Path) -> Path:
    from workers.exports.ffmpeg import ffmpeg_exe

    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "moving_shots.mp4"
    if out.exists():
        return out
    stills = _stills(folder)
    t = SHOT_SECONDS
    graph = ("[0]scale=960:540,crop=320:180:x='t*200':y='t*80',"
             "drawbox=x='mod(t*400\\,280)':y=50:w=60:h=80:color=red@1:t=fill,setsar=1[a];"
             "[1]scale=320:180,eq=eval=frame:brightness='if(gte(t\\,1)\\,0.2\\,0)':contrast='1+0.3*t',setsar=1[b];"
             "[2]scale=480:270,crop=320:180:x='80-t*40':y='45-t*20',fade=in:st=0:d=1,setsar=1[c];"
             "[3]scale=640:360,crop=320:180:x=0:y=0,noise=alls=6:allf=t,setsar=1[d];"
             "[4]scale=640:360,zoompan=z='1+0.004*on':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':d=1:s=320x180"
             f":fps={RATE},setsar=1[e];"
             "[a][b][c][d][e]concat=n=5:v=1[v]")
    inputs = []
    for number in (100, 600, 450, 100, 100):
        inputs += ["-loop", "1", "-framerate", str(RATE), "-t", str(t), "-i", str(stills[number])]
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *inputs, "-filter_complex", graph,
                    "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-pix_fmt", "yuv420p",
                    "-r", str(RATE), str(out.with_suffix(".tmp.mp4"))], check=True)
    out.with_suffix(".tmp.mp4").rename(out)
    return out
