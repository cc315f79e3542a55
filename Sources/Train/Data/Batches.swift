import Foundation
import Graph
import Runtime

/// Per-channel normalisation: x = (pixel/255 − mean[c]) / std[c].
public struct Normalization: Sendable, Equatable {
    public var mean: [Float]
    public var std: [Float]

    public init(mean: [Float], std: [Float]) {
        self.mean = mean
        self.std = std
    }

    /// Mean and (population) standard deviation of every channel over a dataset, in [0, 1] units.
    public static func fit(_ d: ImageDataset) -> Normalization {
        let channels = d.imageShape[0], plane = d.imageSize / max(channels, 1)
        var sum = [Double](repeating: 0, count: channels), squares = sum
        for i in 0..<d.count {
            for c in 0..<channels {
                let base = i * d.imageSize + c * plane
                var s = 0.0, q = 0.0
                for k in 0..<plane {
                    let v = Double(d.pixels[base + k]) / 255
                    s += v
                    q += v * v
                }
                sum[c] += s
                squares[c] += q
            }
        }
        let n = Double(max(d.count * plane, 1))
        let mean = sum.map { $0 / n }
        let std = zip(squares, mean).map { (max($0 / n - $1 * $1, 0)).squareRoot() }
        return Normalization(mean: mean.map(Float.init), std: std.map { Float(max($0, 1e-6)) })
    }
}

/// Training-time augmentation: a random crop of the image zero-padded by `cropPadding`
/// pixels on each side (0: none), and a random horizontal flip.
public struct Augmentation: Sendable, Equatable {
    public var cropPadding: Int
    public var flip: Bool
    /// RandAugment on the 8-bit image, before the crop and flip; nil: none.
    public var randAugment: RandAugment?

    public init(cropPadding: Int = 0, flip: Bool = false, randAugment: RandAugment? = nil) {
        self.cropPadding = cropPadding
        self.flip = flip
        self.randAugment = randAugment
    }

    public static let none = Augmentation()

    /// Draws `ImageDataset.batch` takes from the generator per image: RandAugment's (two per
    /// operation), two for the crop offset (with padding), one for the flip. A data-parallel
    /// rank skips the draws of the images other ranks take, so every image gets the
    /// augmentation it gets in one process.
    public var drawsPerImage: Int { (randAugment?.drawsPerImage ?? 0) + (cropPadding > 0 ? 2 : 0) + (flip ? 1 : 0) }
}

extension ImageDataset {
    /// Writes images `indices` as normalised floats (NCHW) into `out`, augmented with draws
    /// from `rng` (per image: RandAugment's operations and signs, crop offset y, x, then
    /// flip), and returns their labels.
    public func batch(_ indices: [Int], augmentation: Augmentation, normalization: Normalization, rng: inout KilnRandom,
                      into out: UnsafeMutablePointer<Float>) -> [Int] {
        let channels = imageShape[0], h = imageShape[1], w = imageShape[2]
        let pad = augmentation.cropPadding
        let scale = normalization.std.map { 1 / ($0 * 255) }, shift = zip(normalization.mean, normalization.std).map { -$0 / $1 }
        // RandAugment works on a copy of the image (and a scratch image after it).
        var copy = [UInt8](repeating: 0, count: augmentation.randAugment == nil ? 0 : 2 * imageSize)
        pixels.withUnsafeBufferPointer { all in
            copy.withUnsafeMutableBufferPointer { buffer in
                for (b, i) in indices.enumerated() {
                    var image = all.baseAddress! + i * imageSize
                    if let ra = augmentation.randAugment {
                        let edited = buffer.baseAddress!
                        edited.update(from: image, count: imageSize)
                        ra.apply(edited, channels: channels, height: h, width: w, rng: &rng, scratch: edited + imageSize)
                        image = UnsafePointer(edited)
                    }
                    var dy = 0, dx = 0, mirror = false
                    if pad > 0 {
                        dy = Int(rng.next() % UInt64(2 * pad + 1)) - pad
                        dx = Int(rng.next() % UInt64(2 * pad + 1)) - pad
                    }
                    if augmentation.flip { mirror = rng.next() & 1 == 1 }
                    for c in 0..<channels {
                        let src = image + c * h * w
                        let dst = out + b * imageSize + c * h * w
                        for y in 0..<h {
                            let sy = y + dy
                            for x in 0..<w {
                                let sx = (mirror ? w - 1 - x : x) + dx
                                // Outside the image is the zero padding (0 before normalisation).
                                let v: Float = sy >= 0 && sy < h && sx >= 0 && sx < w ? Float(src[sy * w + sx]) : 0
                                dst[y * w + x] = v * scale[c] + shift[c]
                            }
                        }
                    }
                }
            }
        }
        return indices.map { labels[$0] }
    }
}

/// The order of one epoch's images, from one seeded generator: a shuffle of every image
/// (each once), or — the `resample` rule — class-balanced sampling with replacement: each
/// draw picks a class uniformly, then an image of that class uniformly; as many draws as
/// there are images.
public enum EpochOrder {
    public static func shuffled(count: Int, rng: inout KilnRandom) -> [Int] {
        var order = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, draw(below: i + 1, &rng)) }
        }
        return order
    }

    public static func classBalanced(labels: [Int], classes: Int, rng: inout KilnRandom) -> [Int] {
        var byClass = [[Int]](repeating: [], count: classes)
        for (i, l) in labels.enumerated() { byClass[l].append(i) }
        let present = byClass.indices.filter { !byClass[$0].isEmpty }
        guard !present.isEmpty else { return [] }
        return (0..<labels.count).map { _ in
            let members = byClass[present[draw(below: present.count, &rng)]]
            return members[draw(below: members.count, &rng)]
        }
    }

    /// A uniform integer in 0..<bound without modulo bias.
    static func draw(below bound: Int, _ rng: inout KilnRandom) -> Int {
        let b = UInt64(bound), limit = UInt64.max - UInt64.max % b
        var r = rng.next()
        while r >= limit { r = rng.next() }
        return Int(r % b)
    }
}
