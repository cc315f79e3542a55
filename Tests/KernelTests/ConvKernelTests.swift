import CKernels
import Foundation
import XCTest

/// Floats with a guard band after them: a kernel writing past its output shows in `intact`.
final class Guarded {
    static let band = 64
    static let canary = Float(bitPattern: 0x7FC0_1234)  // a NaN no kernel writes
    let count: Int
    let buffer: UnsafeMutablePointer<Float>

    init(_ count: Int, fill: Float = 0) {
        self.count = count
        buffer = .allocate(capacity: count + Self.band)
        buffer.initialize(repeating: fill, count: count)
        (buffer + count).initialize(repeating: Self.canary, count: Self.band)
    }
    convenience init(_ values: [Float]) {
        self.init(values.count)
        buffer.update(from: values, count: values.count)
    }
    deinit { buffer.deallocate() }

    var pointer: UnsafeMutablePointer<Float> { buffer }
    var values: [Float] { Array(UnsafeBufferPointer(start: buffer, count: count)) }
    var intact: Bool { (0..<Self.band).allSatisfy { buffer[count + $0].bitPattern == Self.canary.bitPattern } }
}

/// got ≈ want within tol per element; the first few differences are named.
func assertClose(_ got: [Float], _ want: [Double], tol: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.count, want.count, "\(what): count", file: file, line: line)
    var bad = 0
    for i in 0..<min(got.count, want.count) {
        let g = Double(got[i]), w = want[i]
        if g.isNaN && w.isNaN { continue }
        if g == w { continue }
        if !(abs(g - w) <= tol * max(1, abs(w))) {
            if bad < 3 { XCTFail("\(what) [\(kiln_isa_name().map { String(cString: $0) } ?? "?")]: element \(i) is \(g), expected \(w)", file: file, line: line) }
            bad += 1
        }
    }
    if bad > 3 { XCTFail("\(what): \(bad) elements differ", file: file, line: line) }
}

/// The convolution kernels against plain loops, on shapes chosen to reach every path: channel
/// counts that are not multiples of 8 or 16, Winograd tile rows shorter than 8 (the
/// channels-last path) and longer (the tile path), odd and asymmetric padding, partial blocks
/// of tile rows and output channels (as threads split them).
final class ConvKernelTests: XCTestCase {
    func testLevelIsTheOneAskedFor() throws {
        let level = String(cString: kiln_isa_name())
        XCTAssertNil(kiln_isa_error(), "KILN_ISA")
        if let asked = ProcessInfo.processInfo.environment["KILN_ISA"], !asked.isEmpty {
            XCTAssertEqual(level, asked)
        } else {
            XCTAssertEqual(Int(kiln_isa_level()), Int(kiln_isa_best()), "without KILN_ISA the best level runs")
        }
        print("kernel level: \(level)")
    }

    func testWinogradForward() {
        var rng = TestRandom(seed: 11)
        let shapes: [(c: Int, m: Int, h: Int, w: Int, pads: (Int, Int, Int, Int))] = [
            (16, 16, 8, 8, (1, 1, 1, 1)), (5, 8, 7, 9, (1, 1, 1, 1)), (19, 24, 13, 5, (0, 1, 2, 0)),
            (32, 40, 16, 16, (1, 1, 1, 1)), (17, 8, 3, 33, (1, 1, 1, 1)), (40, 16, 2, 1, (1, 1, 1, 1)),
            (8, 32, 33, 18, (2, 0, 0, 2)), (1, 8, 4, 4, (1, 1, 1, 1)), (64, 64, 8, 8, (1, 1, 1, 1)),
        ]
        for (i, s) in shapes.enumerated() {
            let g = Window(c: s.c, h: s.h, w: s.w, m: s.m, kh: 3, kw: 3, pt: s.pads.0, pl: s.pads.1, pb: s.pads.2, pr: s.pads.3)
            let act: Act = [Act.none, .relu, .leaky(0.1), .clip(-0.5, 0.5)][i % 4]
            let x = rng.floats(g.c * g.h * g.w), w = rng.floats(g.m * g.c * 9), bias = rng.floats(g.m)
            let residual = i % 2 == 0 ? rng.floats(g.m * g.oh * g.ow) : nil
            let want = Reference.conv(g, x: x, w: w, bias: bias, residual: residual, act: act)
            let geometry = g.geometry
            let packed = Guarded(kiln_winograd_packed_size(geometry))
            kiln_winograd_pack(w, geometry, packed.pointer)
            let scratch = Guarded(kiln_conv_scratch(geometry, Int32(KILN_CONV_WINOGRAD.rawValue), Int32(KILN_CONV_FORWARD.rawValue), 1).total)
            let y = Guarded(g.m * g.oh * g.ow, fill: .nan)
            let rows = Int(kiln_winograd_tile_rows(geometry)), blocks = g.m / 8
            // Two pieces each way, as two threads would split one image.
            let rowSplit = rows / 2, blockSplit = max(1, blocks / 2)
            for r in [0..<rowSplit, rowSplit..<rows] where !r.isEmpty {
                for b in [0..<blockSplit, blockSplit..<blocks] where !b.isEmpty {
                    kiln_winograd_block(geometry, x, packed.pointer, Int32(r.lowerBound), Int32(r.upperBound), Int32(b.lowerBound),
                                        Int32(b.upperBound), bias, residual, act.c, scratch.pointer, y.pointer)
                }
            }
            assertClose(y.values, want, tol: 1e-5 * Double(g.c * 9 + 1), "winograd \(s)")
            XCTAssertTrue(y.intact && scratch.intact && packed.intact, "winograd \(s): a write past a buffer")
        }
    }

    func testWinogradWeightGradient() {
        var rng = TestRandom(seed: 12)
        for (c, m, h, w, images) in [(8, 8, 8, 8, 2), (16, 24, 5, 7, 3), (8, 40, 16, 16, 1), (24, 16, 3, 3, 2)] {
            let g = Window(c: c, h: h, w: w, m: m, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1)
            let x = rng.floats(images * c * h * w), dy = rng.floats(images * m * g.oh * g.ow)
            let want = Reference.convWeightGrad(g, images: images, x: x, dy: dy)
            let dU = Guarded(16 * c * m), scratch = Guarded(Int(kiln_winograd_wgrad_scratch(g.geometry)))
            kiln_winograd_wgrad_accumulate(g.geometry, x, dy, Int32(images), dU.pointer, scratch.pointer)
            let dw = Guarded(m * c * 9)
            kiln_winograd_wgrad_finish(dU.pointer, Int32(m), Int32(c), dw.pointer)
            assertClose(dw.values, want, tol: 1e-5 * Double(images * g.oh * g.ow + 1), "winograd weight gradient c\(c) m\(m) \(h)×\(w)")
            XCTAssertTrue(dU.intact && scratch.intact && dw.intact)
        }
    }

    func testDirectConvolution() {
        var rng = TestRandom(seed: 13)
        let cases: [Window] = [
            Window(c: 3, h: 32, w: 32, m: 16, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1),
            Window(c: 5, h: 9, w: 11, m: 8, kh: 5, kw: 5, pt: 2, pl: 1, pb: 0, pr: 2),
            Window(c: 2, h: 15, w: 6, m: 24, kh: 7, kw: 7, pt: 3, pl: 3, pb: 3, pr: 3),
            Window(c: 7, h: 4, w: 13, m: 8, kh: 3, kw: 1, pt: 1, pl: 0, pb: 1, pr: 0),
            Window(c: 9, h: 6, w: 6, m: 16, kh: 1, kw: 1),
            // Strided, on the padded input's phases: odd and even sizes, uneven padding, 7×7
            // (a stem), stride 2 in one direction only.
            Window(c: 8, h: 14, w: 14, m: 8, kh: 3, kw: 3, sh: 2, sw: 2, pt: 1, pl: 1, pb: 1, pr: 1),
            Window(c: 4, h: 11, w: 9, m: 16, kh: 3, kw: 3, sh: 2, sw: 2, pt: 1, pl: 0, pb: 0, pr: 1),
            Window(c: 3, h: 23, w: 20, m: 8, kh: 7, kw: 7, sh: 2, sw: 2, pt: 3, pl: 3, pb: 3, pr: 3),
            Window(c: 6, h: 9, w: 12, m: 8, kh: 3, kw: 2, sh: 1, sw: 2, pt: 1, pl: 0, pb: 1, pr: 1),
            // Rows of 32 and more columns (the padded copy's phases made 32 columns at a time),
            // left padding odd, zero and even.
            Window(c: 3, h: 7, w: 70, m: 8, kh: 3, kw: 3, sh: 2, sw: 2, pt: 1, pl: 1, pb: 1, pr: 1),
            Window(c: 2, h: 6, w: 67, m: 8, kh: 3, kw: 3, sh: 2, sw: 2, pt: 0, pl: 0, pb: 1, pr: 1),
            Window(c: 2, h: 8, w: 96, m: 16, kh: 5, kw: 5, sh: 2, sw: 2, pt: 2, pl: 2, pb: 2, pr: 2),
        ]
        for (i, g) in cases.enumerated() {
            let act: Act = [Act.relu, .none, .sigmoid, .hardswish, .leaky(0.2)][i % 5]
            let x = rng.floats(g.c * g.h * g.w), w = rng.floats(g.m * g.c * g.kh * g.kw), bias = rng.floats(g.m)
            let residual = i % 2 == 1 ? rng.floats(g.m * g.oh * g.ow) : nil
            let want = Reference.conv(g, x: x, w: w, bias: bias, residual: residual, act: act)
            let packed = Guarded(kiln_conv_shift_packed_size(g.geometry))
            kiln_conv_shift_pack(w, g.geometry, packed.pointer)
            let plane = Int(kiln_conv_shift_plane(g.geometry))
            let xp = Guarded(kiln_conv_scratch(g.geometry, Int32(KILN_CONV_DIRECT.rawValue), Int32(KILN_CONV_FORWARD.rawValue), 1).total)
            kiln_conv_shift_pad(x, g.geometry, Int32(plane), xp.pointer)
            let y = Guarded(g.m * g.oh * g.ow, fill: .nan)
            let blocks = g.m / 8
            for b in [0..<blocks / 2, blocks / 2..<blocks] where !b.isEmpty {
                kiln_conv_shift(xp.pointer, g.geometry, Int32(plane), packed.pointer, Int32(b.lowerBound), Int32(b.upperBound),
                                bias, residual, act.c, y.pointer)
            }
            assertClose(y.values, want, tol: 1e-5 * Double(g.c * g.kh * g.kw + 1), "direct \(g.kh)×\(g.kw) stride \(g.sh)×\(g.sw) c\(g.c)")
            XCTAssertTrue(y.intact && xp.intact && packed.intact)
        }
    }

    /// Depthwise convolutions (one input channel per group, channel multipliers 1 and 2)
    /// against the plain loops run per channel: strides 1–3, dilation, asymmetric padding,
    /// widths around the vector's 16, 1×1 to 7×7 windows; channels split as threads split them.
    func testDepthwiseConvolution() {
        var rng = TestRandom(seed: 15)
        let cases: [(Window, mult: Int)] = [
            (Window(c: 5, h: 14, w: 14, m: 5, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1), 1),
            (Window(c: 4, h: 17, w: 33, m: 4, kh: 3, kw: 3, sh: 2, sw: 2, pt: 1, pl: 1, pb: 1, pr: 1), 1),
            (Window(c: 3, h: 9, w: 7, m: 6, kh: 5, kw: 5, sh: 2, sw: 2, pt: 2, pl: 2, pb: 2, pr: 2), 2),
            (Window(c: 6, h: 20, w: 19, m: 6, kh: 7, kw: 7, pt: 3, pl: 3, pb: 3, pr: 3), 1),
            (Window(c: 2, h: 12, w: 40, m: 2, kh: 3, kw: 3, dh: 2, dw: 3, pt: 2, pl: 3, pb: 2, pr: 3), 1),
            (Window(c: 3, h: 11, w: 16, m: 3, kh: 3, kw: 2, sh: 3, sw: 3, pt: 0, pl: 1, pb: 2, pr: 0), 1),
            (Window(c: 4, h: 5, w: 3, m: 4, kh: 1, kw: 1), 1),
            (Window(c: 2, h: 1, w: 1, m: 4, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1), 2),
            (Window(c: 3, h: 6, w: 75, m: 3, kh: 3, kw: 3, sh: 2, sw: 2, pt: 0, pl: 0, pb: 1, pr: 1), 1),
            // Many channels on small planes (the channel-blocked path: blocks of 16 split
            // unevenly by the threads' ranges, eight-by-eight transposes and their tails).
            (Window(c: 37, h: 14, w: 14, m: 37, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1), 1),
            (Window(c: 24, h: 13, w: 11, m: 24, kh: 5, kw: 5, sh: 2, sw: 2, pt: 2, pl: 2, pb: 2, pr: 2), 1),
            (Window(c: 19, h: 7, w: 7, m: 19, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1), 1),
            (Window(c: 16, h: 9, w: 12, m: 16, kh: 3, kw: 3, dh: 2, dw: 2, pt: 2, pl: 2, pb: 2, pr: 2), 1),
            // Planes too large for it (more than 1,024 outputs, or 4,096 padded inputs).
            (Window(c: 3, h: 40, w: 36, m: 3, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1), 1),
            (Window(c: 2, h: 66, w: 66, m: 2, kh: 3, kw: 3, sh: 3, sw: 3, pt: 1, pl: 1, pb: 1, pr: 1), 1),
            // Stride 2 on wide planes: each row's last inputs of both phases, odd and even widths.
            (Window(c: 3, h: 70, w: 71, m: 3, kh: 3, kw: 3, sh: 2, sw: 2, pt: 1, pl: 1, pb: 1, pr: 1), 1),
            (Window(c: 2, h: 64, w: 70, m: 2, kh: 3, kw: 3, sh: 2, sw: 2, pt: 0, pl: 0, pb: 1, pr: 1), 1),
            (Window(c: 2, h: 50, w: 97, m: 2, kh: 5, kw: 5, sh: 2, sw: 2, pt: 2, pl: 2, pb: 2, pr: 2), 1),
        ]
        for (i, (g, mult)) in cases.enumerated() {
            let act: Act = [Act.relu, .none, .clip(0, 6), .hardswish, .sigmoid, .leaky(0.1), .none, .relu, .clip(0, 6),
                            .clip(0, 6), .relu, .none, .hardswish, .relu, .clip(0, 6), .relu, .none, .clip(0, 6)][i]
            let taps = g.kh * g.kw, plane = g.h * g.w, outPlane = g.oh * g.ow
            let x = rng.floats(g.c * plane), w = rng.floats(g.m * taps), bias = rng.floats(g.m)
            let residual = i % 2 == 1 ? rng.floats(g.m * outPlane) : nil
            // Channel c's outputs c·mult ..< (c + 1)·mult: an ordinary convolution of its plane.
            var want: [Double] = []
            for c in 0..<g.c {
                var one = g
                one.c = 1
                one.m = mult
                want += Reference.conv(one, x: Array(x[c * plane..<(c + 1) * plane]), w: Array(w[c * mult * taps..<(c + 1) * mult * taps]),
                                       bias: Array(bias[c * mult..<(c + 1) * mult]),
                                       residual: residual.map { Array($0[c * mult * outPlane..<(c + 1) * mult * outPlane]) }, act: act)
            }
            // The scratch planned as the compiler plans it: from one group's geometry (C = 1).
            var group = g
            group.c = 1
            let scratch = Guarded(kiln_conv_scratch(group.geometry, Int32(KILN_CONV_DEPTHWISE.rawValue), Int32(KILN_CONV_FORWARD.rawValue), 1).total)
            let y = Guarded(g.m * outPlane, fill: .nan)
            for r in [0..<g.m / 2, g.m / 2..<g.m] where !r.isEmpty {
                kiln_conv_depthwise(x, g.geometry, w, Int32(r.lowerBound), Int32(r.upperBound), 0, Int32(g.oh), bias, residual, act.c,
                                    scratch.pointer, y.pointer)
            }
            assertClose(y.values, want, tol: 1e-5 * Double(taps + 1), "depthwise \(g.kh)×\(g.kw) s\(g.sh) d\(g.dw) \(g.h)×\(g.w) ×\(mult)")
            XCTAssertTrue(y.intact && scratch.intact, "depthwise case \(i): a write past a buffer")
            // Rows split as threads split one image (three pieces, one possibly of a single row).
            let byRows = Guarded(g.m * outPlane, fill: .nan)
            for r in [0..<g.oh / 3, g.oh / 3..<g.oh / 3 + 1, g.oh / 3 + 1..<g.oh] where !r.isEmpty {
                kiln_conv_depthwise(x, g.geometry, w, 0, Int32(g.m), Int32(r.lowerBound), Int32(r.upperBound), bias, residual, act.c,
                                    scratch.pointer, byRows.pointer)
            }
            assertClose(byRows.values, want, tol: 1e-5 * Double(taps + 1), "depthwise by rows \(g.kh)×\(g.kw) s\(g.sh) \(g.h)×\(g.w)")
            XCTAssertTrue(byRows.intact && scratch.intact, "depthwise case \(i) by rows: a write past a buffer")
            // Bands of three output rows, each from a copy of only the input rows it reads
            // (planes as far apart as the band is tall), as the fused 1×1 → depthwise step runs.
            guard mult == 1 else { continue }
            let byBands = Guarded(g.m * outPlane, fill: .nan)
            for oy0 in stride(from: 0, to: g.oh, by: 3) {
                let oy1 = min(g.oh, oy0 + 3)
                let r0 = max(0, oy0 * g.sh - g.pt), r1 = min(g.h, (oy1 - 1) * g.sh - g.pt + (g.kh - 1) * g.dh + 1)
                let rows = max(r1 - r0, 1)
                var band = [Float](repeating: .nan, count: g.c * rows * g.w)
                for c in 0..<g.c where r1 > r0 {
                    for r in r0..<r1 { for j in 0..<g.w { band[(c * rows + r - r0) * g.w + j] = x[c * plane + r * g.w + j] } }
                }
                let b = Guarded(band)
                kiln_conv_depthwise_rows(b.pointer, rows * g.w, Int32(r0), g.geometry, w, 0, Int32(g.m), Int32(oy0), Int32(oy1), bias, residual,
                                         act.c, scratch.pointer, byBands.pointer)
                XCTAssertTrue(b.intact)
            }
            assertClose(byBands.values, want, tol: 1e-5 * Double(taps + 1), "depthwise by bands \(g.kh)×\(g.kw) s\(g.sh) \(g.h)×\(g.w)")
            XCTAssertTrue(byBands.intact && scratch.intact, "depthwise case \(i) by bands: a write past a buffer")
        }
    }

    func testPackedGemm() {
        var rng = TestRandom(seed: 14)
        // Ragged tiles of 24, 8 and fewer columns, one block and several (from 12 blocks B's
        // chunks are copied to `pack` and read back), K from 1 to 768.
        for (m, k, n, ldy) in [(8, 1, 1, 1), (16, 3, 7, 7), (8, 17, 16, 20), (24, 9, 31, 31), (8, 5, 32, 40), (16, 33, 33, 33), (32, 64, 100, 100),
                               (16, 300, 49, 52), (8, 513, 7, 7), (24, 768, 60, 64), (32, 37, 45, 45), (104, 37, 45, 45), (192, 20, 50, 50)] {
            let w = rng.floats(m * k), b = rng.floats(k * n), bias = rng.floats(m), residual = rng.floats(m * ldy)
            let act: Act = n % 2 == 0 ? .relu : .clip(-0.3, 0.4)
            var want = [Double](repeating: 0, count: m * ldy)
            for i in 0..<m {
                for j in 0..<n {
                    var s = Double(bias[i]) + Double(residual[i * ldy + j])
                    for q in 0..<k { s += Double(w[i * k + q]) * Double(b[q * n + j]) }
                    want[i * ldy + j] = act.apply(s)
                }
            }
            let geometry = Window(c: k, h: 1, w: 1, m: m, kh: 1, kw: 1).geometry
            let packed = Guarded(kiln_conv_shift_packed_size(geometry))
            kiln_conv_shift_pack(w, geometry, packed.pointer)
            let y = Guarded(m * ldy, fill: 0)
            let blocks = m / 8
            for r in [0..<blocks / 2, blocks / 2..<blocks] where !r.isEmpty {
                kiln_conv_gemm_ld(packed.pointer, b, Int32(k), Int32(n), n, Int32(r.lowerBound), Int32(r.upperBound), bias, residual,
                                  ldy, act.c, y.pointer, nil)
            }
            // With room to copy B's column chunks (the AVX2 kernel reads the copy for every
            // block after a chunk's first), one unaligned float past an aligned start.
            let pack = Guarded(k * 24 + 8 + 1)
            // Columns split as threads split one image (at a multiple of 24 where there is one).
            let byColumns = Guarded(m * ldy, fill: 0)
            let cut = n > 24 ? 24 : n / 2
            let bs = Guarded(b), rs = Guarded(residual)
            for c in [0..<cut, cut..<n] where !c.isEmpty {
                kiln_conv_gemm_ld(packed.pointer, bs.pointer + c.lowerBound, Int32(k), Int32(c.count), n, 0, Int32(blocks), bias,
                                  rs.pointer + c.lowerBound, ldy, act.c, byColumns.pointer + c.lowerBound, pack.pointer + 1)
            }
            XCTAssertTrue(byColumns.intact, "packed GEMM by columns: a write past the output")
            XCTAssertTrue(pack.intact, "packed GEMM: a write past the copies of B")
            // Columns past n (ldy > n) are not the kernel's: compare only the product's.
            var got = y.values, gotByColumns = byColumns.values
            for i in 0..<m { for j in n..<ldy { got[i * ldy + j] = 0; gotByColumns[i * ldy + j] = 0 } }
            assertClose(gotByColumns, want, tol: 1e-5 * Double(k + 1), "packed gemm by columns m\(m) k\(k) n\(n)")
            assertClose(got, want, tol: 1e-5 * Double(k + 1), "gemm m\(m) k\(k) n\(n) ldy\(ldy)")
            XCTAssertTrue(y.intact)
        }
    }

    func testWeightGradients() {
        var rng = TestRandom(seed: 15)
        // From patches: dw [M, K] += dy [M, P] · colᵀ.
        for (m, k, p) in [(3, 5, 7), (8, 16, 33), (5, 27, 64), (4, 4, 17)] {
            let dy = rng.floats(m * p), col = rng.floats(k * p), start = rng.floats(m * k)
            var want = start.map(Double.init)
            for i in 0..<m { for q in 0..<k { for j in 0..<p { want[i * k + q] += Double(dy[i * p + j]) * Double(col[q * p + j]) } } }
            let dw = Guarded(start)
            kiln_weight_grad(dy, col, Int32(m), Int32(k), Int32(p), 0, Int32(m / 2), dw.pointer)
            kiln_weight_grad(dy, col, Int32(m), Int32(k), Int32(p), Int32(m / 2), Int32(m), dw.pointer)
            assertClose(dw.values, want, tol: 1e-5 * Double(p + 1), "weight_grad m\(m) k\(k) p\(p)")
            XCTAssertTrue(dw.intact)
        }
        // Without patches: padded images and dy on the same grid.
        for (g, images) in [(Window(c: 3, h: 8, w: 9, m: 5, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1), 2),
                            (Window(c: 2, h: 5, w: 5, m: 7, kh: 5, kw: 5, pt: 2, pl: 2, pb: 2, pr: 2), 3),
                            (Window(c: 4, h: 6, w: 3, m: 2, kh: 1, kw: 3, pt: 0, pl: 1, pb: 0, pr: 1), 1)] {
            let x = rng.floats(images * g.c * g.h * g.w), dy = rng.floats(images * g.m * g.oh * g.ow)
            let want = Reference.convWeightGrad(g, images: images, x: x, dy: dy)
            let plane = Int(kiln_conv_shift_plane(g.geometry)), wp = g.w + g.pl + g.pr
            let xp = Guarded(images * g.c * plane), dyp = Guarded(images * g.m * g.oh * wp)
            for n in 0..<images {
                x.withUnsafeBufferPointer { kiln_conv_shift_pad($0.baseAddress! + n * g.c * g.h * g.w, g.geometry, Int32(plane), xp.pointer + n * g.c * plane) }
                dy.withUnsafeBufferPointer {
                    kiln_pad_rows($0.baseAddress! + n * g.m * g.oh * g.ow, Int32(g.m), Int32(g.oh), Int32(g.ow), Int32(wp), dyp.pointer + n * g.m * g.oh * wp)
                }
            }
            let dw = Guarded(g.m * g.c * g.kh * g.kw)
            kiln_weight_grad_shift(dyp.pointer, xp.pointer, Int32(images), g.geometry, Int32(plane), 0, Int32(g.m), dw.pointer)
            assertClose(dw.values, want, tol: 1e-5 * Double(images * g.oh * g.ow + 1), "weight_grad_shift \(g.kh)×\(g.kw)")
            XCTAssertTrue(dw.intact && xp.intact && dyp.intact)
        }
    }

    /// The weight gradient's scratch as kiln_conv_scratch lays it out and the runtime carves it:
    /// the dW accumulator at 0, a group of images' patches (or padded images, or dU) at
    /// `second`, dy's rows (or Winograd's transforms) at `third`, in one buffer of `total`
    /// floats; a part too small overwrites the next one (a wrong dW) or the guard band.
    func testWeightGradientScratchLayout() {
        var rng = TestRandom(seed: 19)
        func layout(_ g: Window, _ algorithm: kiln_conv_algorithm, batch: Int) -> kiln_scratch_layout {
            kiln_conv_scratch(g.geometry, Int32(algorithm.rawValue), Int32(KILN_CONV_GRAD_WEIGHT.rawValue), Int32(batch))
        }
        for (g, images) in [(Window(c: 8, h: 6, w: 7, m: 16, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1), 3),
                            (Window(c: 5, h: 4, w: 9, m: 6, kh: 3, kw: 1, pt: 1, pl: 0, pb: 0, pr: 0), 4)] {
            let x = rng.floats(images * g.c * g.h * g.w), dy = rng.floats(images * g.m * g.oh * g.ow)
            let want = Reference.convWeightGrad(g, images: images, x: x, dy: dy)
            let k = g.c * g.kh * g.kw, p = g.oh * g.ow, inImage = g.c * g.h * g.w, outImage = g.m * p
            // Patches of `group` images side by side, dy's rows likewise.
            var s = layout(g, KILN_CONV_IM2COL, batch: images)
            XCTAssertEqual(s.second, g.m * k, "the accumulator comes first")
            var buffer = Guarded(s.total)
            for g0 in stride(from: 0, to: images, by: Int(s.group)) {
                let count = min(Int(s.group), images - g0), ld = count * p
                let col = buffer.pointer + s.second, rows = buffer.pointer + s.third
                for j in 0..<count {
                    x.withUnsafeBufferPointer { kiln_im2col_rows_ld($0.baseAddress! + (g0 + j) * inImage, g.geometry, 0, Int32(g.c * g.kh), Int32(ld), col + j * p) }
                    for mi in 0..<g.m { for q in 0..<p { rows[mi * ld + j * p + q] = dy[(g0 + j) * outImage + mi * p + q] } }
                }
                kiln_weight_grad(rows, col, Int32(g.m), Int32(k), Int32(ld), 0, Int32(g.m), buffer.pointer)
            }
            assertClose(Array(buffer.values.prefix(g.m * k)), want, tol: 1e-5 * Double(images * p + 1), "im2col weight gradient in its scratch")
            XCTAssertTrue(buffer.intact, "im2col weight gradient: a write past its scratch")
            // Padded images and dy on the padded grid.
            s = layout(g, KILN_CONV_DIRECT, batch: images)
            buffer = Guarded(s.total)
            let plane = Int(kiln_conv_shift_plane(g.geometry)), wp = g.w + g.pl + g.pr
            for g0 in stride(from: 0, to: images, by: Int(s.group)) {
                let count = min(Int(s.group), images - g0), xp = buffer.pointer + s.second, dyp = buffer.pointer + s.third
                for j in 0..<count {
                    x.withUnsafeBufferPointer { kiln_conv_shift_pad($0.baseAddress! + (g0 + j) * inImage, g.geometry, Int32(plane), xp + j * g.c * plane) }
                    dy.withUnsafeBufferPointer {
                        kiln_pad_rows($0.baseAddress! + (g0 + j) * outImage, Int32(g.m), Int32(g.oh), Int32(g.ow), Int32(wp), dyp + j * g.m * g.oh * wp)
                    }
                }
                kiln_weight_grad_shift(dyp, xp, Int32(count), g.geometry, Int32(plane), 0, Int32(g.m), buffer.pointer)
            }
            assertClose(Array(buffer.values.prefix(g.m * k)), want, tol: 1e-5 * Double(images * p + 1), "direct weight gradient in its scratch")
            XCTAssertTrue(buffer.intact, "direct weight gradient: a write past its scratch")
            // Winograd: dU, then its transforms; dW from dU.
            guard g.kh == 3, g.kw == 3 else { continue }
            s = layout(g, KILN_CONV_WINOGRAD, batch: images)
            buffer = Guarded(s.total)
            let dU = buffer.pointer + s.second
            x.withUnsafeBufferPointer { xb in dy.withUnsafeBufferPointer { db in
                kiln_winograd_wgrad_accumulate(g.geometry, xb.baseAddress!, db.baseAddress!, Int32(images), dU, buffer.pointer + s.third)
            } }
            kiln_winograd_wgrad_finish(dU, Int32(g.m), Int32(g.c), buffer.pointer)
            assertClose(Array(buffer.values.prefix(g.m * k)), want, tol: 1e-5 * Double(images * p + 1), "winograd weight gradient in its scratch")
            XCTAssertTrue(buffer.intact, "winograd weight gradient: a write past its scratch")
        }
    }

    func testIm2colAndItsAdjoint() {
        var rng = TestRandom(seed: 16)
        let cases: [Window] = [
            Window(c: 3, h: 7, w: 8, m: 1, kh: 3, kw: 3, sh: 2, sw: 2, pt: 1, pl: 1, pb: 1, pr: 1),
            Window(c: 2, h: 9, w: 5, m: 1, kh: 2, kw: 3, sh: 1, sw: 3, dh: 2, dw: 1, pt: 0, pl: 2, pb: 1, pr: 0),
            Window(c: 4, h: 5, w: 5, m: 1, kh: 1, kw: 1, sh: 2, sw: 2),
            Window(c: 1, h: 12, w: 1, m: 1, kh: 5, kw: 1, sh: 1, sw: 1, pt: 2, pb: 2),
        ]
        for g in cases {
            let x = rng.floats(g.c * g.h * g.w), p = g.oh * g.ow, rows = g.c * g.kh * g.kw
            let want = Reference.im2col(g, x: x)
            let col = Guarded(rows * p, fill: .nan)
            kiln_im2col(x, g.geometry, col.pointer)
            assertClose(col.values, want, tol: 0, "im2col \(g)")
            // Split by (channel, kernel row) pairs, with rows ld apart, and by output rows.
            let split = Guarded(rows * p, fill: .nan)
            kiln_im2col_rows(x, g.geometry, 0, Int32(g.c * g.kh / 2), split.pointer)
            kiln_im2col_rows(x, g.geometry, Int32(g.c * g.kh / 2), Int32(g.c * g.kh), split.pointer)
            assertClose(split.values, want, tol: 0, "im2col_rows")
            let wide = Guarded(rows * 2 * p, fill: 0)
            kiln_im2col_rows_ld(x, g.geometry, 0, Int32(g.c * g.kh), Int32(2 * p), wide.pointer + p)
            let all = wide.values
            var second: [Float] = []
            for r in 0..<rows {
                let start = r * 2 * p + p
                second += all[start..<(start + p)]
            }
            assertClose(second, want, tol: 0, "im2col_rows_ld")
            let half = g.oh / 2
            let panel = Guarded(rows * (g.oh - half) * g.ow, fill: .nan)
            kiln_im2col_out_rows(x, g.geometry, Int32(half), Int32(g.oh), panel.pointer)
            var wantPanel: [Double] = []
            for r in 0..<rows { wantPanel += want[(r * p + half * g.ow)..<(r * p + p)] }
            assertClose(panel.values, wantPanel, tol: 0, "im2col_out_rows")
            // col2im is im2col's adjoint: <im2col(x), r> = <x, col2im(r)>.
            let r = rng.floats(rows * p)
            let back = Guarded(g.c * g.h * g.w, fill: .nan)
            kiln_col2im_rows(r, g.geometry, 0, Int32(g.c / 2), back.pointer)
            kiln_col2im_rows(r, g.geometry, Int32(g.c / 2), Int32(g.c), back.pointer)
            let lhs = zip(want, r).reduce(0.0) { $0 + $1.0 * Double($1.1) }
            let rhs = zip(x, back.values).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            XCTAssertEqual(lhs, rhs, accuracy: 1e-4 * Double(rows * p), "col2im adjoint \(g)")
            XCTAssertTrue(col.intact && split.intact && wide.intact && panel.intact && back.intact)
        }
    }

    /// The int8 convolution (uint8 activations × int8 weights) against plain loops over the
    /// dequantized values: strides 1, 2 and 3 (the quantizer's vector and scalar phase
    /// paths), dilation, asymmetric padding, output channels and columns that fill no whole
    /// block or chunk, values out of the uint8 range (clamped) and the activation on the
    /// quantization grid; columns and channel blocks split as threads split them.
    func testInt8Convolution() {
        var rng = TestRandom(seed: 17)
        let windows = [Window(c: 3, h: 17, w: 19, m: 13, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1),
                       Window(c: 5, h: 9, w: 11, m: 8, kh: 3, kw: 3, sh: 2, sw: 2, pt: 1, pl: 1, pb: 0, pr: 1),
                       Window(c: 7, h: 7, w: 7, m: 20, kh: 1, kw: 1),
                       Window(c: 6, h: 13, w: 15, m: 9, kh: 7, kw: 7, sh: 2, sw: 2, pt: 3, pl: 3, pb: 3, pr: 3),
                       Window(c: 4, h: 10, w: 11, m: 16, kh: 3, kw: 2, sh: 3, sw: 3, pt: 1, pl: 0, pb: 2, pr: 1),
                       Window(c: 9, h: 12, w: 12, m: 24, kh: 3, kw: 3, dh: 2, dw: 2, pt: 2, pl: 2, pb: 2, pr: 2),
                       Window(c: 32, h: 9, w: 40, m: 40, kh: 1, kw: 1, sh: 2, sw: 2),
                       Window(c: 70, h: 6, w: 6, m: 8, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1)]
        for (index, win) in windows.enumerated() {
            let g = win.geometry, k = win.c * win.kh * win.kw, p = win.oh * win.ow
            let scale: Float = 0.05, zero = 37 + index
            // Inputs on the grid scale · (u − zero) for u in [−3, 258]: the ends clamp to 0 and 255.
            let x = (0..<(win.c * win.h * win.w)).map { _ in scale * Float(rng.int(-3...258) - zero) }
            let q = (0..<(win.m * k)).map { _ in Int8(rng.int(-128...127)) }
            let wscale = (0..<win.m).map { Float(1 + $0 % 7) * 0.001 }
            let bias = rng.floats(win.m), residual = rng.floats(win.m * p)
            let act: Act = index % 3 == 0 ? .relu : index % 3 == 1 ? .none : .quantizeDequantize(0.01, -20, 30)
            let withResidual = index % 2 == 0
            var want = [Double](repeating: 0, count: win.m * p)
            for m in 0..<win.m {
                for oy in 0..<win.oh {
                    for ox in 0..<win.ow {
                        var s = Double(bias[m]) + (withResidual ? Double(residual[m * p + oy * win.ow + ox]) : 0)
                        for c in 0..<win.c {
                            for i in 0..<win.kh {
                                for j in 0..<win.kw {
                                    guard let (ih, iw) = win.tap(oy, ox, i, j) else { continue }
                                    let u = min(255, max(0, Int((x[(c * win.h + ih) * win.w + iw] / scale).rounded()) + zero))
                                    let wv = Double(wscale[m]) * Double(q[((m * win.c + c) * win.kh + i) * win.kw + j])
                                    s += wv * Double(scale) * Double(u - zero)
                                }
                            }
                        }
                        want[m * p + oy * win.ow + ox] = act.apply(s)
                    }
                }
            }
            let packed = UnsafeMutableRawPointer.allocate(byteCount: kiln_qconv_packed_bytes(Int32(win.m), Int32(k)), alignment: 64)
            let source = UnsafeMutableRawPointer.allocate(byteCount: kiln_qconv_source_bytes(g), alignment: 64)
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: kiln_qconv_chunk_bytes(g) + 1, alignment: 64)
            defer { packed.deallocate(); source.deallocate(); scratch.deallocate() }
            let packedQ = packed.bindMemory(to: Int8.self, capacity: 1)
            kiln_qconv_pack(q, Int32(win.m), Int32(k), packedQ)
            let src = source.bindMemory(to: UInt8.self, capacity: 1)
            // Channels in two parts, as threads quantize them.
            for r in [0..<win.c / 2, win.c / 2..<win.c] where !r.isEmpty {
                kiln_qconv_quantize(x, g, scale, Int32(zero), Int32(r.lowerBound), Int32(r.upperBound), src)
            }
            let combined = (0..<win.m).map { scale * wscale[$0] }
            let offsets = (0..<win.m).map { m in Int32(zero * (0..<k).reduce(0) { $0 + Int(q[m * k + $1]) }) }
            let columns = Int(kiln_qconv_columns(g)), blocks = (win.m + 7) / 8
            let y = Guarded(win.m * p, fill: .nan), rs = Guarded(residual)
            // Columns split at a chunk boundary and blocks in two, as the threads split them (the
            // scratch one byte past its alignment).
            let cut = min(columns, 32)
            for cols in [0..<cut, cut..<columns] where !cols.isEmpty {
                for mbs in [0..<blocks / 2, blocks / 2..<blocks] where !mbs.isEmpty {
                    kiln_qconv_gemm(packedQ, src, g, Int32(cols.lowerBound), Int32(cols.upperBound), Int32(mbs.lowerBound), Int32(mbs.upperBound),
                                    combined, offsets, bias, withResidual ? rs.pointer : nil, act.c,
                                    scratch.bindMemory(to: UInt8.self, capacity: 1) + 1, y.pointer)
                }
            }
            XCTAssertTrue(y.intact, "int8 convolution \(index): a write past the output")
            assertClose(y.values, want, tol: 1e-5 * Double(k), "int8 convolution \(index)")
        }
    }

    /// The bf16 convolution against plain loops over the bf16-rounded values (rounded here,
    /// to nearest even, from the f32 bits): strides 1 and 2, dilation, asymmetric padding,
    /// an odd patch size (the last pair half empty) with an infinity in the input (it must not
    /// reach outputs that do not read it), channels and columns that fill no whole block or chunk.
    func testBF16Convolution() {
        var rng = TestRandom(seed: 19)
        func bf16(_ v: Float) -> Double {
            var u = v.bitPattern
            u = (u &+ 0x7FFF &+ ((u >> 16) & 1)) & 0xFFFF_0000
            return Double(Float(bitPattern: u))
        }
        let windows = [Window(c: 3, h: 17, w: 19, m: 13, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1),
                       Window(c: 5, h: 9, w: 11, m: 8, kh: 3, kw: 3, sh: 2, sw: 2, pt: 1, pl: 1, pb: 0, pr: 1),
                       Window(c: 7, h: 7, w: 7, m: 20, kh: 1, kw: 1),
                       Window(c: 9, h: 12, w: 12, m: 24, kh: 3, kw: 3, dh: 2, dw: 2, pt: 2, pl: 2, pb: 2, pr: 2),
                       Window(c: 33, h: 6, w: 40, m: 16, kh: 1, kw: 1)]
        for (index, win) in windows.enumerated() {
            let g = win.geometry, k = win.c * win.kh * win.kw, p = win.oh * win.ow
            var x = rng.floats(win.c * win.h * win.w)
            let w = rng.floats(win.m * k), bias = rng.floats(win.m), residual = rng.floats(win.m * p)
            // Window 4 (33 channels, 1×1: K odd): the last channel holds an infinity at (0, 0).
            if index == 4 { x[32 * win.h * win.w] = .infinity }
            let act: Act = index % 2 == 0 ? .relu : .none
            var want = [Double](repeating: 0, count: win.m * p)
            for m in 0..<win.m {
                for oy in 0..<win.oh {
                    for ox in 0..<win.ow {
                        var s = Double(bias[m]) + Double(residual[m * p + oy * win.ow + ox])
                        for c in 0..<win.c {
                            for i in 0..<win.kh {
                                for j in 0..<win.kw {
                                    guard let (ih, iw) = win.tap(oy, ox, i, j) else { continue }
                                    s += bf16(w[((m * win.c + c) * win.kh + i) * win.kw + j]) * bf16(x[(c * win.h + ih) * win.w + iw])
                                }
                            }
                        }
                        want[m * p + oy * win.ow + ox] = act.apply(s)
                    }
                }
            }
            let packed = UnsafeMutableRawPointer.allocate(byteCount: kiln_bconv_packed_bytes(Int32(win.m), Int32(k)), alignment: 64)
            let source = UnsafeMutableRawPointer.allocate(byteCount: kiln_bconv_source_bytes(g), alignment: 64)
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: kiln_bconv_chunk_bytes(g) + 1, alignment: 64)
            defer { packed.deallocate(); source.deallocate(); scratch.deallocate() }
            let packedW = packed.bindMemory(to: UInt16.self, capacity: 1), src = source.bindMemory(to: UInt16.self, capacity: 1)
            kiln_bconv_pack(w, Int32(win.m), Int32(k), packedW)
            for r in [0..<win.c / 2, win.c / 2..<win.c] where !r.isEmpty {
                kiln_bconv_convert(x, g, Int32(r.lowerBound), Int32(r.upperBound), src)
            }
            let columns = Int(kiln_qconv_columns(g)), blocks = (win.m + 7) / 8
            let y = Guarded(win.m * p, fill: .nan), rs = Guarded(residual)
            let cut = min(columns, 32)
            for cols in [0..<cut, cut..<columns] where !cols.isEmpty {
                for mbs in [0..<blocks / 2, blocks / 2..<blocks] where !mbs.isEmpty {
                    kiln_bconv_gemm(packedW, src, g, Int32(cols.lowerBound), Int32(cols.upperBound), Int32(mbs.lowerBound), Int32(mbs.upperBound),
                                    bias, rs.pointer, act.c, scratch.bindMemory(to: UInt8.self, capacity: 1) + 1, y.pointer)
                }
            }
            XCTAssertTrue(y.intact, "bf16 convolution \(index): a write past the output")
            assertClose(y.values, want, tol: 1e-6 * Double(k), "bf16 convolution \(index)")
        }
    }
}
