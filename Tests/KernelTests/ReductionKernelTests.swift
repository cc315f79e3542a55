import CKernels
import Foundation
import XCTest

/// Reductions, softmax along a middle axis and group normalisation against plain Double loops.
final class ReductionKernelTests: XCTestCase {
    /// [outer, length, inner] shapes: rows (inner 1) shorter and longer than a vector, columns
    /// (inner > 1) with and without a partial vector, an empty reduction.
    static let shapes = [(1, 1, 1), (3, 5, 1), (2, 37, 1), (2, 4, 16), (3, 7, 21), (1, 196, 40), (2, 3, 5), (4, 0, 3)]

    func testReduceAxis() {
        var rng = TestRandom(seed: 61)
        for (outer, length, inner) in Self.shapes {
            let x = rng.floats(outer * length * inner)
            for kind in Int32(0)...6 {
                let y = Guarded(outer * inner, fill: .nan)
                kiln_reduce_axis(kind, x, Int32(outer), Int32(length), Int32(inner), y.pointer)
                var want = [Double]()
                for o in 0..<outer {
                    for i in 0..<inner {
                        let v = (0..<length).map { Double(x[(o * length + $0) * inner + i]) }
                        switch kind {
                        case 0: want.append(v.reduce(0, +))
                        case 1: want.append(v.reduce(0, +) / Double(length))
                        case 2: want.append(v.reduce(0) { $0 + $1 * $1 })
                        case 3: want.append(v.reduce(0) { $0 + $1 * $1 }.squareRoot())
                        case 4: want.append(v.max() ?? -.infinity)
                        case 5: want.append(v.min() ?? .infinity)
                        default: want.append(v.reduce(0) { $0 + abs($1) })
                        }
                    }
                }
                if length == 0 && kind == 1 {  // the mean of nothing: 0/0
                    XCTAssertTrue(y.values.allSatisfy(\.isNaN), "mean of an empty axis")
                } else {
                    assertClose(y.values, want, tol: 1e-5, "reduce kind \(kind) \(outer)×\(length)×\(inner)")
                }
                XCTAssertTrue(y.intact, "reduce kind \(kind) \(outer)×\(length)×\(inner)")
            }
        }
        // NaN propagates through max and min, in a vector lane and in the tail.
        for at in [3, 20] {
            var x = rng.floats(24)
            x[at] = .nan
            for kind: Int32 in [4, 5] {
                let y = Guarded(1)
                kiln_reduce_axis(kind, x, 1, 24, 1, y.pointer)
                XCTAssertTrue(y.values[0].isNaN, "kind \(kind) with NaN at \(at)")
                let z = Guarded(2)
                kiln_reduce_axis(kind, x, 1, 12, 2, z.pointer)
                XCTAssertTrue(z.values[at % 2].isNaN && !z.values[1 - at % 2].isNaN, "columns, kind \(kind) with NaN at \(at)")
            }
        }
    }

    func testSoftmaxAxis() {
        var rng = TestRandom(seed: 63)
        for (outer, length, inner) in Self.shapes where length > 0 {
            var x = rng.floats(outer * length * inner).map { $0 * 20 }
            if x.count > 5 { x[4] = 85 }  // a large logit: the maximum is subtracted first
            for log in [false, true] {
                let y = Guarded(x.count, fill: .nan)
                kiln_softmax_axis(x, y.pointer, Int32(outer), Int32(length), Int32(inner), log ? 1 : 0)
                var want = [Double](repeating: 0, count: x.count)
                for o in 0..<outer {
                    for i in 0..<inner {
                        let at = (0..<length).map { (o * length + $0) * inner + i }
                        let v = at.map { Double(x[$0]) }, m = v.max()!
                        let sum = v.reduce(0) { $0 + Foundation.exp($1 - m) }
                        for (k, e) in at.enumerated() { want[e] = log ? v[k] - m - Foundation.log(sum) : Foundation.exp(v[k] - m) / sum }
                    }
                }
                assertClose(y.values, want, tol: 1e-5, "softmax axis \(outer)×\(length)×\(inner) log=\(log)")
                XCTAssertTrue(y.intact)
            }
        }
    }

    func testGroupNorm() {
        var rng = TestRandom(seed: 65)
        // (images, channels, groups, inner): instance norm (groups = channels), groups of
        // several channels, one group, a single value per channel.
        for (images, channels, groups, inner) in [(2, 3, 3, 10), (2, 6, 2, 7), (1, 4, 1, 33), (3, 8, 4, 1)] {
            let x = rng.floats(images * channels * inner).map { $0 * 3 + 1 }
            let scale = rng.floats(channels), bias = rng.floats(channels)
            let cpg = channels / groups, size = cpg * inner, rows = images * groups
            var want = [Double](repeating: 0, count: x.count)
            for r in 0..<rows {
                let v = (0..<size).map { Double(x[r * size + $0]) }
                let mean = v.reduce(0, +) / Double(size)
                let variance = v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(size)
                for k in 0..<size {
                    let c = (r % groups) * cpg + k / inner
                    want[r * size + k] = (v[k] - mean) / (variance + 1e-5).squareRoot() * Double(scale[c]) + Double(bias[c])
                }
            }
            // Whole, and split into two row ranges as threads split it.
            for split in [0, rows / 2] {
                let y = Guarded(x.count, fill: .nan)
                x.withUnsafeBufferPointer { xp in
                    if split > 0 {
                        kiln_groupnorm_rows(xp.baseAddress!, Int32(split), 0, Int32(groups), Int32(cpg), Int32(inner), scale, bias, 1e-5, y.pointer)
                    }
                    kiln_groupnorm_rows(xp.baseAddress! + split * size, Int32(rows - split), Int32(split), Int32(groups), Int32(cpg), Int32(inner),
                                        scale, bias, 1e-5, y.pointer + split * size)
                }
                assertClose(y.values, want, tol: 1e-4, "groupnorm \(images)×\(channels)/\(groups)×\(inner) split \(split)")
                XCTAssertTrue(y.intact)
            }
        }
    }
}
