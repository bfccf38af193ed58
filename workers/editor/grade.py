"""A colour grade as offsets from "unchanged", and its mapping onto ffmpeg filters.

Every field is 0 for "leave it alone"; a grade of all zeros adds no filter at all, so the
output is the source within encoding error. The mapping (docs/editor.md):

- ``brightness`` b ∈ [-1, 1] → ``eq=brightness=0.5·b`` (eq adds this to normalised luma)
- ``contrast`` c ∈ [-1, 1] → ``eq=contrast=1+c`` (−1 is flat grey, +1 doubles contrast)
- ``saturation`` s ∈ [-1, 1] → ``eq=saturation=1+s`` (−1 is black and white)
- ``gamma`` g ∈ [-1, 1] → ``eq=gamma=2^g`` (midtones ×0.5 … ×2 in gamma; +1 lifts them)
- ``temperature`` t ∈ [-1, 1] → ``colortemperature=temperature=6500−3500·t`` kelvin
  (+1 = 3000 K light: warmer; −1 = 10000 K: cooler)
- ``hue_shift`` h ∈ [-180, 180] degrees → ``hue=h=h``
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

FIELDS = ("brightness", "contrast", "saturation", "gamma", "temperature", "hue_shift")
# In the order the API documents the knobs (schemas/editor.py's GradeRequest is built from it).
LIMITS = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "temperature": 1.0, "gamma": 1.0,
          "hue_shift": 180.0}


@dataclass(frozen=True)
class Grade:
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    gamma: float = 0.0
    temperature: float = 0.0
    hue_shift: float = 0.0

    @classmethod
    def from_dict(cls, values: dict | None) -> Grade:
        values = values or {}
        grade = cls(**{name: float(values.get(name) or 0.0) for name in FIELDS})
        for name in FIELDS:
            if abs(getattr(grade, name)) > LIMITS[name]:
                raise ValueError(f"{name} must lie in [-{LIMITS[name]:g}, {LIMITS[name]:g}]")
        return grade

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def neutral(self) -> bool:
        return all(getattr(self, name) == 0 for name in FIELDS)

    def filters(self) -> list[str]:
        """ffmpeg filter expressions, in the order they are applied; [] for a neutral grade."""
        out = []
        if any((self.brightness, self.contrast, self.saturation, self.gamma)):
            out.append(f"eq=brightness={0.5 * self.brightness:.6f}:contrast={1 + self.contrast:.6f}"
                       f":saturation={1 + self.saturation:.6f}:gamma={2 ** self.gamma:.6f}")
        if self.temperature:
            out.append(f"colortemperature=temperature={6500 - 3500 * self.temperature:.1f}")
        if self.hue_shift:
            out.append(f"hue=h={self.hue_shift:.6f}")
        return out
