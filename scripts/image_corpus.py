"""Writes a corpus of PNG and JPEG files with Pillow's decode of each, for Kiln's decoder tests.

Usage: python image_corpus.py OUT_DIR
PNGs are written by the small encoder below (every colour type and bit depth of the PNG
specification, Adam7-interlaced or not, with and without tRNS), JPEGs by Pillow (baseline,
progressive, 4:4:4 and 4:2:0 subsampling, grayscale, CMYK, EXIF orientations 2-8). For each file NAME it writes
NAME.npy: Pillow's pixels as uint8 H×W×C — 16-bit samples reduced to their high byte,
palettes expanded to RGB (RGBA with transparency), 1-bit grey as 0/255, grey or RGB with a
tRNS colour key as LA / RGBA, 16-bit grey + alpha (which Pillow opens as RGBA with equal
colour channels) as LA — and lists the files in OUT_DIR/corpus.txt.
"""
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_rows(samples, depth):
    """samples: H×W×C integer array → filtered scanlines (filter byte 0 or cycling 0-4)."""
    out = bytearray()
    h = samples.shape[0]
    for y in range(h):
        row = samples[y].reshape(-1)
        if depth == 16:
            raw = b"".join(struct.pack(">H", int(v)) for v in row)
        elif depth == 8:
            raw = bytes(int(v) for v in row)
        else:
            per = 8 // depth
            raw = bytearray()
            for i in range(0, len(row), per):
                byte = 0
                for j in range(per):
                    v = int(row[i + j]) if i + j < len(row) else 0
                    byte |= v << (8 - depth * (j + 1))
                raw.append(byte)
            raw = bytes(raw)
        out.append(0)  # filter: none (libpng undoes the others; the encoder here stays simple)
        out += raw
    return bytes(out)


def png(samples, color, depth, interlace=False, palette=None, trns=None):
    h, w = samples.shape[:2]
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 1 if interlace else 0)
    if interlace:
        data = b""
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                data += pack_rows(sub, depth)
    else:
        data = pack_rows(samples, depth)
    body = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    if palette is not None:
        body += chunk(b"PLTE", bytes(palette.reshape(-1).astype(np.uint8)))
    if trns is not None:
        body += chunk(b"tRNS", trns)
    body += chunk(b"IDAT", zlib.compress(data, 9)) + chunk(b"IEND", b"")
    return body


def pillow_pixels(path):
    im = ImageOps.exif_transpose(Image.open(path))
    im.load()
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in ("I;16", "I;16B", "I"):
        a = np.asarray(im).astype(np.int64)
        if "transparency" in im.info:
            raise ValueError("16-bit grey with tRNS is not in the corpus")
        return (a >> 8).astype(np.uint8)[:, :, None]
    elif im.mode == "1":
        im = im.convert("L")
    elif im.mode in ("L", "RGB") and "transparency" in im.info:
        im = im.convert("LA" if im.mode == "L" else "RGBA")
    elif im.mode == "CMYK":
        im = im.convert("RGB")
    a = np.asarray(im)
    if path.endswith(".png") and "_c4_" in path and im.mode == "RGBA":
        # Pillow opens 16-bit grey + alpha as RGBA with R = G = B; the file holds LA.
        assert (a[:, :, 0] == a[:, :, 1]).all() and (a[:, :, 1] == a[:, :, 2]).all()
        a = a[:, :, [0, 3]]
    return a[:, :, None] if a.ndim == 2 else a


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    names = []
    w, h = 13, 11  # odd sizes: partial bytes for sub-byte depths, uneven Adam7 passes
    for color, depths in ((0, (1, 2, 4, 8, 16)), (2, (8, 16)), (3, (1, 2, 4, 8)), (4, (8, 16)), (6, (8, 16))):
        for depth in depths:
            for interlace in (False, True):
                c = CHANNELS[color]
                top = (1 << depth) - 1 if color != 3 else (1 << depth) - 1
                samples = rng.integers(0, top + 1, (h, w, c))
                palette = rng.integers(0, 256, (1 << depth, 3)) if color == 3 else None
                variants = [("", None)]
                if color == 3:
                    variants.append(("_trns", bytes(rng.integers(0, 256, min(1 << depth, 5)).astype(np.uint8))))
                if color in (0, 2) and depth == 8:
                    key = samples[0, 0]
                    samples[3, 4] = key
                    variants.append(("_trns", b"".join(struct.pack(">H", int(v)) for v in key)))
                for suffix, trns in variants:
                    name = f"png_c{color}_d{depth}{'_i' if interlace else ''}{suffix}.png"
                    with open(os.path.join(out, name), "wb") as f:
                        f.write(png(samples, color, depth, interlace, palette, trns))
                    names.append(name)
    # JPEGs from a smooth image with some texture (what photographs look like to a codec).
    yy, xx = np.mgrid[0:37, 0:45]
    base = np.stack([(xx * 5) % 256, (yy * 7) % 256, ((xx + yy) * 3) % 256], -1).astype(np.float64)
    base += rng.normal(0, 12, base.shape)
    rgb = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    for name, image, options in (
        ("jpeg_baseline.jpg", rgb, dict(quality=90)),
        ("jpeg_baseline_444.jpg", rgb, dict(quality=95, subsampling=0)),
        ("jpeg_progressive.jpg", rgb, dict(quality=85, progressive=True)),
        ("jpeg_grey.jpg", rgb.convert("L"), dict(quality=90)),
        ("jpeg_grey_progressive.jpg", rgb.convert("L"), dict(quality=80, progressive=True)),
        ("jpeg_cmyk.jpg", rgb.convert("CMYK"), dict(quality=95)),
    ):
        image.save(os.path.join(out, name), "JPEG", **options)
        names.append(name)
    # Resampling references: Pillow's bilinear resize of a float image (mode F: the same filter
    # weights as for 8-bit images, without the rounding to 8 bits between the passes).
    src = np.clip(base[:, :, 0], 0, 255).astype(np.float32)
    np.save(os.path.join(out, "resize_source.npy"), src)
    for w2, h2 in ((16, 20), (45, 37), (90, 50), (7, 60)):
        resized = np.asarray(Image.fromarray(src, "F").resize((w2, h2), Image.Resampling.BILINEAR))
        np.save(os.path.join(out, f"resize_{w2}x{h2}.npy"), resized.astype(np.float32))
    # EXIF orientations 2-8 on a non-square image; the expected pixels are Pillow's
    # ImageOps.exif_transpose of the file (the image as displayed).
    for o in range(2, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        name = f"jpeg_orientation_{o}.jpg"
        rgb.save(os.path.join(out, name), "JPEG", quality=95, exif=exif.tobytes())
        names.append(name)
    for name in names:
        np.save(os.path.join(out, name + ".npy"), pillow_pixels(os.path.join(out, name)))
    with open(os.path.join(out, "corpus.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    print(f"{len(names)} files")


if __name__ == "__main__":
    main()
