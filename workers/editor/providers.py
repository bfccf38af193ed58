"""AI providers for ``/api/ai/generate``, chosen by ``SIGHTLINE_AI_PROVIDER``.

- ``offline`` (default): no model; the effects of ``workers.editor.effects`` rendered with ffmpeg.
- ``http``: posts the request and the source range (an mp4, base64) to ``SIGHTLINE_AI_URL``
  and stores the clips it answers with. The wire format is in docs/editor.md.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from workers.editor import effects
from workers.editor.effects import Box
from workers.editor.render import SourceInfo, render_range
from workers.settings import Settings, load_settings


class ProviderError(RuntimeError):
    """The provider cannot serve this request; the message says why and what to change."""


@dataclass(frozen=True)
class GenerateRequest:
    source: SourceInfo
    start: float  # seconds in the source
    end: float
    prompt: str
    box: Box


@dataclass(frozen=True)
class Generated:
    label: str
    path: Path


class OfflineProvider:
    name = "offline"

    def health(self) -> dict:
        return {"name": self.name, "usable": True, "configured": True, "capabilities": effects.CAPABILITIES,
                "detail": "runs here with ffmpeg; no generative model"}

    def generate(self, request: GenerateRequest, workdir: Path) -> list[Generated]:
        chosen = effects.plan(request.prompt)
        if chosen is None:
            raise ProviderError(
                f"The offline AI provider cannot do {request.prompt[:200]!r}: without a generative model it can "
                "only remove or hide what is in the box (inpaint, blur, pixelate) or restyle the range (warm, cool, "
                "black and white, high contrast). Set SIGHTLINE_AI_PROVIDER=http and SIGHTLINE_AI_URL to a "
                "generative video API for anything else.")
        out = []
        for number, effect in enumerate(chosen):
            target = workdir / f"variant-{number}.mp4"
            render_range(request.source, request.start, request.end, target,
                         effect.filters(request.box, request.source.width, request.source.height))
            out.append(Generated(effect.label, target))
        return out


class HttpProvider:
    name = "http"

    def __init__(self, settings: Settings):
        self.url, self.key, self.timeout = settings.ai_url, settings.ai_api_key, settings.ai_timeout_seconds

    def health(self) -> dict:
        if not self.url:
            return {"name": self.name, "usable": False, "configured": False, "capabilities": [],
                    "detail": "set SIGHTLINE_AI_URL to a generative video API"}
        try:
            with urllib.request.urlopen(urllib.request.Request(self.url, method="GET", headers=self._headers()),
                                        timeout=5) as reply:
                reachable, detail = True, f"reachable (HTTP {reply.status})"
        except urllib.error.HTTPError as exc:
            # Any HTTP answer means the service is there (a POST-only endpoint says 405 to GET).
            reachable, detail = exc.code < 500, f"answered HTTP {exc.code} to GET"
        except (urllib.error.URLError, OSError) as exc:
            reachable, detail = False, f"unreachable: {getattr(exc, 'reason', exc)}"
        return {"name": self.name, "usable": reachable, "configured": True, "url": self.url,
                "capabilities": ["whatever the generative API at SIGHTLINE_AI_URL does with the prompt"],
                "detail": detail}

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        return headers

    def generate(self, request: GenerateRequest, workdir: Path) -> list[Generated]:
        if not self.url:
            raise ProviderError("SIGHTLINE_AI_PROVIDER=http needs SIGHTLINE_AI_URL (the generative API's endpoint)")
        clip = render_range(request.source, request.start, request.end, workdir / "source.mp4")
        box = request.box
        body = {"prompt": request.prompt, "start_ts": request.start, "end_ts": request.end,
                "bounding_box": {"x": box.x, "y": box.y, "width": box.width, "height": box.height},
                "width": request.source.width, "height": request.source.height, "fps": request.source.fps,
                "video_mp4_base64": base64.b64encode(clip.read_bytes()).decode("ascii"), "variants": 2}
        http_request = urllib.request.Request(self.url, data=json.dumps(body).encode(), method="POST",
                                              headers=self._headers())
        try:
            with urllib.request.urlopen(http_request, timeout=self.timeout) as reply:
                answer = json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            raise ProviderError(f"the generative API at SIGHTLINE_AI_URL answered HTTP {exc.code}: "
                                f"{exc.read()[:300].decode(errors='replace')}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ProviderError(f"the generative API at SIGHTLINE_AI_URL failed: {exc}") from exc
        variants = answer.get("variants") if isinstance(answer, dict) else None
        if not isinstance(variants, list) or not variants:
            raise ProviderError("the generative API answered without any variants")
        out = []
        for number, item in enumerate(variants):
            target = workdir / f"variant-{number}.mp4"
            data = item.get("video_mp4_base64") if isinstance(item, dict) else None
            url = item.get("video_url") if isinstance(item, dict) else None
            if isinstance(data, str):
                target.write_bytes(base64.b64decode(data))
            elif isinstance(url, str) and url.startswith(("http://", "https://")):
                with urllib.request.urlopen(url, timeout=self.timeout) as reply:
                    target.write_bytes(reply.read())
            else:
                raise ProviderError(f"variant {number} from the generative API has no video_mp4_base64 or video_url")
            label = item.get("label") if isinstance(item.get("label"), str) else f"{self.name} variant {number + 1}"
            out.append(Generated(label[:200], target))
        return out


def get_provider(settings: Settings | None = None):
    settings = settings or load_settings()
    if settings.ai_provider == "offline":
        return OfflineProvider()
    if settings.ai_provider == "http":
        return HttpProvider(settings)
    raise ProviderError(f"unknown SIGHTLINE_AI_PROVIDER {settings.ai_provider!r}: use offline or http")


def all_providers(settings: Settings | None = None) -> list:
    settings = settings or load_settings()
    return [OfflineProvider(), HttpProvider(settings)]


