"""What the offline provider can honestly do without a generative model, chosen from the prompt.

Two families: hide or remove what is inside a box (``delogo`` inpainting from the box's
border, a box blur, a pixelation), and restyle a range with a grade look (warm, cool, black
and white, high contrast). Every plan is two or more variants; a prompt that asks for anything
else gets ``None`` and the provider says which setting brings a generative model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workers.editor.grade import Grade


@dataclass(frozen=True)
class Box:
    """Normalised [0, 1] frame coordinates."""

    x: float
    y: float
    width: float
    height: float

    def pixels(self, frame_w: int, frame_h: int, margin: int = 0) -> tuple[int, int, int, int]:
        """(x, y, w, h) in whole pixels, inside the frame by ``margin`` pixels on every side."""
        x = min(max(round(self.x * frame_w), margin), frame_w - margin - 2)
        y = min(max(round(self.y * frame_h), margin), frame_h - margin - 2)
        w = max(2, min(round(self.width * frame_w), frame_w - margin - x))
        h = max(2, min(round(self.height * frame_h), frame_h - margin - y))
        return x, y, w, h


@dataclass(frozen=True)
class Effect:
    label: str
    kind: str  # inpaint | blur | pixelate | look
    grade: Grade | None = None

    def filters(self, box: Box, width: int, height: int) -> list[str]:
        if self.kind == "look":
            return self.grade.filters()
        if self.kind == "inpaint":
            # delogo interpolates the box from its border pixels and needs a 1-pixel frame around it.
            x, y, w, h = box.pixels(width, height, margin=1)
            return [f"delogo=x={x}:y={y}:w={w}:h={h}"]
        x, y, w, h = box.pixels(width, height)
        if self.kind == "blur":
            radius = max(2, min(w, h) // 4)
            inner = f"boxblur=luma_radius={radius}:luma_power=3:chroma_radius={max(1, radius // 2)}:chroma_power=3"
        else:
            block = max(2, min(w, h) // 8)
            inner = (f"scale={max(1, w // block)}:{max(1, h // block)}:flags=area,"
                     f"scale={w}:{h}:flags=neighbor")
        return [f"split=2[base][patch];[patch]crop={w}:{h}:{x}:{y},{inner}[done];[base][done]overlay={x}:{y}"]


REMOVE = re.compile(r"\b(remove|erase|delete|get rid|take out|take away|inpaint|clean|eliminate|logo|watermark)")
HIDE = re.compile(r"\b(hide|blur|obscure|censor|anonymi[sz]e|redact|mask|cover|conceal|blank)")
PIXELATE = re.compile(r"\b(pixel|mosaic|8-?bit)")
LOOKS = (
    (re.compile(r"\b(warm|warmer|golden|sunset|sunny)"), "warm",
     (Grade(temperature=0.5, saturation=0.1), Grade(temperature=1.0, saturation=0.2))),
    (re.compile(r"\b(cool|cooler|cold|colder|icy|blue tone|bluish)"), "cool",
     (Grade(temperature=-0.5), Grade(temperature=-1.0, saturation=-0.1))),
    (re.compile(r"(black and white|black & white|\bb ?& ?w\b|\bb/w\b|monochrome|gr[ae]yscale|desaturat|noir)"),
     "black and white", (Grade(saturation=-1.0), Grade(saturation=-1.0, contrast=0.3))),
    (re.compile(r"(high[- ]contrast|\bcontrast|punchy|dramatic|\bcrisp)"), "high contrast",
     (Grade(contrast=0.35), Grade(contrast=0.7, saturation=0.15))),
)


def plan(prompt: str) -> list[Effect] | None:
    """The variants the offline provider renders for ``prompt``; None if it cannot serve it."""
    text = " ".join(prompt.lower().split())
    looks = [(name, grades) for pattern, name, grades in LOOKS if pattern.search(text)]
    if looks:
        effects = []
        for name, (gentle, strong) in looks:
            effects += [Effect(f"{name} (gentle)", "look", gentle), Effect(f"{name} (strong)", "look", strong)]
        return effects
    if PIXELATE.search(text):
        order = ("pixelate", "blur", "inpaint")
    elif HIDE.search(text):
        order = ("blur", "pixelate", "inpaint")
    elif REMOVE.search(text):
        order = ("inpaint", "blur", "pixelate")
    else:
        return None
    labels = {"inpaint": "remove (inpaint from the box's border)", "blur": "hide (blur)", "pixelate": "hide (pixelate)"}
    return [Effect(labels[kind], kind) for kind in order]


CAPABILITIES = ["remove what is in the box (delogo inpainting)", "hide what is in the box (blur, pixelate)",
                "restyle the range (warm, cool, black and white, high contrast)"]
