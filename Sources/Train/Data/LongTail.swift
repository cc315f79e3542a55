import Foundation
import Runtime

/// How a long-tailed subset thins the classes, in natural class order.
public enum LongTailProfile: String, Codable, Sendable, CaseIterable {
    /// n_i = ⌊n_max · (1/ratio)^(i/(C−1))⌋
    case exp
    /// The first ⌊C/2⌋ classes keep n_max, the rest ⌊n_max/ratio⌋.
    case step
}

public enum LongTail {
    /// Per-class image counts of a long-tailed subset.
    ///
    /// References: Cao et al. 2019 (LDAM-DRW) and its reference data code; `../shared/LDAM-DRW.md`.
    public static func counts(classes: Int, nMax: Int, profile: LongTailProfile, ratio: Double) -> [Int] {
        precondition(classes >= 1 && ratio >= 1)
        let imbalance = 1 / ratio
        switch profile {
        case .exp:
            guard classes > 1 else { return [nMax] }
            return (0..<classes).map { i in
                Int(Double(nMax) * pow(imbalance, Double(i) / Double(classes - 1)))
            }
        case .step:
            return (0..<classes).map { i in i < classes / 2 ? nMax : Int(Double(nMax) * imbalance) }
        }
    }

    /// Class-balanced weights from the effective number of samples, w_j = (1 − β)/(1 − β^{n_j}),
    /// normalised to sum to the number of classes.
    ///
    /// References: Cui et al., "Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019.
    public static func classBalancedWeights(counts: [Int], beta: Double = 0.9999) -> [Double] {
        let raw = counts.map { (1 - beta) / (1 - pow(beta, Double($0))) }
        let total = raw.reduce(0, +)
        return raw.map { $0 / total * Double(counts.count) }
    }

    /// The images of a long-tailed subset, chosen as the LDAM-DRW reference code chooses
    /// them: numpy's legacy generator seeded with `seed`, then per class in label order its
    /// indices (in dataset order) shuffled by `np.random.shuffle` and the first `counts[i]`
    /// kept; returned in the dataset's order. A class with fewer images than asked for is an
    /// error.
    public static func subsetIndices(labels: [Int], counts: [Int], seed: UInt64) throws -> [Int] {
        var byClass = [[Int]](repeating: [], count: counts.count)
        for (i, l) in labels.enumerated() where l < counts.count { byClass[l].append(i) }
        guard seed <= UInt64(UInt32.max) else {
            throw DatasetError(path: "", message: "the long-tailed subset's seed must be below 2^32 (numpy's), got \(seed)")
        }
        var rng = NumpyLegacyRandom(seed: UInt32(seed))
        var keep: [Int] = []
        for (c, want) in counts.enumerated() {
            var pool = byClass[c]
            guard pool.count >= want else {
                throw DatasetError(path: "", message: "class \(c) has \(pool.count) images, the long-tailed profile asks for \(want)")
            }
            rng.shuffle(&pool)
            keep += pool.prefix(want)
        }
        return keep.sorted()
    }

    /// LDAM margins Δ_j = C · n_j^(−1/4), with C chosen so the rarest class gets `maxMargin`.
    /// log of each class's training prior n_j / Σ n (a count of 0 taken as 1e-12), the term
    /// logit adjustment scales by τ.
    public static func logPrior(counts: [Int]) -> [Double] {
        let total = Double(counts.reduce(0, +))
        return counts.map { Foundation.log(max(Double($0), 1e-12) / total) }
    }

    public static func ldamMargins(counts: [Int], maxMargin: Double = 0.5) -> [Double] {
        let raw = counts.map { 1 / Double($0).squareRoot().squareRoot() }
        let top = raw.max() ?? 1
        return raw.map { $0 * maxMargin / top }
    }
}
