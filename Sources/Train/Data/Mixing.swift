import Foundation
import Graph

/// Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) on a batch of normalised images:
/// each batch is paired with a seeded permutation of itself and mixed with weight
/// λ ~ Beta(α, α) — mixup blends whole images, CutMix pastes a box of area (1 − λ) (λ then
/// recomputed from the box as clipped) — and the loss becomes λ·loss(labels) +
/// (1 − λ)·loss(permuted labels). With both, each batch takes one of them with probability ½.
public struct Mixing: Sendable, Equatable, Codable {
    public var mixupAlpha: Double?
    public var cutmixAlpha: Double?

    public init(mixupAlpha: Double? = nil, cutmixAlpha: Double? = nil) {
        self.mixupAlpha = mixupAlpha
        self.cutmixAlpha = cutmixAlpha
    }

    public var isEnabled: Bool { mixupAlpha != nil || cutmixAlpha != nil }

    public var problems: [String] {
        var p: [String] = []
        if let a = mixupAlpha, !(a > 0 && a.isFinite) { p.append("--mixup's α must be positive") }
        if let a = cutmixAlpha, !(a > 0 && a.isFinite) { p.append("--cutmix's α must be positive") }
        return p
    }

    /// Mixes `count` images of `imageShape` ([C, H, W]) at `batch` in place; returns the
    /// second labels and λ. Draws from `rng`: the choice (with both), λ, the permutation and
    /// CutMix's box centre.
    public func apply(_ batch: UnsafeMutablePointer<Float>, count: Int, imageShape: [Int], labels: [Int], rng: inout KilnRandom) -> (labels: [Int], lambda: Float) {
        guard isEnabled, count > 0 else { return (labels, 1) }
        var useCutMix = cutmixAlpha != nil
        if let _ = mixupAlpha, cutmixAlpha != nil { useCutMix = rng.next() & 1 == 1 }
        let alpha = (useCutMix ? cutmixAlpha : mixupAlpha)!
        var lambda = Self.beta(alpha, &rng)
        var order = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, EpochOrder.draw(below: i + 1, &rng)) }
        let size = imageShape.reduce(1, *)
        let source = Array(UnsafeBufferPointer(start: batch, count: count * size))
        if useCutMix {
            let c = imageShape[0], h = imageShape[1], w = imageShape[2]
            let ratio = (1 - lambda).squareRoot()
            let cutH = Int(Double(h) * ratio), cutW = Int(Double(w) * ratio)
            let cy = EpochOrder.draw(below: h, &rng), cx = EpochOrder.draw(below: w, &rng)
            let y0 = max(cy - cutH / 2, 0), y1 = min(cy + cutH / 2, h), x0 = max(cx - cutW / 2, 0), x1 = min(cx + cutW / 2, w)
            for i in 0..<count {
                let from = order[i] * size, to = batch + i * size
                for ch in 0..<c {
                    for y in y0..<max(y0, y1) {
                        for x in x0..<max(x0, x1) { to[ch * h * w + y * w + x] = source[from + ch * h * w + y * w + x] }
                    }
                }
            }
            lambda = 1 - Double(max(0, y1 - y0) * max(0, x1 - x0)) / Double(h * w)
        } else {
            let l = Float(lambda)
            for i in 0..<count {
                let from = order[i] * size
                for k in 0..<size { batch[i * size + k] = l * source[i * size + k] + (1 - l) * source[from + k] }
            }
        }
        return (order.map { labels[$0] }, Float(lambda))
    }

    /// A Beta(α, α) draw (for tests of the distribution).
    public static func betaForTests(_ alpha: Double, _ rng: inout KilnRandom) -> Double { beta(alpha, &rng) }

    /// A Beta(α, α) draw as X / (X + Y) with X, Y ~ Gamma(α).
    static func beta(_ alpha: Double, _ rng: inout KilnRandom) -> Double {
        let x = gamma(alpha, &rng), y = gamma(alpha, &rng)
        return x + y > 0 ? x / (x + y) : 0.5
    }

    /// Gamma(α, 1) by Marsaglia and Tsang's method (α < 1: Gamma(α + 1)·U^(1/α)).
    static func gamma(_ alpha: Double, _ rng: inout KilnRandom) -> Double {
        func uniform() -> Double { (Double(rng.next() >> 11) + 0.5) / Double(1 << 53) }
        if alpha < 1 { return gamma(alpha + 1, &rng) * pow(uniform(), 1 / alpha) }
        let d = alpha - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            // A standard normal by Box–Muller.
            let z = (-2 * log(uniform())).squareRoot() * cos(2 * Double.pi * uniform())
            let v = pow(1 + c * z, 3)
            guard v > 0 else { continue }
            let u = uniform()
            if log(u) < 0.5 * z * z + d - d * v + d * log(v) { return d * v }
        }
    }
}
