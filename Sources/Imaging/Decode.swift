import CImageCodecs
import Foundation

/// A decoded image: 8-bit samples, row-major, channels interleaved (H × W × C).
public struct Image: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }
}

/// Why a file could not be decoded; `reason` is one line for error reports.
public struct ImageError: Error, Sendable, CustomStringConvertible, Equatable {
    public let path: String
    public let reason: String
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "\(path): \(reason)" }
}

public enum ImageDecoder {
    /// The decompression-bomb limit: images with more pixels are refused before decoding.
    public static let defaultPixelLimit = 100_000_000

    /// Decodes a PNG or JPEG file (chosen by content, not by extension) to 8-bit samples:
    /// 16-bit PNG samples keep their high byte, palettes and sub-byte greys expand, a tRNS
    /// chunk becomes alpha; JPEG CMYK becomes RGB (Adobe's inverted CMYK undone) and a JPEG's
    /// EXIF orientation is applied.
    public static func decode(path: String, pixelLimit: Int = defaultPixelLimit) throws(ImageError) -> Image {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe) } catch {
            throw ImageError(path: path, reason: readFailure(path))
        }
        return try decode(bytes: [UInt8](data), name: path, pixelLimit: pixelLimit)
    }

    static func readFailure(_ path: String) -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return "no such file (or a broken link)" }
        if isDirectory.boolValue { return "is a folder" }
        return FileManager.default.isReadableFile(atPath: path) ? "cannot be read" : "permission denied"
    }

    public static func decode(bytes: [UInt8], name: String, pixelLimit: Int = defaultPixelLimit) throws(ImageError) -> Image {
        guard !bytes.isEmpty else { throw ImageError(path: name, reason: "empty file") }
        var raw = kiln_image()
        var message = [CChar](repeating: 0, count: 256)
        let status: Int32
        let isPNG = bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]), isJPEG = bytes.starts(with: [0xFF, 0xD8])
        guard isPNG || isJPEG else {
            throw ImageError(path: name, reason: "not a PNG or JPEG file (unrecognised content\(kind(bytes).map { ": looks like \($0)" } ?? ""))")
        }
        status = bytes.withUnsafeBufferPointer { b in
            isPNG ? kiln_png_decode(b.baseAddress, b.count, UInt64(pixelLimit), &raw, &message, message.count)
                  : kiln_jpeg_decode(b.baseAddress, b.count, UInt64(pixelLimit), &raw, &message, message.count)
        }
        guard status == 0, let p = raw.pixels else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ImageError(path: name, reason: "\(isPNG ? "PNG" : "JPEG"): \(text.isEmpty ? "cannot decode" : text)")
        }
        defer { free(p) }
        let w = Int(raw.width), h = Int(raw.height), c = Int(raw.channels), n = w * h * c
        guard w > 0, h > 0 else { throw ImageError(path: name, reason: "image has no pixels (\(w)×\(h))") }
        var pixels = [UInt8](repeating: 0, count: n)
        if raw.depth == 16 {
            for k in 0..<n { pixels[k] = p[2 * k] }  // big-endian: the high byte
        } else {
            pixels.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: p, count: n) }
        }
        if raw.cmyk != 0 {
            // CMYK → RGB: R = 255 − min(255, C + K) would be the print-world formula; JPEG
            // files hold K-complemented samples, and Adobe's invert all four, so with
            // c', m', y', k' the stored values (un-inverted when Adobe wrote them):
            // R = c'·k'/255 (Pillow's and libjpeg-turbo's convention).
            var rgb = [UInt8](repeating: 0, count: w * h * 3)
            for i in 0..<(w * h) {
                var s = (Int(pixels[4 * i]), Int(pixels[4 * i + 1]), Int(pixels[4 * i + 2]), Int(pixels[4 * i + 3]))
                if raw.inverted == 0 { s = (255 - s.0, 255 - s.1, 255 - s.2, 255 - s.3) }
                rgb[3 * i] = UInt8((s.0 * s.3 + 127) / 255)
                rgb[3 * i + 1] = UInt8((s.1 * s.3 + 127) / 255)
                rgb[3 * i + 2] = UInt8((s.2 * s.3 + 127) / 255)
            }
            return Image(width: w, height: h, channels: 3, pixels: rgb).oriented(Int(raw.orientation))
        }
        return Image(width: w, height: h, channels: c, pixels: pixels).oriented(Int(raw.orientation))
    }

    /// A guess at what a non-image file is, for the error message.
    static func kind(_ b: [UInt8]) -> String? {
        if b.starts(with: Array("GIF8".utf8)) { return "GIF (not supported)" }
        if b.starts(with: Array("BM".utf8)) { return "BMP (not supported)" }
        if b.starts(with: Array("RIFF".utf8)) { return "RIFF/WebP (not supported)" }
        if b.starts(with: [0x49, 0x49, 0x2A, 0]) || b.starts(with: [0x4D, 0x4D, 0, 0x2A]) { return "TIFF (not supported)" }
        if b.prefix(64).allSatisfy({ $0 == 9 || $0 == 10 || $0 == 13 || (32..<127).contains($0) }) { return "text" }
        return nil
    }
}

extension Image {
    /// The image as displayed under EXIF orientation `o` (1–8; others: unchanged): mirrored
    /// (2, 4), rotated (3: 180°, 6: 90° clockwise, 8: 90° counter-clockwise) or transposed
    /// across a diagonal (5, 7).
    public func oriented(_ o: Int) -> Image {
        guard (2...8).contains(o) else { return self }
        let swap = o >= 5
        let ow = swap ? height : width, oh = swap ? width : height
        var out = [UInt8](repeating: 0, count: pixels.count)
        for y in 0..<oh {
            for x in 0..<ow {
                let (sx, sy): (Int, Int)
                switch o {
                case 2: (sx, sy) = (width - 1 - x, y)
                case 3: (sx, sy) = (width - 1 - x, height - 1 - y)
                case 4: (sx, sy) = (x, height - 1 - y)
                case 5: (sx, sy) = (y, x)
                case 6: (sx, sy) = (y, height - 1 - x)
                case 7: (sx, sy) = (width - 1 - y, height - 1 - x)
                default: (sx, sy) = (width - 1 - y, x)
                }
                let src = (sy * width + sx) * channels, dst = (y * ow + x) * channels
                for c in 0..<channels { out[dst + c] = pixels[src + c] }
            }
        }
        return Image(width: ow, height: oh, channels: channels, pixels: out)
    }

    /// The image with `channels` channels: grey ↔ RGB (grey = ITU-R 601-2 luma
    /// (299·R + 587·G + 114·B)/1000, rounded as Pillow does), alpha dropped.
    public func converted(to target: Int) -> Image {
        guard target != channels else { return self }
        let n = width * height
        var out = [UInt8](repeating: 0, count: n * target)
        for i in 0..<n {
            let base = i * channels
            let (r, g, b): (Int, Int, Int) = channels >= 3 ? (Int(pixels[base]), Int(pixels[base + 1]), Int(pixels[base + 2]))
                                                           : (Int(pixels[base]), Int(pixels[base]), Int(pixels[base]))
            if target == 1 {
                out[i] = channels >= 3 ? UInt8((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) : UInt8(r)
            } else {
                out[i * target] = UInt8(r)
                out[i * target + 1] = UInt8(g)
                out[i * target + 2] = UInt8(b)
                if target == 4 { out[i * target + 3] = channels == 2 || channels == 4 ? pixels[base + channels - 1] : 255 }
            }
        }
        return Image(width: width, height: height, channels: target, pixels: out)
    }
}
