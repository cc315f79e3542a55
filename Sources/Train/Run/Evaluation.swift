/// Accuracy of predictions on a labelled set, overall, per class and per shot group.
public struct Evaluation: Codable, Sendable, Equatable {
    /// Fraction of images whose top-1 prediction is their label.
    public var top1: Double
    /// Mean over classes present in the set of their accuracy (= top-1 on a balanced set).
    public var meanClass: Double
    /// Per class (nil for classes without images in the set).
    public var perClass: [Double?]
    /// Mean per-class accuracy over the many-shot (> 100 training images), medium-shot
    /// (20–100) and few-shot (< 20) classes; nil when a group has no classes in the set.
    public var many: Double?
    public var medium: Double?
    public var few: Double?
    public var count: Int
    /// confusion[true class][predicted class]: image counts (sets of at most
    /// `confusionLimit` classes; nil beyond, and in runs written before it was kept).
    public var confusion: [[Int]]?
    public static let confusionLimit = 100

    /// The shot group of a class with `n` training images.
    public enum Shot: String, Sendable { case many, medium, few }
    public static func shot(_ n: Int) -> Shot { n > 100 ? .many : n >= 20 ? .medium : .few }

    public init(predictions: [Int], labels: [Int], trainingCounts: [Int]) {
        let classes = trainingCounts.count
        var total = [Int](repeating: 0, count: classes), right = total
        for (p, l) in zip(predictions, labels) where l < classes {
            total[l] += 1
            if p == l { right[l] += 1 }
        }
        count = labels.count
        if classes <= Self.confusionLimit {
            var m = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
            for (p, l) in zip(predictions, labels) where l < classes && p >= 0 && p < classes { m[l][p] += 1 }
            confusion = m
        }
        top1 = labels.isEmpty ? 0 : Double(right.reduce(0, +)) / Double(labels.count)
        let perClass = (0..<classes).map { total[$0] > 0 ? Double(right[$0]) / Double(total[$0]) : nil }
        self.perClass = perClass
        func mean(_ members: [Int]) -> Double? {
            let values = members.compactMap { perClass[$0] }
            return values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
        }
        meanClass = mean(Array(0..<classes)) ?? 0
        many = mean((0..<classes).filter { Self.shot(trainingCounts[$0]) == .many })
        medium = mean((0..<classes).filter { Self.shot(trainingCounts[$0]) == .medium })
        few = mean((0..<classes).filter { Self.shot(trainingCounts[$0]) == .few })
    }

    /// The index of the largest of `classes` values at `row` (the first on ties).
    public static func argmax(_ values: UnsafeBufferPointer<Float>, row: Int, classes: Int) -> Int {
        var best = 0, top = values[row * classes]
        for j in 1..<classes where values[row * classes + j] > top {
            top = values[row * classes + j]
            best = j
        }
        return best
    }
}
