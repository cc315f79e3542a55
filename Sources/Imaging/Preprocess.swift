import Foundation

/// How an image becomes the tensor a model takes: channel conversion, resize, scaling to
/// [0, 1], per-channel mean and std, NCHW. Read from a model's metadata (written by `kiln
/// export`), every field overridable.
public struct Preprocessing: Sendable, Equatable {
    public enum Resize: String, Sendable, CaseIterable {
        /// Straight to height × width (aspect ratio not kept).
        case direct
        /// The shorter side to `resizeSize`, then the centre height × width (torchvision's
        /// Resize + CenterCrop).
        case shorterSide = "shorter-side"
    }

    public var channels: Int
    public var height: Int
    public var width: Int
    public var resize: Resize
    /// The shorter side before the centre crop (default: height / 0.875, as 256 for 224).
    public var resizeSize: Int?
    /// In [0, 1] units: x = (pixel/255 − mean[c]) / std[c].
    public var mean: [Float]
    public var std: [Float]

    public init(channels: Int, height: Int, width: Int, resize: Resize = .direct, resizeSize: Int? = nil, mean: [Float], std: [Float]) {
        self.channels = channels
        self.height = height
        self.width = width
        self.resize = resize
        self.resizeSize = resizeSize
        self.mean = mean
        self.std = std
    }

    public var tensorSize: Int { channels * height * width }

    /// The largest input side (and shorter-side resize) preprocessing accepts: a model or
    /// metadata claiming more is refused before anything is allocated for it.
    public static let maxSide = 8192

    /// The preprocessing a model's metadata describes, for its input shape [C, H, W]; the
    /// second value names each default assumed because the metadata lacked it.
    public static func from(metadata: [String: String], inputShape: [Int]) throws(ImageError) -> (Preprocessing, assumed: [String]) {
        var assumed: [String] = []
        func floats(_ key: String) -> [Float]? {
            guard let text = metadata[key], let d = text.data(using: .utf8), let v = try? JSONDecoder().decode([Float].self, from: d) else { return nil }
            return v
        }
        var shape = inputShape
        if let s = metadata["kiln.input_size"], let d = s.data(using: .utf8), let v = try? JSONDecoder().decode([Int].self, from: d), v.count == 3 {
            shape = v
        }
        guard shape.count == 3, shape.allSatisfy({ $0 > 0 }) else {
            throw ImageError(path: "model", reason: "the model's input is not images [N, C, H, W] with known C, H, W (got \(shape))")
        }
        guard shape[1] <= maxSide, shape[2] <= maxSide else {
            throw ImageError(path: "model", reason: "an input of \(shape[1])×\(shape[2]) pixels is larger than the limit of \(maxSide)×\(maxSide)")
        }
        guard shape[0] == 1 || shape[0] == 3 else { throw ImageError(path: "model", reason: "the model takes \(shape[0]) channels; images give 1 or 3") }
        let c = shape[0]
        var p = Preprocessing(channels: c, height: shape[1], width: shape[2], mean: [Float](repeating: 0, count: c), std: [Float](repeating: 1, count: c))
        if let r = metadata["kiln.resize"] {
            guard let v = Resize(rawValue: r) else { throw ImageError(path: "model", reason: "unknown kiln.resize '\(r)'") }
            p.resize = v
            p.resizeSize = metadata["kiln.resize_size"].flatMap { Int($0) }
            if let s = p.resizeSize, s < 1 || s > maxSide {
                throw ImageError(path: "model", reason: "kiln.resize_size \(s) must be from 1 to \(maxSide)")
            }
        } else {
            assumed.append("resize directly to \(p.height)×\(p.width)")
        }
        if let m = floats("kiln.mean"), let s = floats("kiln.std"), m.count == c, s.count == c, s.allSatisfy({ $0 > 0 }) {
            p.mean = m
            p.std = s
        } else {
            assumed.append("pixels scaled to [0, 1] with no mean or std")
        }
        return (p, assumed)
    }

    /// Writes the model's input for `image` (C × H × W floats) into `out`.
    public func apply(_ image: Image, into out: UnsafeMutablePointer<Float>) {
        let img = image.converted(to: channels)
        var (w, h) = (img.width, img.height)
        var target = (w, h)
        switch resize {
        case .direct:
            target = (width, height)
        case .shorterSide:
            let s = resizeSize ?? Int((Double(min(height, width)) / 0.875).rounded())
            target = w <= h ? (s, Int(Double(s) * Double(h) / Double(w))) : (Int(Double(s) * Double(w) / Double(h)), s)
        }
        // Resized planes (floats), or nil to read the 8-bit pixels directly.
        var planes: [[Float]]? = nil
        if target != (w, h) {
            planes = img.resampledPlanes(width: target.0, height: target.1)
            (w, h) = target
        }
        // Centre crop (or zero-pad an image smaller than the input), torchvision's rounding.
        let top = Int((Double(h - height) / 2).rounded()), left = Int((Double(w - width) / 2).rounded())
        img.pixels.withUnsafeBufferPointer { px in
            for c in 0..<channels {
                let scale = 1 / (255 * std[c]), shift = -mean[c] / std[c]
                let o = out + c * height * width
                for y in 0..<height {
                    let sy = y + top
                    for x in 0..<width {
                        let sx = x + left
                        var v: Float = 0
                        if sy >= 0 && sy < h && sx >= 0 && sx < w {
                            v = planes.map { $0[c][sy * w + sx] } ?? Float(px[(sy * w + sx) * channels + c])
                        }
                        o[y * width + x] = v * scale + shift
                    }
                }
            }
        }
    }

    /// Separable bilinear resampling with the triangle filter widened by the scale factor
    /// when shrinking (antialiasing), in floating point: the weights of Pillow's
    /// `Image.resize(…, BILINEAR)`; Pillow also rounds to 8 bits after each pass.
    public static func resample(_ plane: [Float], width: Int, height: Int, toWidth: Int, toHeight: Int) -> [Float] {
        let rows = pass(plane, count: height, length: width, to: toWidth, stride: 1, lineStride: width)
        // rows: height × toWidth; now along columns.
        return pass(rows, count: toWidth, length: height, to: toHeight, stride: toWidth, lineStride: 1, transposed: true)
    }

    /// Resamples `count` lines of `length` samples to `to` samples. A line's k-th sample is at
    /// line·lineStride + k·stride.
    static func pass(_ x: [Float], count: Int, length: Int, to: Int, stride: Int, lineStride: Int, transposed: Bool = false) -> [Float] {
        let weights = coefficients(from: length, to: to)
        var out = [Float](repeating: 0, count: count * to)
        for line in 0..<count {
            for (j, (start, w)) in weights.enumerated() {
                var s: Float = 0
                for (k, wk) in w.enumerated() { s += wk * x[line * lineStride + (start + k) * stride] }
                // Output: lines of `to` samples (rows), or for the column pass row-major to × count.
                out[transposed ? j * count + line : line * to + j] = s
            }
        }
        return out
    }

    static func coefficients(from inSize: Int, to outSize: Int) -> [(Int, [Float])] {
        let scale = Double(inSize) / Double(outSize), filterScale = max(scale, 1), support = filterScale
        return (0..<outSize).map { i in
            let center = (Double(i) + 0.5) * scale
            let lo = max(Int(center - support + 0.5), 0), hi = min(Int(center + support + 0.5), inSize)
            var w = (lo..<hi).map { j in max(0, 1 - abs((Double(j) - center + 0.5) / filterScale)) }
            let total = w.reduce(0, +)
            if total > 0 { w = w.map { $0 / total } }
            return (lo, w.map(Float.init))
        }
    }
}

extension Image {
    /// Each channel as a plane of floats, resampled to width × height (`Preprocessing.resample`).
    public func resampledPlanes(width toWidth: Int, height toHeight: Int) -> [[Float]] {
        (0..<channels).map { c in
            let plane = (0..<(width * height)).map { Float(pixels[$0 * channels + c]) }
            return Preprocessing.resample(plane, width: width, height: height, toWidth: toWidth, toHeight: toHeight)
        }
    }
}
