"""Checks Kiln's RandAugment operations against Pillow's (the library timm's and torchvision's
RandAugment run on).

Usage: python randaugment_check.py CASES.json
CASES.json: a list of {op, level, sign, shape [C, H, W], input, output} (pixels flat, CHW),
written by the Swift test. For each case Pillow computes the operation from the same input
with the parameters of Kiln's definition (docs/TRAINING.md): ImageOps.autocontrast /
equalize / solarize / posterize, ImageEnhance.Brightness / Contrast / Color / Sharpness with
factor 1 + 0.9·level·sign, and Image.transform(AFFINE, NEAREST, fill 0) for rotate (30°),
shear (0.3) and translate (45 % of the side) about the image centre.
Tolerances: exact for the lookup-table operations; ±1 for the blends (Pillow's integer luma
and filter rounding); at most 2 % of pixels differ for the geometric ones (sampling ties).
Exit code 1 when a case fails.
"""
import json
import math
import sys

import numpy as np
from PIL import Image, ImageEnhance, ImageOps


def to_image(flat, shape):
    c, h, w = shape
    a = np.array(flat, np.uint8).reshape(c, h, w)
    return Image.fromarray(a[0], "L") if c == 1 else Image.fromarray(a.transpose(1, 2, 0), "RGB")


def to_array(img, shape):
    a = np.asarray(img, np.int32)
    return a[None] if shape[0] == 1 else a.transpose(2, 0, 1)


def pillow(op, level, sign, img):
    w, h = img.size
    factor = 1 + 0.9 * level * sign
    if op == "autoContrast":
        return ImageOps.autocontrast(img)
    if op == "equalize":
        return ImageOps.equalize(img)
    if op == "solarize":
        return ImageOps.solarize(img, 256 - 256 * level)
    if op == "posterize":
        return ImageOps.posterize(img, 8 - int(4 * level))
    if op == "brightness":
        return ImageEnhance.Brightness(img).enhance(factor)
    if op == "contrast":
        return ImageEnhance.Contrast(img).enhance(factor)
    if op == "color":
        return ImageEnhance.Color(img).enhance(factor)
    if op == "sharpness":
        return ImageEnhance.Sharpness(img).enhance(factor)
    a, b, c, d, tx, ty = 1.0, 0.0, 0.0, 1.0, 0.0, 0.0
    if op == "rotate":
        t = math.radians(30 * level * sign)
        a, b, c, d = math.cos(t), math.sin(t), -math.sin(t), math.cos(t)
    elif op == "shearX":
        b = 0.3 * level * sign
    elif op == "shearY":
        c = 0.3 * level * sign
    elif op == "translateX":
        tx = 0.45 * level * sign * w
    elif op == "translateY":
        ty = 0.45 * level * sign * h
    # Output pixel centre (X, Y) reads the input at A·(X − w/2, Y − h/2) + (w/2 + tx, h/2 + ty).
    data = (a, b, w / 2 + tx - a * w / 2 - b * h / 2, c, d, h / 2 + ty - c * w / 2 - d * h / 2)
    return img.transform(img.size, Image.AFFINE, data, resample=Image.NEAREST, fillcolor=0)


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    ok = True
    for case in cases:
        op, level, sign, shape = case["op"], case["level"], case["sign"], case["shape"]
        want = to_array(pillow(op, level, sign, to_image(case["input"], shape)), shape)
        got = np.array(case["output"], np.int32).reshape(shape)
        diff = np.abs(got - want)
        geometric = op in ("rotate", "shearX", "shearY", "translateX", "translateY")
        if geometric:
            good = (diff > 0).mean() <= 0.02
        elif op in ("brightness", "contrast", "color", "sharpness"):
            good = diff.max() <= 1
        else:
            good = diff.max() == 0
        print(f"{op:12} level {level} sign {sign:+} shape {shape}: max diff {diff.max()}, {100 * (diff > 0).mean():.2f}% pixels differ {'ok' if good else 'FAIL'}")
        ok &= bool(good)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
