import CKernels
import Foundation
import XCTest

/// The transformer path's kernels against plain Double loops and the C library's functions:
/// the packed linear layer with its epilogue, the vector activations (exp, erf, GELU, …),
/// softmax, run-wise gathers and the broadcast binary kernel.
final class TransformerKernelTests: XCTestCase {
    /// Double-precision forms of the activation codes (kiln_types.h).
    static func activation(_ kind: Int32, _ v: Double, alpha: Double = 0, lo: Double = 0, hi: Double = 0) -> Double {
        switch kind {
        case 0: return v
        case 1: return v.isNaN ? v : max(0, v)
        case 4: return 1 / (1 + Foundation.exp(-v))
        case 6: return 0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot()))
        case 7: return 0.5 * v * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v)))
        case 8: return Foundation.erf(v)
        case 9: return v.isNaN ? v : min(1, max(0, alpha * v + lo))
        case 10: return v.squareRoot()
        case 11: return Foundation.tanh(v)
        case 12: return Foundation.exp(v)
        case 13: return Foundation.log(v)
        case 14: return abs(v)
        case 15: return -v
        case 16: return 1 / v
        case 17: return v >= 0 || v.isNaN ? v : alpha * (Foundation.exp(v) - 1)
        case 18: return Foundation.log(1 + Foundation.exp(v))
        case 19: return v * Foundation.tanh(Foundation.log(1 + Foundation.exp(v)))
        default: return .nan
        }
    }

    func testLinear() {
        var rng = TestRandom(seed: 51)
        // Rows not a multiple of any tile height, N below, at and past a 32-column panel, K odd.
        // K = 3000 is cut into chunks whose partial sums wait in y (and rows into blocks: a block
        // of x is kept to the L2's size); K = 0 is bias, residual and activation alone.
        let shapes = [(1, 1, 1), (7, 5, 3), (9, 33, 17), (25, 64, 31), (197, 40, 96), (3, 192, 65), (50, 40, 3000), (3, 5, 0)]
        let activations: [(Int32, Float, Float)] = [(0, 0, 0), (1, 0, 0), (6, 0, 0), (9, 0.2, 0.5)]
        for (rows, n, k) in shapes {
            for transposed in [false, true] {
                let x = rng.floats(rows * k), w = rng.floats(k * n), bias = rng.floats(n), residual = rng.floats(rows * n)
                let packed = Guarded(kiln_linear_packed_size(Int32(k), Int32(n)))
                kiln_linear_pack(w, Int32(k), Int32(n), transposed ? 1 : 0, packed.pointer)
                XCTAssertTrue(packed.intact, "pack \(rows)×\(k)×\(n)")
                for (kind, alpha, lo) in activations {
                    for (withBias, withResidual) in [(false, false), (true, false), (true, true)] {
                        var want = [Double](repeating: 0, count: rows * n)
                        for r in 0..<rows {
                            for j in 0..<n {
                                var s = 0.0
                                for q in 0..<k { s += Double(x[r * k + q]) * Double(transposed ? w[j * k + q] : w[q * n + j]) }
                                if withBias { s += Double(bias[j]) }
                                if withResidual { s += Double(residual[r * n + j]) }
                                want[r * n + j] = Self.activation(kind, s, alpha: Double(alpha), lo: Double(lo))
                            }
                        }
                        // Rows and panels split as threads split them: two row ranges, then two panel ranges.
                        let panels = Int32((n + 31) / 32), half = Int32(rows / 2)
                        let act = kiln_act(kind: kind, alpha: alpha, lo: lo, hi: 0)
                        for split in [false, true] {
                            let y = Guarded(rows * n, fill: .nan)
                            bias.withUnsafeBufferPointer { b in
                                residual.withUnsafeBufferPointer { rs in
                                    let bp = withBias ? b.baseAddress : nil, rp = withResidual ? rs.baseAddress : nil
                                    if split {
                                        kiln_linear(x, Int32(k), Int32(n), packed.pointer, 0, half, 0, panels, bp, rp, act, y.pointer)
                                        kiln_linear(x, Int32(k), Int32(n), packed.pointer, half, Int32(rows), 0, panels / 2, bp, rp, act, y.pointer)
                                        kiln_linear(x, Int32(k), Int32(n), packed.pointer, half, Int32(rows), panels / 2, panels, bp, rp, act, y.pointer)
                                    } else {
                                        kiln_linear(x, Int32(k), Int32(n), packed.pointer, 0, Int32(rows), 0, panels, bp, rp, act, y.pointer)
                                    }
                                }
                            }
                            assertClose(y.values, want, tol: 1e-4, "linear \(rows)×\(k)×\(n) trans=\(transposed) act \(kind) bias=\(withBias) residual=\(withResidual) split=\(split)")
                            XCTAssertTrue(y.intact)
                        }
                        // The residual may be the output itself (an in-place add): every chunk
                        // of K must read it before its first partial sum overwrites it.
                        if withResidual {
                            let y = Guarded(rows * n, fill: .nan)
                            for i in 0..<rows * n { y.pointer[i] = residual[i] }
                            bias.withUnsafeBufferPointer { b in
                                kiln_linear(x, Int32(k), Int32(n), packed.pointer, 0, Int32(rows), 0, panels, b.baseAddress, y.pointer, act, y.pointer)
                            }
                            assertClose(y.values, want, tol: 1e-4, "linear \(rows)×\(k)×\(n) trans=\(transposed) act \(kind) residual in place")
                            XCTAssertTrue(y.intact)
                        }
                    }
                }
            }
        }
    }

    func testActivations() {
        // Wide ranges (tails, zero, subnormal results) plus NaN and ±inf; n = 37 leaves a tail.
        var values: [Float] = stride(from: -12.0, through: 12.0, by: 0.0137).map { Float($0) }
        values += [0, -0, 1e-6, -1e-6, 1e-30, 3.9, 4.1, -87.5, -100, 88.5, 89, .nan, .infinity, -.infinity]
        let positive = values.map { abs($0) } + [0.5, 2, 1e-20]
        let cases: [(Int32, String, [Float], Double)] = [
            (4, "sigmoid", values, 2e-6), (6, "gelu", values, 2e-6), (7, "gelu-tanh", values, 2e-6), (8, "erf", values, 1e-6),
            (9, "hard-sigmoid", values, 1e-7), (11, "tanh", values, 1e-6), (12, "exp", values.filter { $0 < 88 }, 2e-6),
            (14, "abs", values, 0), (15, "neg", values, 0), (16, "reciprocal", values, 1e-7), (10, "sqrt", positive, 1e-7),
            (13, "log", positive, 1e-6), (17, "elu", values, 1e-6), (18, "softplus", values.filter { $0 < 80 }, 1e-6),
            (19, "mish", values.filter { $0 < 80 }, 2e-6),
        ]
        for (kind, name, xs, tol) in cases {
            for n in [xs.count, 37, 16, 5] {
                let x = Array(xs.prefix(n)), y = Guarded(n, fill: 7)
                let act = kiln_act(kind: kind, alpha: kind == 9 ? 0.2 : 1, lo: kind == 9 ? 0.5 : 0, hi: 0)
                kiln_activation(x, y.pointer, n, act)
                let want = x.map { Self.activation(kind, Double($0), alpha: kind == 9 ? 0.2 : 1, lo: kind == 9 ? 0.5 : 0) }
                // Relative tolerance, plus 3e-8 absolute (float rounding of the argument where
                // the result cancels to near zero, as HardSigmoid's α·x + β does).
                for i in 0..<n where !(want[i].isNaN && y.values[i].isNaN) {
                    let g = Double(y.values[i]), w = Double(Float(want[i]))
                    if g == w { continue }
                    XCTAssertLessThanOrEqual(abs(g - w), tol * abs(w) + 3e-8, "\(name)(\(x[i])) = \(g), expected \(w)")
                }
                XCTAssertTrue(y.intact, name)
            }
        }
    }

    func testSoftmax() {
        var rng = TestRandom(seed: 53)
        for (rows, n) in [(1, 1), (3, 5), (2, 16), (4, 197), (2, 1000)] {
            var x = rng.floats(rows * n).map { $0 * 20 }
            if n > 3 { x[n + 2] = 80; x[n + 3] = -90 }  // large logits: the max is subtracted first
            for log in [false, true] {
                let y = Guarded(rows * n, fill: .nan)
                kiln_softmax_rows(x, y.pointer, Int32(rows), Int32(n), log ? 1 : 0)
                var want = [Double]()
                for r in 0..<rows {
                    let row = (0..<n).map { Double(x[r * n + $0]) }, m = row.max()!
                    let sum = row.reduce(0) { $0 + Foundation.exp($1 - m) }
                    want += row.map { log ? $0 - m - Foundation.log(sum) : Foundation.exp($0 - m) / sum }
                }
                assertClose(y.values, want, tol: 1e-5, "softmax \(rows)×\(n) log=\(log)")
                XCTAssertTrue(y.intact)
            }
        }
        // A NaN fills its row with NaN; other rows are untouched by it.
        let x: [Float] = [1, .nan, 3, 1, 2, 3]
        let y = Guarded(6)
        kiln_softmax_rows(x, y.pointer, 2, 3, 0)
        XCTAssertTrue(y.values[0..<3].allSatisfy(\.isNaN))
        XCTAssertEqual(Double(y.values[3]), Foundation.exp(-2) / (1 + Foundation.exp(-1) + Foundation.exp(-2)), accuracy: 1e-6)
    }

    func testGatherRunsAndBroadcastBinary() {
        var rng = TestRandom(seed: 55)
        let x = rng.floats(100)
        let map: [Int32] = [40, -1, 0, 92]
        let y = Guarded(4 * 8, fill: 7)
        kiln_gather_runs(x, map, 4, 8, 0.5, y.pointer)
        var want = [Double]()
        for m in map { want += (0..<8).map { m < 0 ? 0.5 : Double(x[Int(m) + $0]) } }
        assertClose(y.values, want, tol: 0, "gather_runs")
        XCTAssertTrue(y.intact)
        // b broadcast as a scalar, a row [period] (inner 1), a channel vector (inner > 1); n not
        // a multiple of the pattern.
        let a = rng.floats(1000), b = rng.floats(40)
        for (period, inner) in [(1, 1), (40, 1), (7, 3), (40, 25), (3, 1000)] {
            for op in Int32(0)...3 {
                let out = Guarded(1000, fill: .nan)
                kiln_binary(a, b, out.pointer, 1000, op, period, inner)
                let want = (0..<1000).map { i -> Double in
                    let u = Double(a[i]), v = Double(b[(i / inner) % period])
                    return [u + v, u - v, u * v, u / v][Int(op)]
                }
                assertClose(out.values, want, tol: 1e-6, "binary op \(op) period \(period) inner \(inner)")
                XCTAssertTrue(out.intact)
            }
        }
    }
}
