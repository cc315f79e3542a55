import Foundation
import Graph

/// RandAugment (Cubuk et al. 2020) on 8-bit images [C, H, W]: per image, `ops` operations
/// drawn uniformly from the paper's fourteen, each at magnitude `magnitude` (0–10) with a
/// random sign where it has one. Written from the paper's description; ranges as timm's
/// (rotate 30°, shear 0.3, translate 45 % of the side, enhance factors 1 ± 0.9, solarize
/// threshold 256 → 0, posterize 8 → 4 bits, all at magnitude 10); geometric operations map
/// with nearest-neighbour sampling about the centre and fill with 0.
public struct RandAugment: Sendable, Equatable, Codable {
    public var ops: Int
    public var magnitude: Double

    public init(ops: Int, magnitude: Double) {
        self.ops = ops
        self.magnitude = magnitude
    }

    public enum Op: Int, CaseIterable, Sendable {
        case identity, autoContrast, equalize, rotate, solarize, color, posterize, contrast, brightness, sharpness, shearX, shearY, translateX, translateY
    }

    /// Generator draws per image: an operation and a sign per operation.
    public var drawsPerImage: Int { 2 * ops }

    /// Parses "N,M" (operations, magnitude), as `--randaugment` takes it.
    public init?(argument: String) {
        let parts = argument.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2, let n = Int(parts[0]), let m = Double(parts[1]) else { return nil }
        self.init(ops: n, magnitude: m)
    }

    public var problems: [String] {
        var p: [String] = []
        if ops < 1 || ops > 10 { p.append("--randaugment's number of operations must be 1 to 10") }
        if !(magnitude >= 0 && magnitude <= 10) { p.append("--randaugment's magnitude must be in [0, 10]") }
        return p
    }

    /// Applies this image's operations (drawn from `rng`) to `image` in place; `scratch`
    /// holds at least as many bytes.
    public func apply(_ image: UnsafeMutablePointer<UInt8>, channels: Int, height: Int, width: Int, rng: inout KilnRandom,
                      scratch: UnsafeMutablePointer<UInt8>) {
        for _ in 0..<ops {
            let op = Op(rawValue: Int(rng.next() % UInt64(Op.allCases.count)))!
            let sign: Double = rng.next() & 1 == 1 ? -1 : 1
            Self.apply(op, level: magnitude / 10, sign: sign, image, channels: channels, height: height, width: width, scratch: scratch)
        }
    }

    /// One operation at `level` (magnitude / 10) with `sign` (±1).
    public static func apply(_ op: Op, level: Double, sign: Double, _ image: UnsafeMutablePointer<UInt8>, channels: Int, height: Int, width: Int,
                             scratch: UnsafeMutablePointer<UInt8>) {
        let plane = height * width, count = channels * plane
        // Truncated toward zero and clamped, as PIL's blend and lookup tables do.
        func clamp(_ v: Double) -> UInt8 { UInt8(max(0, min(255, v.rounded(.towardZero)))) }
        /// image = blend(degenerate, image, factor) = degenerate + factor·(image − degenerate), PIL's ImageEnhance.
        func blend(_ degenerate: (Int) -> Double, _ factor: Double) {
            for k in 0..<count { image[k] = clamp(degenerate(k) + factor * (Double(image[k]) - degenerate(k))) }
        }
        let factor = 1 + 0.9 * level * sign
        switch op {
        case .identity:
            return
        case .autoContrast:
            for c in 0..<channels {
                let p = image + c * plane
                var lo = 255, hi = 0
                for k in 0..<plane { lo = min(lo, Int(p[k])); hi = max(hi, Int(p[k])) }
                guard hi > lo else { continue }
                let scale = 255 / Double(hi - lo), offset = -Double(lo) * scale
                for k in 0..<plane { p[k] = clamp(Double(p[k]) * scale + offset) }
            }
        case .equalize:
            for c in 0..<channels {
                let p = image + c * plane
                var histogram = [Int](repeating: 0, count: 256)
                for k in 0..<plane { histogram[Int(p[k])] += 1 }
                let used = histogram.filter { $0 > 0 }
                let step = (used.reduce(0, +) - (used.last ?? 0)) / 255
                guard step > 0 else { continue }
                var lut = [UInt8](repeating: 0, count: 256)
                var n = step / 2
                for i in 0..<256 {
                    lut[i] = UInt8(min(255, n / step))
                    n += histogram[i]
                }
                for k in 0..<plane { p[k] = lut[Int(p[k])] }
            }
        case .solarize:
            let threshold = 256 - 256 * level
            for k in 0..<count where Double(image[k]) >= threshold { image[k] = 255 - image[k] }
        case .posterize:
            let bits = 8 - Int(4 * level)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            for k in 0..<count { image[k] &= mask }
        case .brightness:
            blend({ _ in 0 }, factor)
        case .contrast:
            // The degenerate image: the mean of the greyscale image (PIL: of its histogram).
            var sum = 0.0
            for k in 0..<plane { sum += grey(image, k, channels: channels, plane: plane) }
            let mean = (sum / Double(plane)).rounded()
            blend({ _ in mean }, factor)
        case .color:
            guard channels == 3 else { return }
            // The degenerate image: the greyscale image (8-bit, as PIL's "L"), in every channel.
            let greys = (0..<plane).map { grey(image, $0, channels: 3, plane: plane).rounded() }
            blend({ k in greys[k % plane] }, factor)
        case .sharpness:
            // The degenerate image: a 3×3 smoothing ([1 1 1; 1 5 1; 1 1 1] / 13), borders unchanged.
            scratch.update(from: image, count: count)
            for c in 0..<channels {
                let p = image + c * plane, s = scratch + c * plane
                guard height > 2, width > 2 else { continue }
                for y in 1..<(height - 1) {
                    for x in 1..<(width - 1) {
                        var acc = 4 * Int(s[y * width + x])
                        for dy in -1...1 { for dx in -1...1 { acc += Int(s[(y + dy) * width + x + dx]) } }
                        let smooth = (Double(acc) / 13).rounded()
                        p[y * width + x] = clamp(smooth + factor * (Double(s[y * width + x]) - smooth))
                    }
                }
            }
        case .rotate, .shearX, .shearY, .translateX, .translateY:
            // Output pixel (x, y) reads input (a·x' + b·y' + tx, c·x' + d·y' + ty) about the centre.
            var a = 1.0, b = 0.0, cc = 0.0, d = 1.0, tx = 0.0, ty = 0.0
            switch op {
            case .rotate:
                let angle = 30 * level * sign * Double.pi / 180
                a = cos(angle); b = sin(angle); cc = -sin(angle); d = cos(angle)
            case .shearX: b = 0.3 * level * sign
            case .shearY: cc = 0.3 * level * sign
            case .translateX: tx = 0.45 * level * sign * Double(width)
            default: ty = 0.45 * level * sign * Double(height)
            }
            scratch.update(from: image, count: count)
            let cx = Double(width - 1) / 2, cy = Double(height - 1) / 2
            for y in 0..<height {
                for x in 0..<width {
                    let u = Double(x) - cx, v = Double(y) - cy
                    let sx = Int((a * u + b * v + tx + cx).rounded()), sy = Int((cc * u + d * v + ty + cy).rounded())
                    let inside = sx >= 0 && sx < width && sy >= 0 && sy < height
                    for c in 0..<channels {
                        image[c * plane + y * width + x] = inside ? scratch[c * plane + sy * width + sx] : 0
                    }
                }
            }
        }
    }

    /// ITU-R 601-2 luma of pixel k (PIL's "L" conversion); the pixel itself for one channel.
    static func grey(_ image: UnsafeMutablePointer<UInt8>, _ k: Int, channels: Int, plane: Int) -> Double {
        guard channels == 3 else { return Double(image[k]) }
        return (0.299 * Double(image[k]) + 0.587 * Double(image[plane + k]) + 0.114 * Double(image[2 * plane + k]))
    }
}
