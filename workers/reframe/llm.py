"""Subject choice by a language model for ``reframe_llm``: for each scene, which face the
vertical crop should keep, decided from what is said (transcript + diarization), who is on
screen and the user's ``prompt``.

Talks to any OpenAI-compatible chat endpoint (``POST {SIGHTLINE_LLM_URL}/chat/completions``:
vLLM, llama.cpp's server, Ollama, LM Studio, OpenAI itself). One request for the whole
video; the reply must be JSON naming a face per scene. Scenes the reply leaves out, or names
a face not on screen in, follow the active speaker as ``reframe`` does.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

import requests

SYSTEM = (
    "You direct the vertical (9:16) cut of a horizontal video. For each scene you choose the one "
    "face the frame should keep, given who is on screen, who speaks (a face's 'voice' is the "
    "transcript speaker heard while its mouth moves) and what they say, and the "
    "editor's instructions. Answer with JSON only: "
    '{"scenes": [{"scene": <index>, "face_id": <a face_id listed for that scene, or null>, '
    '"reason": "<a few words>"}]}'
)
MAX_TRANSCRIPT_CHARS = 12000


class LLMError(RuntimeError):
    """The endpoint failed or answered something that is not the JSON asked for."""


@dataclass
class Choice:
    scene: int
    face_id: int | None
    reason: str


def speaker_of(segments: list[dict], start: float, end: float):
    """The diarization speaker who talks longest within [start, end] (None: nobody)."""
    totals: dict = {}
    for segment in segments:
        overlap = min(end, segment["end"]) - max(start, segment["start"])
        if overlap > 0:
            totals[segment["speaker"]] = totals.get(segment["speaker"], 0.0) + overlap
    return max(totals, key=totals.get) if totals else None


def _position(x_fraction: float) -> str:
    return "left" if x_fraction < 0.4 else "right" if x_fraction > 0.6 else "centre"


def describe_scenes(scenes: list[dict], face_tracks: dict, active_speaker: dict | None,
                    transcription: dict | None, diarization: dict | None, src_w: int) -> list[dict]:
    """What the model is told per scene: its time span, the faces in it (where, how much they
    speak) and the transcript lines spoken in it, with diarization's speaker labels."""
    speaking = {t["face_id"]: t.get("scores") or [] for t in (active_speaker or {}).get("tracks") or []}
    voices = (diarization or {}).get("segments") or []
    lines = [(s["start"], s["end"], s.get("speaker") or (speaker_of(voices, s["start"], s["end"]) if voices else None),
              s.get("text", "").strip()) for s in (transcription or {}).get("segments") or []]
    if not lines:
        lines = [(s["start"], s["end"], s.get("speaker"), "") for s in (diarization or {}).get("segments") or []]
    described = []
    budget = MAX_TRANSCRIPT_CHARS
    for index, scene in enumerate(scenes):
        start, end = float(scene["start"]), float(scene["end"])
        faces = []
        for track in face_tracks.get("tracks") or []:
            boxes = [b for b in track.get("boxes") or [] if start <= b["timestamp"] <= end]
            if not boxes:
                continue
            x = sum(b["x"] + b["width"] / 2 for b in boxes) / len(boxes) / max(1, src_w)
            scores = [s for s in speaking.get(track["face_id"], []) if start <= s["timestamp"] <= end]
            face = {"face_id": track["face_id"], "position": _position(x),
                    "speaking_fraction": round(sum(bool(s["speaking"]) for s in scores) / len(scores), 2)
                    if scores else None}
            if voices:
                # The voice heard while this mouth moves: ties transcript speakers to faces.
                heard = Counter(speaker_of(voices, s["timestamp"] - 0.2, s["timestamp"] + 0.2)
                                for s in scores if s["speaking"])
                heard.pop(None, None)
                face["voice"] = heard.most_common(1)[0][0] if heard else None
            faces.append(face)
        said = []
        for line_start, line_end, speaker, text in lines:
            if line_end >= start and line_start <= end and budget > 0:
                entry = {"start": round(line_start, 1), "speaker": speaker, "text": text[:400]}
                budget -= len(text) + 20
                said.append(entry)
        described.append({"scene": index, "start": round(start, 2), "end": round(end, 2), "faces": faces,
                          "speech": said})
    return described


def _extract_json(text: str) -> dict:
    text = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fenced:
        text = fenced.group(1).strip()
    if not text.startswith("{"):
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise LLMError(f"the LLM reply holds no JSON object: {text[:200]!r}")
        text = text[start:end + 1]
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LLMError(f"the LLM reply is not valid JSON ({exc}): {text[:200]!r}") from None
    if not isinstance(value, dict):
        raise LLMError("the LLM reply is not a JSON object")
    return value


def ask(*, url: str, model: str, key: str | None, timeout: float, prompt: str, scenes: list[dict]) -> tuple[
        list[Choice], dict]:
    """One chat completion; the choices it makes and what was exchanged (for the result)."""
    body = {
        "model": model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": json.dumps({"instructions": prompt or "Follow whoever is speaking.",
                                                    "scenes": scenes}, ensure_ascii=False)},
        ],
    }
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    endpoint = url.rstrip("/")
    if not endpoint.endswith("/chat/completions"):
        endpoint += "/chat/completions"
    try:
        reply = requests.post(endpoint, json=body, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise LLMError(f"LLM endpoint unreachable ({exc.__class__.__name__}: {exc})") from None
    if reply.status_code >= 400:
        raise LLMError(f"LLM endpoint answered HTTP {reply.status_code}: {reply.text[:200]}")
    try:
        content = reply.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMError(f"LLM endpoint reply is not a chat completion: {reply.text[:200]}") from None
    parsed = _extract_json(content or "")
    choices = []
    listed = {s["scene"]: {f["face_id"] for f in s["faces"]} for s in scenes}
    for item in parsed.get("scenes") or []:
        if not isinstance(item, dict) or not isinstance(item.get("scene"), int):
            continue
        face = item.get("face_id")
        if isinstance(face, bool) or not isinstance(face, int) or face not in listed.get(item["scene"], set()):
            face = None  # not a face of that scene: that scene follows the active speaker
        choices.append(Choice(item["scene"], face, str(item.get("reason", ""))[:200]))
    return choices, {"model": reply.json().get("model", model), "endpoint": endpoint}
