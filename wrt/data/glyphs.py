"""An other-domain dataset of rendered glyphs, standing in for Omniglot (offline, real).

Omniglot (handwritten characters of 50 alphabets; SoK Appendix XII-A, "Unrelated") cannot be
downloaded here. Instead, characters of several non-Latin alphabets — Greek, Cyrillic,
Armenian, Georgian, Hebrew, Arabic — are rendered from the DejaVu and STIX fonts that ship with
matplotlib, each sample with a random font, size, rotation, shear, offset and stroke width,
seeded and deterministic. Each character is a class. Used as the key source of the `unrelated`
scheme and as the labeled transfer domain of transfer-learning and knockoff attacks.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

ALPHABETS = {
    "greek": "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩαβγδεζηθικλμνξοπρστυφχψω",
    "cyrillic": "БГДЖЗИЙЛПФЦЧШЩЪЫЬЭЮЯбвгджзийклмнптфцчшщъыьэюя",
    "armenian": "ԱԲԳԴԵԶԷԸԹԺԻԼԽԾԿՀՁՂՃՄՅՆՇՈՉՊՋՌՍՎՏՐՑՒՓՔՕՖ",
    "georgian": "აბგდევზთიკლმნოპჟრსტუფქღყშჩცძწჭხჯჰ",
    "hebrew": "אבגדהוזחטיכלמנסעפצקרשת",
    "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
}
GLYPH_CLASSES = sum(len(chars) for chars in ALPHABETS.values())  # characters available
FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONT_FILES = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
              "DejaVuSerif-Bold.ttf", "DejaVuSansMono.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf"]


@lru_cache(maxsize=None)
def _font(file: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / file), size)


@lru_cache(maxsize=None)
def _has_glyph(file: str, char: str) -> bool:
    """True if the font draws `char` as something other than its missing-glyph box."""
    font = _font(file, 32)

    def pixels(c: str) -> bytes:
        image = Image.new("L", (48, 48), 0)
        ImageDraw.Draw(image).text((24, 24), c, fill=255, font=font, anchor="mm")
        return image.tobytes()

    drawn = pixels(char)
    return any(drawn) and drawn != pixels("\uffff")


def characters(num_classes: int) -> list[tuple[str, str]]:
    """The first `num_classes` (alphabet, character) pairs, interleaving the alphabets."""
    columns = [[(name, c) for c in chars] for name, chars in ALPHABETS.items()]
    pairs = [col[i] for i in range(max(map(len, columns))) for col in columns if i < len(col)]
    if num_classes > len(pairs):
        raise ValueError(f"glyphs: num_classes={num_classes} exceeds the {len(pairs)} characters available")
    return pairs[:num_classes]


def render(char: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One randomly styled rendering of `char` as a [size, size] uint8 image (white on black)."""
    scale = 4  # draw large, then downsample for smooth strokes
    canvas = size * scale
    fonts = [f for f in FONT_FILES if _has_glyph(f, char)] or FONT_FILES[:1]
    font = _font(fonts[rng.integers(len(fonts))], int(canvas * rng.uniform(0.55, 0.8)))
    image = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(image)
    stroke = int(rng.integers(0, 3)) * scale // 2
    draw.text((canvas / 2, canvas / 2), char, fill=255, font=font, anchor="mm", stroke_width=stroke,
              stroke_fill=255)
    angle = rng.uniform(-20, 20)
    shear = rng.uniform(-0.2, 0.2)
    dx, dy = rng.uniform(-0.1, 0.1, 2) * canvas
    image = image.rotate(angle, resample=Image.BILINEAR, translate=(dx, dy))
    image = image.transform(image.size, Image.AFFINE, (1, shear, -shear * canvas / 2, 0, 1, 0),
                            resample=Image.BILINEAR)
    return np.asarray(image.resize((size, size), Image.LANCZOS))


def glyph_dataset(num_classes: int = 100, per_class: int = 20, size: int = 28, channels: int = 1,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images uint8 [N, channels, size, size], labels [N], class names) — N = classes × per_class."""
    rng = np.random.default_rng(seed)
    pairs = characters(num_classes)
    images = np.stack([render(char, size, rng) for _, char in pairs for _ in range(per_class)])
    labels = np.repeat(np.arange(num_classes), per_class)
    tensor = torch.from_numpy(images).unsqueeze(1).expand(-1, channels, -1, -1).contiguous()
    return tensor, torch.from_numpy(labels).long(), [f"{alphabet}:{char}" for alphabet, char in pairs]
