import CKernels
import Foundation
import XCTest

/// Pooling, BatchNorm, elementwise, epilogue and optimizer kernels against plain loops.
final class OtherKernelTests: XCTestCase {
    func testPools() {
        var rng = TestRandom(seed: 21)
        let cases: [Window] = [
            Window(c: 1, h: 8, w: 8, m: 1, kh: 3, kw: 3, sh: 2, sw: 2, pt: 1, pl: 1, pb: 1, pr: 1),
            Window(c: 1, h: 7, w: 10, m: 1, kh: 2, kw: 3, sh: 1, sw: 2, dh: 2, dw: 1, pt: 0, pl: 1, pb: 1, pr: 2),
            Window(c: 1, h: 5, w: 5, m: 1, kh: 5, kw: 5, sh: 1, sw: 1, pt: 2, pl: 2, pb: 2, pr: 2),
            Window(c: 1, h: 2, w: 4100, m: 1, kh: 2, kw: 3, sh: 1, sw: 3, pt: 0, pl: 1, pb: 0, pr: 1),  // rows past 4,096
            Window(c: 1, h: 3, w: 3, m: 1, kh: 2, kw: 2, sh: 2, sw: 2, pt: 0, pl: 0, pb: 3, pr: 3),    // windows all padding
            // 3 × 3 stride 2 on wide rows (sixteen outputs at a time), with and without padding.
            Window(c: 1, h: 9, w: 147, m: 1, kh: 3, kw: 3, sh: 2, sw: 2),
            Window(c: 1, h: 7, w: 112, m: 1, kh: 3, kw: 3, sh: 2, sw: 2, pt: 1, pl: 1, pb: 1, pr: 1),
            Window(c: 1, h: 5, w: 70, m: 1, kh: 3, kw: 3, sh: 2, sw: 2, pt: 0, pl: 0, pb: 1, pr: 1),
            // Rows shorter than two vectors (SqueezeNet's 27 → 13 and 55 → 27, ceil mode's
            // right-hand padding): the last vector partly past the row.
            Window(c: 1, h: 27, w: 27, m: 1, kh: 3, kw: 3, sh: 2, sw: 2),
            Window(c: 1, h: 13, w: 13, m: 1, kh: 3, kw: 3, sh: 2, sw: 2, pt: 0, pl: 0, pb: 1, pr: 1),
            Window(c: 1, h: 6, w: 55, m: 1, kh: 3, kw: 3, sh: 2, sw: 2, pt: 1, pl: 1, pb: 2, pr: 2),
            Window(c: 1, h: 3, w: 4, m: 1, kh: 3, kw: 3, sh: 2, sw: 2, pt: 0, pl: 0, pb: 2, pr: 3),
            // Stride 1 (the average pool's row-sum path): Inception's 3 × 3 with padding 1 on
            // 17² and 8² planes, a 5 × 2 window with uneven padding, rows longer than 16.
            Window(c: 1, h: 17, w: 17, m: 1, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1),
            Window(c: 1, h: 8, w: 8, m: 1, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1),
            Window(c: 1, h: 9, w: 40, m: 1, kh: 5, kw: 2, sh: 2, sw: 1, pt: 2, pl: 0, pb: 3, pr: 1),
        ]
        for g in cases {
            var x = rng.floats(g.h * g.w)
            x[x.count / 2] = .nan
            // NaNs in each tap position of some window (first, middle and last column).
            if g.w > 60 { for at in [g.w + 20, 2 * g.w + 41, 3 * g.w + 62] where at < x.count { x[at] = .nan } }
            let y = Guarded(g.oh * g.ow, fill: 7)
            kiln_maxpool2d(x, g.geometry, y.pointer)
            assertClose(y.values, Reference.pool(g, x: x, max: true, includePad: false), tol: 0, "maxpool \(g)")
            for include in [false, true] {
                let a = Guarded(g.oh * g.ow, fill: 7)
                kiln_avgpool2d(x, g.geometry, include ? 1 : 0, a.pointer)
                assertClose(a.values, Reference.pool(g, x: x, max: false, includePad: include), tol: 1e-6, "avgpool include_pad=\(include) \(g)")
                XCTAssertTrue(a.intact)
            }
            XCTAssertTrue(y.intact)
        }
        // Plane sizes below, at and past the 16- and 32-value steps, and a 112 × 112 plane.
        for (planes, size) in [(5, 49), (3, 1), (2, 15), (2, 16), (3, 33), (2, 64), (2, 112 * 112)] {
            let x = rng.floats(planes * size), y = Guarded(planes)
            kiln_global_avgpool(x, Int32(planes), Int32(size), y.pointer)
            let want = (0..<planes).map { p in x[(p * size)..<(p * size + size)].reduce(0.0) { $0 + Double($1) } / Double(size) }
            assertClose(y.values, want, tol: 1e-6, "global average pool, \(planes) planes of \(size)")
            XCTAssertTrue(y.intact)
        }
    }

    /// BatchNorm synchronised across ranks: the images split between two "ranks", each rank's
    /// partial sums added, then each half normalised and differentiated with the joint
    /// statistics — the whole-batch kernels' results (checked against plain loops above).
    func testBatchNormInPieces() {
        var rng = TestRandom(seed: 25)
        for (n, c, inner, relu) in [(3, 5, 17, false), (2, 8, 64, true), (4, 3, 33, true)] {
            let x = rng.floats(n * c * inner), scale = rng.floats(c), bias = rng.floats(c), dy = rng.floats(n * c * inner)
            let runMean = rng.floats(c), runVar = rng.floats(c).map { abs($0) + 0.5 }
            let eps: Float = 1e-5
            let y = Guarded(n * c * inner), mean = Guarded(c), invstd = Guarded(c), nextMean = Guarded(c), nextVar = Guarded(c)
            kiln_batchnorm_train(x, Int32(n), Int32(c), Int32(inner), scale, bias, runMean, runVar, eps, 0.9, relu ? 1 : 0,
                                 0, Int32(c), y.pointer, mean.pointer, invstd.pointer, nextMean.pointer, nextVar.pointer)
            let dx = Guarded(x.count), dscale = Guarded(c), dbias = Guarded(c)
            kiln_batchnorm_grad(dy, x, Int32(n), Int32(c), Int32(inner), scale, mean.pointer, invstd.pointer, relu ? y.values : nil, 0, Int32(c),
                                dx.pointer, dscale.pointer, dbias.pointer)
            // Two ranks: images [0, h) and [h, n).
            let h = n / 2, plane = c * inner
            let parts = [(0, h), (h, n - h)]
            func partial(_ center: [Float]?) -> [Double] {
                var total = [Double](repeating: 0, count: c)
                for (start, count) in parts {
                    let sums = UnsafeMutableBufferPointer<Double>.allocate(capacity: c)
                    defer { sums.deallocate() }
                    x.withUnsafeBufferPointer { xp in
                        kiln_batchnorm_partial_sums(xp.baseAddress! + start * plane, Int32(count), Int32(c), Int32(inner), center, 0, Int32(c), sums.baseAddress!)
                    }
                    for k in 0..<c { total[k] += sums[k] }
                }
                return total
            }
            let count = Double(n * inner)
            let mu = partial(nil).map { Float($0 / count) }
            let inv = partial(mu).map { Float(1 / ($0 / count + Double(eps)).squareRoot()) }
            assertClose(mu, mean.values.map(Double.init), tol: 1e-6, "joint mean")
            assertClose(inv, invstd.values.map(Double.init), tol: 1e-5, "joint 1/σ")
            let y2 = Guarded(x.count)
            for (start, count) in parts {
                x.withUnsafeBufferPointer { xp in
                    kiln_batchnorm_apply(xp.baseAddress! + start * plane, Int32(count), Int32(c), Int32(inner), scale, bias, mu, inv, relu ? 1 : 0,
                                         0, Int32(c), y2.pointer + start * plane)
                }
            }
            assertClose(y2.values, y.values.map(Double.init), tol: 1e-5, "normalised halves")
            XCTAssertTrue(y2.intact)
            var gradSums = [Double](repeating: 0, count: 2 * c)
            for (start, count) in parts {
                let sums = UnsafeMutableBufferPointer<Double>.allocate(capacity: 2 * c)
                defer { sums.deallocate() }
                dy.withUnsafeBufferPointer { g in
                    x.withUnsafeBufferPointer { xp in
                        kiln_batchnorm_grad_partial_sums(g.baseAddress! + start * plane, xp.baseAddress! + start * plane, Int32(count), Int32(c), Int32(inner),
                                                         mu, relu ? UnsafePointer(y.pointer + start * plane) : nil, 0, Int32(c), sums.baseAddress!)
                    }
                }
                for k in 0..<(2 * c) { gradSums[k] += sums[k] }
            }
            let sumDy = (0..<c).map { Float(gradSums[2 * $0]) }, sumDyXhat = (0..<c).map { Float(gradSums[2 * $0 + 1] * Double(inv[$0])) }
            assertClose(sumDy, dbias.values.map(Double.init), tol: 1e-5, "joint Σ dy")
            assertClose(sumDyXhat, dscale.values.map(Double.init), tol: 1e-5, "joint Σ dy·x̂")
            let dx2 = Guarded(x.count)
            for (start, count) in parts {
                dy.withUnsafeBufferPointer { g in
                    x.withUnsafeBufferPointer { xp in
                        kiln_batchnorm_grad_apply(g.baseAddress! + start * plane, xp.baseAddress! + start * plane, Int32(count), Int32(c), Int32(inner), scale,
                                                  mu, inv, relu ? UnsafePointer(y.pointer + start * plane) : nil, Float(n * inner), sumDy, sumDyXhat,
                                                  0, Int32(c), dx2.pointer + start * plane)
                    }
                }
            }
            assertClose(dx2.values, dx.values.map(Double.init), tol: 1e-5, "dx of the halves")
            XCTAssertTrue(dx2.intact)
        }
    }

    func testBatchNormTrainingAndGradient() {
        var rng = TestRandom(seed: 22)
        for (n, c, inner, relu) in [(3, 5, 17, false), (2, 8, 64, true), (1, 3, 1000, true), (4, 2, 1, false)] {
            let x = rng.floats(n * c * inner), scale = rng.floats(c), bias = rng.floats(c)
            let runMean = rng.floats(c), runVar = rng.floats(c).map { abs($0) + 0.5 }
            let eps: Float = 1e-5, momentum: Float = 0.9
            let y = Guarded(n * c * inner), mean = Guarded(c), invstd = Guarded(c), nextMean = Guarded(c), nextVar = Guarded(c)
            kiln_batchnorm_train(x, Int32(n), Int32(c), Int32(inner), scale, bias, runMean, runVar, eps, momentum, relu ? 1 : 0,
                                 0, Int32(c), y.pointer, mean.pointer, invstd.pointer, nextMean.pointer, nextVar.pointer)
            let count = Double(n * inner)
            var wantY = [Double](repeating: 0, count: x.count), mu = [Double](), inv = [Double]()
            for ch in 0..<c {
                let values = (0..<n).flatMap { i in (0..<inner).map { Double(x[(i * c + ch) * inner + $0]) } }
                let m = values.reduce(0, +) / count
                let v = values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / count
                mu.append(m)
                inv.append(1 / (v + Double(eps)).squareRoot())
                for i in 0..<n {
                    for k in 0..<inner {
                        let at = (i * c + ch) * inner + k
                        let out = (Double(x[at]) - m) * inv[ch] * Double(scale[ch]) + Double(bias[ch])
                        wantY[at] = relu ? max(0, out) : out
                    }
                }
                let unbiased = count > 1 ? v * count / (count - 1) : v
                assertClose([nextMean.values[ch], nextVar.values[ch]],
                            [Double(momentum) * Double(runMean[ch]) + Double(1 - momentum) * m,
                             Double(momentum) * Double(runVar[ch]) + Double(1 - momentum) * unbiased], tol: 1e-5, "running statistics")
            }
            assertClose(y.values, wantY, tol: 1e-4, "batchnorm y")
            assertClose(mean.values, mu, tol: 1e-5, "batchnorm mean")
            assertClose(invstd.values, inv, tol: 1e-4, "batchnorm 1/σ")

            // The backward, with and without the ReLU mask, from the forward's statistics.
            let dy = rng.floats(x.count)
            for masked in [false, true] {
                let dx = Guarded(x.count), dscale = Guarded(c), dbias = Guarded(c)
                let reluOut = masked ? y.values : nil
                kiln_batchnorm_grad(dy, x, Int32(n), Int32(c), Int32(inner), scale, mean.pointer, invstd.pointer, reluOut, 0, Int32(c),
                                    dx.pointer, dscale.pointer, dbias.pointer)
                var wantDx = [Double](repeating: 0, count: x.count), wantScale = [Double](), wantBias = [Double]()
                for ch in 0..<c {
                    let idx = (0..<n).flatMap { i in (0..<inner).map { (i * c + ch) * inner + $0 } }
                    let g = idx.map { Double(dy[$0]) * (masked && !(y.values[$0] > 0) ? 0 : 1) }
                    let xhat = idx.map { (Double(x[$0]) - Double(mean.values[ch])) * Double(invstd.values[ch]) }
                    let sg = g.reduce(0, +), sgx = zip(g, xhat).reduce(0) { $0 + $1.0 * $1.1 }
                    wantBias.append(sg)
                    wantScale.append(sgx)
                    let k0 = Double(scale[ch]) * Double(invstd.values[ch]) / count
                    for (j, at) in idx.enumerated() { wantDx[at] = k0 * (count * g[j] - sg - xhat[j] * sgx) }
                }
                assertClose(dx.values, wantDx, tol: 1e-4, "batchnorm dx masked=\(masked)")
                assertClose(dscale.values, wantScale, tol: 1e-4, "batchnorm dscale")
                assertClose(dbias.values, wantBias, tol: 1e-4, "batchnorm dbias")
            }
            let sums = Guarded(c)
            kiln_channel_sums(x, Int32(n), Int32(c), Int32(inner), 0, Int32(c), sums.pointer)
            assertClose(sums.values, (0..<c).map { ch in (0..<n).reduce(0.0) { s, i in s + (0..<inner).reduce(0.0) { $0 + Double(x[(i * c + ch) * inner + $1]) } } },
                        tol: 1e-5, "channel sums")
        }
    }

    func testActivationsAndEpilogues() {
        var rng = TestRandom(seed: 23)
        var x = rng.floats(1000).map { $0 * 8 }
        x[3] = .nan
        x[4] = .infinity
        x[5] = -.infinity
        // Halfway cases of the quantization grid (scale 0.25): 1.5 → 2, −2.5 → −2.
        x[6] = 0.375
        x[7] = -0.625
        for act in [Act.none, .relu, .leaky(0.01), .clip(-1, 2), .sigmoid, .hardswish, .quantizeDequantize(0.25, -131, 124)] {
            let y = Guarded(x.count)
            kiln_activation(x, y.pointer, x.count, act.c)
            assertClose(y.values, x.map { act.apply(Double($0)) }, tol: 1e-6, "activation \(act)")
            XCTAssertTrue(y.intact)
            for (i, v) in x.prefix(8).enumerated() {
                let want = act.apply(Double(v))
                let got = Double(kiln_apply_activation(v, act.c))
                XCTAssertTrue(got == want || (got.isNaN && want.isNaN) || abs(got - want) < 1e-6, "apply_activation \(act) of x[\(i)] = \(v)")
            }
        }
        // The epilogues: per-channel bias (rows), per-column or per-row bias (Gemm), residual.
        let m = 6, p = 37
        let y0 = rng.floats(m * p), bias = rng.floats(max(m, p)), residual = rng.floats(m * p)
        for act in [Act.none, .relu, .clip(-0.5, 0.5), .quantizeDequantize(0.05, -10, 245)] {
            for withResidual in [false, true] {
                // The sum before the activation; in float32 (as the kernel adds) where the activation
                // rounds to a quantization grid, so a sum on a grid's boundary rounds the same way.
                func sum(_ k: Int, _ b: Int) -> Double {
                    if case .quantizeDequantize = act { return Double(y0[k] + bias[b] + (withResidual ? residual[k] : 0)) }
                    return Double(y0[k]) + Double(bias[b]) + (withResidual ? Double(residual[k]) : 0)
                }
                let y = Guarded(y0)
                kiln_epilogue(y.pointer, Int32(m), Int32(p), bias, withResidual ? residual : nil, act.c)
                let want = (0..<(m * p)).map { k in act.apply(sum(k, k / p)) }
                assertClose(y.values, want, tol: 1e-6, "epilogue \(act) residual=\(withResidual)")
                for perRow in [false, true] {
                    let r = Guarded(y0)
                    kiln_epilogue_rows(r.pointer, Int32(m), Int32(p), bias, perRow ? 1 : 0, withResidual ? residual : nil, act.c)
                    let wantRows = (0..<(m * p)).map { k in act.apply(sum(k, perRow ? k / p : k % p)) }
                    assertClose(r.values, wantRows, tol: 1e-6, "epilogue_rows per-row=\(perRow)")
                }
            }
        }
        XCTAssertEqual(kiln_has_nonfinite(y0, y0.count), 0)
        for bad in [Float.nan, .infinity, -.infinity] {
            var z = y0
            z[z.count - 1] = bad
            XCTAssertEqual(kiln_has_nonfinite(z, z.count), 1, "\(bad) at the end")
            z = y0
            z[17] = bad
            XCTAssertEqual(kiln_has_nonfinite(z, z.count), 1, "\(bad) inside")
        }
    }

    func testElementwise() {
        var rng = TestRandom(seed: 24)
        let n = 4 * 6 * 10
        let a = rng.floats(n), b = rng.floats(n).map { $0 + 2 }, per = rng.floats(6).map { $0 + 2 }
        func op(_ k: Int32, _ x: Double, _ y: Double) -> Double { [x + y, x - y, x * y, x / y][Int(k)] }
        for k: Int32 in 0...3 {
            let y = Guarded(n)
            kiln_binary(a, b, y.pointer, n, k, 0, 1)
            assertClose(y.values, (0..<n).map { op(k, Double(a[$0]), Double(b[$0])) }, tol: 1e-6, "binary \(k) same shape")
            kiln_binary(a, per, y.pointer, n, k, 6, 10)
            assertClose(y.values, (0..<n).map { op(k, Double(a[$0]), Double(per[($0 / 10) % 6])) }, tol: 1e-6, "binary \(k) per channel")
            XCTAssertTrue(y.intact)
        }
        // A chain: ((x + b) · per-channel) then ReLU, then per-channel − v (swapped), over two ranges.
        let ops = [kiln_ew_op(kind: 0, swap: 0, operand: nil, period: 0, inner: 1, alpha: 0, lo: 0, hi: 0),
                   kiln_ew_op(kind: 2, swap: 0, operand: nil, period: 6, inner: 10, alpha: 0, lo: 0, hi: 0),
                   kiln_ew_op(kind: 11, swap: 0, operand: nil, period: 0, inner: 1, alpha: 0, lo: 0, hi: 0),
                   kiln_ew_op(kind: 1, swap: 1, operand: nil, period: 6, inner: 10, alpha: 0, lo: 0, hi: 0)]
        let y = Guarded(n)
        b.withUnsafeBufferPointer { bp in
            per.withUnsafeBufferPointer { pp in
                var chain = ops
                chain[0].operand = bp.baseAddress
                chain[1].operand = pp.baseAddress
                chain[3].operand = pp.baseAddress
                kiln_elementwise_chain_range(a, y.pointer, 0, 100, chain, 4)
                kiln_elementwise_chain_range(a, y.pointer, 100, n, chain, 4)
            }
        }
        let want = (0..<n).map { i -> Double in
            let c = Double(per[(i / 10) % 6])
            return c - max(0, (Double(a[i]) + Double(b[i])) * c)
        }
        assertClose(y.values, want, tol: 1e-6, "elementwise chain")
        XCTAssertTrue(y.intact)

        // Softmax and log-softmax rows, the ReLU gradients, index maps and their adjoint.
        let rows = 3, length = 11, logits = rng.floats(rows * length).map { $0 * 20 }
        for log in [false, true] {
            let s = Guarded(rows * length)
            kiln_softmax_rows(logits, s.pointer, Int32(rows), Int32(length), log ? 1 : 0)
            var want = [Double]()
            for r in 0..<rows {
                let row = logits[(r * length)..<(r * length + length)].map(Double.init)
                let mx = row.max()!, sum = row.reduce(0) { $0 + exp($1 - mx) }
                want += row.map { log ? $0 - mx - Foundation.log(sum) : exp($0 - mx) / sum }
            }
            assertClose(s.values, want, tol: 1e-5, "softmax log=\(log)")
        }
        let dx = Guarded(n)
        kiln_relu_grad(a, b.map { $0 - 2 }, n, dx.pointer)
        assertClose(dx.values, (0..<n).map { b[$0] - 2 > 0 ? Double(a[$0]) : 0 }, tol: 0, "relu_grad")
        kiln_relu_grad_sum(a, per + a.dropFirst(6), b.map { $0 - 2 }, n, dx.pointer)
        assertClose(dx.values, (0..<n).map { i in b[i] - 2 > 0 ? Double(a[i] + (i < 6 ? per[i] : a[i])) : 0 }, tol: 1e-7, "relu_grad_sum")
        let map: [Int32] = (0..<Int32(50)).map { $0 % 7 == 0 ? -1 : ($0 * 13) % Int32(n) }
        let gathered = Guarded(map.count)
        kiln_gather_map(a, map, map.count, -5, gathered.pointer)
        assertClose(gathered.values, map.map { $0 < 0 ? -5 : Double(a[Int($0)]) }, tol: 0, "gather_map")
        let scattered = Guarded(n)
        kiln_scatter_add_map(gathered.values, map, map.count, scattered.pointer)
        var wantScatter = [Double](repeating: 0, count: n)
        for (k, i) in map.enumerated() where i >= 0 { wantScatter[Int(i)] += Double(gathered.values[k]) }
        assertClose(scattered.values, wantScatter, tol: 1e-7, "scatter_add_map")
        let shifted = Guarded(n)
        kiln_scale_shift(a, shifted.pointer, 4, Int32(n / 4), per, b)
        assertClose(shifted.values, (0..<n).map { Double(a[$0]) * Double(per[$0 / (n / 4)]) + Double(b[$0 / (n / 4)]) }, tol: 1e-6, "scale_shift")
    }

    func testLayerNorm() {
        var rng = TestRandom(seed: 41)
        for (rows, n, withBias) in [(1, 1, true), (3, 7, false), (2, 33, true), (5, 192, true), (4, 100, false)] {
            let x = rng.floats(rows * n), scale = rng.floats(n), bias = rng.floats(n)
            var want = [Double](repeating: 0, count: rows * n)
            for r in 0..<rows {
                let row = (0..<n).map { Double(x[r * n + $0]) }
                let mean = row.reduce(0, +) / Double(n)
                let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
                for k in 0..<n { want[r * n + k] = (row[k] - mean) / (variance + 1e-5).squareRoot() * Double(scale[k]) + (withBias ? Double(bias[k]) : 0) }
            }
            let y = Guarded(rows * n, fill: .nan)
            bias.withUnsafeBufferPointer { b in
                kiln_layernorm_rows(x, Int32(rows), Int32(n), scale, withBias ? b.baseAddress : nil, 1e-5, y.pointer)
            }
            assertClose(y.values, want, tol: 1e-4, "layernorm \(rows)×\(n)")
            XCTAssertTrue(y.intact)
        }
    }

    func testSGD() {
        var rng = TestRandom(seed: 25)
        let n = 1001
        let p = rng.floats(n), g = rng.floats(n), v = rng.floats(n)
        for nesterov in [false, true] {
            let pNext = Guarded(n), vNext = Guarded(n)
            let lr: Float = 0.1, momentum: Float = 0.9, wd: Float = 2e-4
            kiln_sgd(p, g, v, n, lr, momentum, wd, nesterov ? 1 : 0, pNext.pointer, vNext.pointer)
            var wantP = [Double](), wantV = [Double]()
            for i in 0..<n {
                let gi = Double(g[i]) + Double(wd) * Double(p[i]), vi = Double(momentum) * Double(v[i]) + gi
                wantV.append(vi)
                wantP.append(Double(p[i]) - Double(lr) * (nesterov ? gi + Double(momentum) * vi : vi))
            }
            assertClose(vNext.values, wantV, tol: 1e-6, "sgd velocity")
            assertClose(pNext.values, wantP, tol: 1e-6, "sgd parameter nesterov=\(nesterov)")
            XCTAssertTrue(pNext.intact && vNext.intact)
        }
    }
}
