import CKernels
import Compiler
import Foundation
import Graph
import Runtime
import Testing

/// The quantization ops' edge cases (ONNX's node tests cover the common ones): every expected
/// value below is worked out by hand from the operator definitions.
@Suite("Quantization ops")
struct QuantizeTests {
    /// The graph's output `y` from the reference kernels and from the compiled program.
    func outputs(_ text: String, _ inputs: [String: TensorData]) throws -> [TensorData] {
        let g = try TextFormat.parse(text)
        let reference = try ReferenceExecutor.run(g, inputs: inputs)["y"]!
        let batch = inputs.values.first!.shape[0]
        let compiled = try CompiledModel.compile(g, batch: batch, threads: 1).run(inputs)["y"]!
        return [reference, compiled]
    }

    @Test("QuantizeLinear rounds half to even, saturates, and takes NaN to the lowest value (as onnxruntime)")
    func quantize() throws {
        let text = """
            graph t {
              input x: f32[1, 8]
              const s: f32[] = [0.5]
              const z: u8[] = [128]
              y = QuantizeLinear(x, s, z)
              output y
            }
            """
        // x / 0.5: 1.25 → 2.5 → 2; 1.75 → 3.5 → 4; −1.25 → −2.5 → −2; 63.5 → 127 (+128 = 255);
        // 64 → 128 → 256 saturates to 255; −1000 → 0; NaN → 0; −0.25 → −0.5 → −0 → 128.
        let x = TensorData(floats: [1.25, 1.75, -1.25, 63.5, 64, -1000, .nan, -0.25], shape: [1, 8])
        for y in try outputs(text, ["x": x]) {
            #expect(y.dtype == .u8)
            #expect(y.int64s == [130, 132, 126, 255, 255, 0, 0, 128])
        }
    }

    @Test("int8 per-channel QuantizeLinear and DequantizeLinear")
    func perChannel() throws {
        let text = """
            graph t {
              input x: f32[1, 2, 3]
              const s: f32[2] = [1, 0.25]
              const z: i8[2] = [-1, 3]
              q = QuantizeLinear(x, s, z)
              y = DequantizeLinear(q, s, z)
              output y
            }
            """
        // Channel 0 (scale 1, zero −1): 0.5 → 0 → −1 → 0; 126.6 → 127 → 126 → 127; −200 → −128 → −127.
        // Channel 1 (scale 0.25, zero 3): 0.3 → 1.2 → 1 → 4 → 0.25; 40 → 160 → 127 → 31; −0.125 → −0.5 → 0 → 3 → 0.
        let x = TensorData(floats: [0.5, 126.6, -200, 0.3, 40, -0.125], shape: [1, 2, 3])
        for y in try outputs(text, ["x": x]) {
            #expect(y.floats == [0, 127, -127, 0.25, 31, 0])
        }
    }

    @Test("A QuantizeLinear → DequantizeLinear pair becomes one compiled step with the pair's values")
    func quantizeDequantize() throws {
        let text = """
            graph t {
              input x: f32[1, 21]
              const s: f32[] = [0.25]
              const z: i8[] = [3]
              q = QuantizeLinear(x, s, z)
              y = DequantizeLinear(q, s, z)
              output y
            }
            """
        let fused = try Pipeline.run(try TextFormat.parse(text), passes: [.fuseQuantization])
        #expect(fused.nodes.map(\.op) == ["QuantizeDequantize"])
        // x / 0.25 rounded, the quantized value q + 3 kept in [−128, 127], then (q − 3)·0.25:
        // 0.26 → 1.04 → 0.25; −0.74 → −2.96 → −0.75; 100 → 400 → 124 → 31; NaN → −131 → −32.75;
        // 0.125 → 0.5 → 0; −0.125 → −0.5 → −0; 0.375 → 1.5 → 2 → 0.5 (three times: the vector
        // path and its tail).
        let pattern: [Float] = [0.26, -0.74, 100, .nan, 0.125, -0.125, 0.375]
        let want: [Float] = [0.25, -0.75, 31, -32.75, 0, 0, 0.5]
        for y in try outputs(text, ["x": TensorData(floats: pattern + pattern + pattern, shape: [1, 21])]) {
            #expect(y.floats == want + want + want)
        }
    }

    @Test("QLinearConv with a per-channel weight scale, bias and saturation")
    func qlinearConv() throws {
        let text = """
            graph t {
              input x: u8[1, 1, 2, 2]
              const xs: f32[] = [0.5]
              const xz: u8[] = [10]
              const w: i8[2, 1, 1, 1] = [3, -2]
              const ws: f32[2] = [1, 0.25]
              const wz: i8[2] = [0, 0]
              const ys: f32[] = [2]
              const yz: u8[] = [100]
              const b: i32[2] = [4, -8]
              y = QLinearConv(x, xs, xz, w, ws, wz, ys, yz, b)
              output y
            }
            """
        // x − 10 = [−10, 0, 2, 200]. Channel 0: 3·v + 4 = [−26, 4, 10, 604], × 0.5·1/2 = 0.25 →
        // [−6.5, 1, 2.5, 151] → [−6, 1, 2, 151] + 100 = [94, 101, 102, 251].
        // Channel 1: −2·v − 8 = [12, −8, −12, −408], × 0.5·0.25/2 = 0.0625 → [0.75, −0.5, −0.75, −25.5]
        // → [1, −0, −1, −26] + 100 = [101, 100, 99, 74].
        let x = TensorData(dtype: .u8, shape: [1, 1, 2, 2], integers: [0, 10, 12, 210])
        for y in try outputs(text, ["x": x]) {
            #expect(y.int64s == [94, 101, 102, 251, 101, 100, 99, 74])
        }
    }

    @Test("MatMulInteger with a per-row A zero point and a per-column B zero point")
    func matMulInteger() throws {
        let text = """
            graph t {
              input a: u8[2, 2]
              const b: i8[2, 2] = [1, -1, 2, 5]
              const az: u8[2] = [1, 200]
              const bz: i8[2] = [0, 1]
              y = MatMulInteger(a, b, az, bz)
              output y
            }
            """
        // A − az = [[2, 3], [−200, 55]]; B − bz = [[1, −2], [2, 4]].
        // Row 0: [2 + 6, −4 + 12] = [8, 8]; row 1: [−200 + 110, 400 + 220] = [−90, 620].
        let a = TensorData(dtype: .u8, shape: [2, 2], integers: [3, 4, 0, 255])
        for y in try outputs(text, ["a": a]) {
            #expect(y.dtype == .i32)
            #expect(y.int64s == [8, 8, -90, 620])
        }
    }

    @Test("kiln quantize's parameters: activation scales and zero points, 7-bit weights, int32 biases, a ReLU folded in")
    func quantizeGraph() throws {
        // Ranges widened to hold 0: [−1, 3] → scale 4/255, zero point round(1 / (4/255)) = round(63.75) = 64;
        // as int8 round(−128 + 63.75) = −64. [0.5, 2] → [0, 2]: scale 2/255, zero point 0.
        let a = Quantization.Parameters(range: -1, 3, type: .u8)
        #expect(a.scale == Float(4) / 255 && a.zeroPoint == 64)
        #expect(Quantization.Parameters(range: -1, 3, type: .i8).zeroPoint == -64)
        let b = Quantization.Parameters(range: 0.5, 2, type: .u8)
        #expect(b.scale == Float(2) / 255 && b.zeroPoint == 0)
        let g = try TextFormat.parse("""
            graph t {
              input x: f32[N, 1, 2, 2]
              param w: f32[2, 1, 1, 1] = [0.5, -2]
              param bias: f32[2] = [0.1, -0.3]
              c = Conv(x, w, bias)
              r = Relu(c)
              y = GlobalAveragePool(r)
              output y
            }
            """)
        #expect(Quantization.activationTensors(g) == ["x", "c", "r"])
        let q = try Quantization.quantize(g, ranges: ["x": (-1, 3), "c": (-5, 2), "r": (0, 2)], options: .init(weightBits: 7))
        // The ReLU goes: c takes r's parameters (zero point 0), and x and c are quantized.
        #expect(!q.nodes.contains { $0.op == "Relu" })
        #expect(q.nodes.filter { $0.op == "QuantizeLinear" }.map { $0.inputs[0] } == ["x", "c"])
        func values(_ name: String) -> TensorData? { q.parameter(named: name)?.initializer.tensor }
        #expect(values("c_scale")?.floats == [Float(2) / 255] && values("c_zero_point")?.int64s == [0])
        // Weights per channel over 63 levels: 0.5 → 63 at scale 0.5/63, −2 → −63 at 2/63.
        #expect(values("w_quantized")?.int64s == [63, -63])
        #expect(values("w_scale")?.floats == [0.5 / 63, 2 / 63])
        // Biases on the grid of x's scale × the weight's: 0.1 / (4/255 · 0.5/63) = 803.25 → 803,
        // −0.3 / (4/255 · 2/63) = −602.4375 → −602.
        #expect(values("bias_quantized")?.int64s == [803, -602])
        #expect(values("bias_quantized")?.dtype == .i32)
    }

    /// A small network written by kiln quantize (8-bit weights) compiled: on a CPU with VNNI its
    /// convolutions run on the int8 kernel, elsewhere on the f32 ones; either way the outputs
    /// agree with the reference kernels' (in Doubles) and with the f32 path's. The int8
    /// product is exact in int32, so the paths differ only where f32 rounding moves a value
    /// across a rounding boundary of the next quantization.
    @Test("A QDQ network's convolutions on the int8 kernel agree with the reference and the f32 path")
    func int8Network() throws {
        var random = SeededValues(state: 7)
        func values(_ n: Int, _ amplitude: Double) -> String { random.text(n, amplitude) }
        let g = try TextFormat.parse("""
            graph t {
              input x: f32[N, 3, 48, 48]
              param w1: f32[16, 3, 3, 3] = [\(values(432, 0.5))]
              param b1: f32[16] = [\(values(16, 0.2))]
              param w2: f32[32, 16, 3, 3] = [\(values(4608, 0.2))]
              param w3: f32[32, 32, 1, 1] = [\(values(1024, 0.3))]
              param b3: f32[32] = [\(values(32, 0.2))]
              c1 = Conv(x, w1, b1) {pads = [1, 1, 1, 1]}
              r1 = Relu(c1)
              c2 = Conv(r1, w2) {pads = [1, 0, 1, 1], strides = [2, 2]}
              r2 = Relu(c2)
              c3 = Conv(r2, w3, b3)
              s = Add(c3, r2)
              y = GlobalAveragePool(s)
              output y
            }
            """)
        let ranges: [String: (lo: Float, hi: Float)] = ["x": (-1, 1), "c1": (-2, 2), "r1": (0, 2), "c2": (-3, 3), "r2": (0, 3), "c3": (-4, 4), "s": (-4, 6)]
        let wanted = Set(Quantization.activationTensors(g))
        let q = try Quantization.quantize(g, ranges: ranges.filter { wanted.contains($0.key) }, options: .init(weightBits: 8))
        // Batch 4 (images spread over the threads) and 1 (each image's work split between them).
        for batch in [4, 1] {
        let x = TensorData(floats: (0..<(batch * 3 * 48 * 48)).map { Float(sin(Double($0) * 0.37)) }, shape: [batch, 3, 48, 48])
        let reference = try ReferenceExecutor.run(q, inputs: ["x": x])["y"]!.floats
        let int8 = try CompiledModel.compile(q, batch: batch, threads: 2, options: CompileOptions())
        let f32 = try CompiledModel.compile(q, batch: batch, threads: 2, options: CompileOptions(int8: false))
        let kernels = int8.program.steps.compactMap { step -> ConvAlgorithm? in if case .conv(let c) = step.kernel { c.algorithm } else { nil } }
        #expect(kernels.count == 3)
        #expect(kernels.allSatisfy { $0 == .int8 } == (kiln_qconv_vnni() != 0), "\(kernels)")
        #expect(!f32.program.steps.contains { if case .conv(let c) = $0.kernel { c.algorithm == .int8 } else { false } })
        let a = try int8.run(["x": x])["y"]!.floats, b = try f32.run(["x": x])["y"]!.floats
        #expect(a.count == 32 * batch && reference.count == 32 * batch)
        // A value that f32 rounding moves across a rounding boundary of a quantization moves
        // one step, and moves the values computed from it; y's mean over 24 × 24 positions
        // then moves by a step of s's (10/255) over 576 per value moved. The reference (in
        // Doubles) and the f32 programs round differently: allow 0.01 (a broken kernel is off
        // by far more). The two f32 programs differ only in the order of their sums: allow
        // ten values moved.
        for (name, got) in [("int8", a), ("f32", b)] {
            let worst = zip(got, reference).map { abs($0 - $1) }.max()!
            #expect(worst <= 0.01, "\(name): worst difference from the reference \(worst)")
        }
        let worst = zip(a, b).map { abs($0 - $1) }.max()!
        #expect(worst <= 10 * 10 / 255 / 576, "int8 and f32 programs: worst difference \(worst)")
        }
    }

    @Test("A quantized SiLU (x · q(σ(x)), each value quantized) is one elementwise chain reading its input twice, in place or not")
    func quantizedSiLUChain() throws {
        let text = """
            graph t {
              input x: f32[N, 3, 40, 40]
              const s0: f32[] = [0.05]
              const z0: u8[] = [128]
              const s1: f32[] = [0.003921569]
              const z1: u8[] = [0]
              const s2: f32[] = [0.03]
              const z2: u8[] = [10]
              a = QuantizeLinear(x, s0, z0)
              xq = DequantizeLinear(a, s0, z0)
              g = Sigmoid(xq)
              b = QuantizeLinear(g, s1, z1)
              gq = DequantizeLinear(b, s1, z1)
              m = Mul(xq, gq)
              c = QuantizeLinear(m, s2, z2)
              d = DequantizeLinear(c, s2, z2)
              y = GlobalAveragePool(d)
              output y
            }
            """
        // (y pooled, so that the chain's output is not the graph's: the planner, which writes
        // elementwise results over a dying input, must not here, as the chain reads it twice.)
        let g = try TextFormat.parse(text)
        let x = TensorData(floats: (0..<(2 * 3 * 1600)).map { Float(sin(Double($0) * 0.013)) * 7 }, shape: [2, 3, 40, 40])
        let reference = try ReferenceExecutor.run(g, inputs: ["x": x])["y"]!.floats
        let model = try CompiledModel.compile(g, batch: 2, threads: 2, options: CompileOptions())
        let chains = model.program.steps.filter { $0.kernel.name == "elementwise-chain" }
        #expect(chains.count == 1 && chains[0].inputs.count == 2)
        #expect(chains.first?.outputs[0].byteOffset != chains.first?.inputs[0].tensor?.byteOffset)
        let got = try model.run(["x": x])["y"]!.floats
        // f32 and the reference's Doubles may round σ across a rounding boundary of its
        // quantization: then a value moves by at most one of its steps (0.03) and one of σ's
        // (1/255) times x.
        // y's means over 1,600 values then move by that over 1,600 per value moved: allow 16.
        #expect(got.count == 6)
        let worst = zip(got, reference).map { abs($0 - $1) }.max()!
        #expect(worst <= 16 * (0.03 + 7.0 / 255) / 1600, "worst difference \(worst)")
    }

    @Test("bf16 convolutions (CompileOptions.bf16) agree with the reference within bf16's rounding, and run on the bf16 kernel where the CPU has one")
    func bf16Network() throws {
        var random = SeededValues(state: 11)
        func values(_ n: Int, _ amplitude: Double) -> String { random.text(n, amplitude) }
        let g = try TextFormat.parse("""
            graph t {
              input x: f32[N, 3, 20, 20]
              param w1: f32[16, 3, 3, 3] = [\(values(432, 0.5))]
              param w2: f32[16, 16, 3, 3] = [\(values(2304, 0.2))]
              param w3: f32[16, 16, 1, 1] = [\(values(256, 0.3))]
              param b3: f32[16] = [\(values(16, 0.2))]
              c1 = Conv(x, w1) {pads = [1, 1, 1, 1]}
              r1 = Relu(c1)
              c2 = Conv(r1, w2) {pads = [1, 1, 1, 1], strides = [2, 2]}
              r2 = Relu(c2)
              c3 = Conv(r2, w3, b3)
              y = Add(c3, r2)
              output y
            }
            """)
        let x = TensorData(floats: (0..<(2 * 3 * 400)).map { Float(sin(Double($0) * 0.21)) }, shape: [2, 3, 20, 20])
        let reference = try ReferenceExecutor.run(g, inputs: ["x": x])["y"]!.floats
        let model = try CompiledModel.compile(g, batch: 2, threads: 2, options: CompileOptions(bf16: true))
        let kernels = model.program.steps.compactMap { step -> ConvAlgorithm? in if case .conv(let c) = step.kernel { c.algorithm } else { nil } }
        #expect(kernels.count == 3)
        #expect(kernels.allSatisfy { $0 == .bf16 } == (kiln_bconv_fast() != 0), "\(kernels)")
        let got = try model.run(["x": x])["y"]!.floats
        // Each product's operands rounded to 8-bit mantissas (relative error 2⁻⁹ each) through
        // three layers: a few parts in a thousand of the outputs' scale.
        let scale = reference.map { abs($0) }.max()!
        let worst = zip(got, reference).map { abs($0 - $1) }.max()!
        #expect(worst <= 0.01 * scale, "worst difference \(worst), outputs up to \(scale)")
        if kiln_bconv_fast() != 0 { #expect(worst > 0, "bf16 rounding left no trace: the f32 path ran") }
    }
}

/// Seeded values in [−amplitude, amplitude) as the text format's list, for weights written inline.
struct SeededValues {
    var state: UInt64
    mutating func text(_ n: Int, _ amplitude: Double) -> String {
        (0..<n).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return String(format: "%.4f", (Double(state >> 11) / Double(1 << 53) * 2 - 1) * amplitude)
        }.joined(separator: ", ")
    }
}
