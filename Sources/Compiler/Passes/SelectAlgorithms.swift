import CKernels
import Foundation
import Graph

/// The convolution algorithms the runtime implements.
public enum ConvAlgorithm: String, Sendable, CaseIterable {
    /// 1×1, stride 1, no padding, one group: the convolution is a matrix product.
    case gemm1x1 = "gemm_1x1"
    /// Patches gathered into columns per image, then one matrix product.
    case im2col
    /// Stride-1 direct convolution on a zero-padded copy of the input, where every tap is a
    /// constant shift; output channels in blocks of 8, vectors of 32 outputs. Grouped: per
    /// group, each group's output channels whole blocks of 8.
    case direct = "direct_shift"
    /// Winograd F(2×2, 3×3): 2.25× fewer multiplications for 3×3 stride-1 convolutions.
    case winograd = "winograd_f2x3"
    /// One input channel per group (MobileNet's and EfficientNet's depthwise layers): each
    /// plane padded once, every tap a contiguous run of a phase of the padded rows.
    case depthwise
    /// A QDQ model's convolution (input quantized per tensor, weights on a per-channel int8
    /// grid) on uint8 × int8 products summed in int32 (AVX-512 VNNI): the input quantized once
    /// into its padded stride phases, every tap a shifted row of them.
    case int8 = "int8_vnni"
    /// Activations and weights rounded to bf16, products summed in f32 (AVX-512 BF16), on the
    /// int8 kernel's layout (CompileOptions.bf16; the tuner keeps f32 where it is faster).
    case bf16 = "bf16_dot"
}

extension Pass {
    /// Chooses an algorithm for every (fused) convolution and records it on the node.
    public static let selectAlgorithms = selectAlgorithms(.environment)

    /// The same with the Winograd choice of `options`.
    public static func selectAlgorithms(_ options: CompileOptions) -> Pass {
        Pass("select-algorithms", summary: "choose the algorithm of every convolution") { g in
        var out = g
        for i in out.nodes.indices {
            let n = out.nodes[i]
            let isConv = (n.domain.isEmpty && n.op == "Conv") || (n.domain == "kiln" && n.op == "FusedConv")
            guard isConv else { continue }
            var node = n
            if node.domain.isEmpty {
                // A lone Conv becomes a FusedConv with an empty epilogue so it can carry the choice.
                node.domain = "kiln"
                node.op = "FusedConv"
                node.attributes["chain"] = .strings(["Conv"])
            }
            let algorithm: ConvAlgorithm = options.int8 && int8Input(of: node, g) != nil ? .int8
                : options.bf16 && bf16Eligible(node, g) ? .bf16
                : chooseConvAlgorithm(node, g, winograd: options.winograd, stridedDirect: options.stridedDirect)
            node.attributes["algorithm"] = .string(algorithm.rawValue)
            out.nodes[i] = node
        }
        return out
        }
    }
}

func chooseConvAlgorithm(_ n: Node, _ g: Graph, winograd forced: Bool?, stridedDirect forcedStrided: Bool? = nil) -> ConvAlgorithm {
    func ints(_ k: String) -> [Int]? { if case .ints(let v)? = n.attributes[k] { return v }; return nil }
    var group = 1
    if case .int(let v)? = n.attributes["group"] { group = v }
    let w = g.parameter(named: n.inputs[1])?.shape ?? []
    let oneByOne = w.count >= 3 && w[2...].allSatisfy { $0 == 1 }
    let unitStride = (ints("strides") ?? []).allSatisfy { $0 == 1 }
    let noPad = (ints("pads") ?? []).allSatisfy { $0 == 0 }
    var autoPad = "NOTSET"
    if case .string(let s)? = n.attributes["auto_pad"] { autoPad = s }
    if oneByOne && unitStride && noPad && group == 1 && (autoPad == "NOTSET" || autoPad == "VALID") { return .gemm1x1 }
    // Depthwise: the kernel multiplies the zero padding too, so non-finite weights give what
    // ONNX asks (0 × inf = NaN) on this path as well.
    if group > 1 && w.count == 4 && w[1] == 1 && w[0] % group == 0 && w[2] * w[3] <= Int(KILN_DEPTHWISE_MAX_TAPS) { return .depthwise }
    // Non-finite weights (a broken model, or BatchNorm statistics folded in): only im2col
    // multiplies them by the zero padding as ONNX (and onnxruntime) do, 0 × inf = NaN;
    // Winograd's transforms would mix them into other outputs, the direct kernel skips padding.
    if hasNonFiniteWeights(n, g) { return .im2col }
    let unitDilation = (ints("dilations") ?? []).allSatisfy { $0 == 1 }
    // Winograd pays off once there are enough input channels for its products to outweigh
    // its transforms: measured on ResNet-32 and ResNet-18 (BENCHMARKS.md), it beats the
    // direct kernel from 16 input channels at every spatial size they use (7×7 to 56×56).
    // CompileOptions.winograd forces the choice off or on (for measurements).
    let winogradShape = unitStride && unitDilation && group == 1 && w.count == 4 && w[0] % 8 == 0 && w[1] >= 8 && w[2] == 3 && w[3] == 3
    if winogradShape && forced != false && (forced == true || w[1] >= 16) {
        return .winograd
    }
    if unitStride && unitDilation && group == 1 && w.count == 4 && w[0] % 8 == 0 && w[2] * w[3] <= 64 && !oneByOne {
        return .direct
    }
    // Grouped (RegNet's and ResNeXt's 3×3 layers, group width 8 to 64): the direct kernel per
    // group, each group's input padded once, where im2col per group wrote nine patch values
    // for every eight (or few more) products made from them. Strided (stride 2), on the padded
    // input's phases, for outputs of up to 32 × 32: RegNetY-200MF's stride-2 layers at batch 1
    // (µs, im2col → direct) 28²: 228 → 196, 14²: 187 → 126, 7²: 164 → 85, but 56²: 321 → 392.
    let strides = ints("strides") ?? []
    let out = n.outputs[0].type
    let outPlane = out.rank == 4 ? Array(out.shape.suffix(2)).staticSizes?.reduce(1, *) ?? Int.max : Int.max
    let smallStride = strides.allSatisfy { $0 == 1 || $0 == 2 } && (forcedStrided == true || forcedStrided == nil && outPlane <= 1024)
    if (unitStride || smallStride) && unitDilation && group > 1 && w.count == 4 && w[0] % (8 * group) == 0 && w[2] * w[3] <= 64 && !oneByOne {
        return .direct
    }
    if forcedStrided == true && !unitStride && smallStride && unitDilation && group == 1 && w.count == 4 && w[0] % 8 == 0 && w[2] * w[3] <= 64 && !oneByOne {
        return .direct
    }
    return .im2col
}

/// Whether the convolution's weight is a parameter holding a NaN or an infinity.
func hasNonFiniteWeights(_ n: Node, _ g: Graph) -> Bool {
    guard let t = g.parameter(named: n.inputs[1])?.initializer.tensor, t.dtype == .f32 else { return false }
    return t.bytes.withUnsafeBytes { raw in raw.bindMemory(to: Float.self).contains { !$0.isFinite } }
}

/// Every algorithm the kernels can run this convolution with, the heuristic's choice
/// (`chooseConvAlgorithm` with nothing forced) first: what the tuner measures. One entry when
/// there is nothing to choose (1×1, depthwise, non-finite weights, shapes only im2col takes).
public func convAlgorithmCandidates(_ n: Node, _ g: Graph) -> [ConvAlgorithm] {
    // An int8 convolution (chosen by select-algorithms: the heuristic's choice) against the
    // f32 kernels on the quantization grid, which win where the int8 kernel's quantization
    // and byte interleaving outweigh its products (few input channels; a 1×1 expansion that
    // the f32 path fuses into the depthwise convolution after it).
    if case .string(ConvAlgorithm.int8.rawValue)? = n.attributes["algorithm"] { return [.int8] + f32Candidates(n, g) }
    if case .string(ConvAlgorithm.bf16.rawValue)? = n.attributes["algorithm"] { return [.bf16] + f32Candidates(n, g) }
    return f32Candidates(n, g)
}

private func f32Candidates(_ n: Node, _ g: Graph) -> [ConvAlgorithm] {
    let heuristic = chooseConvAlgorithm(n, g, winograd: nil, stridedDirect: nil)
    guard heuristic != .gemm1x1, heuristic != .depthwise, !hasNonFiniteWeights(n, g) else { return [heuristic] }
    func ints(_ k: String) -> [Int]? { if case .ints(let v)? = n.attributes[k] { return v }; return nil }
    var group = 1
    if case .int(let v)? = n.attributes["group"] { group = v }
    let w = g.parameter(named: n.inputs[1])?.shape ?? []
    guard w.count == 4 else { return [heuristic] }
    let strides = ints("strides") ?? [], unitStride = strides.allSatisfy { $0 == 1 }
    let unitDilation = (ints("dilations") ?? []).allSatisfy { $0 == 1 }
    let oneByOne = w[2] == 1 && w[3] == 1
    var out = [heuristic]
    // The same conditions chooseConvAlgorithm puts on each kernel, without its size rules.
    if unitStride && unitDilation && group == 1 && w[0] % 8 == 0 && w[1] >= 8 && w[2] == 3 && w[3] == 3 { out.append(.winograd) }
    if (unitStride || strides.allSatisfy { $0 == 1 || $0 == 2 }) && unitDilation && w[0] % (8 * group) == 0 && w[2] * w[3] <= 64 && !oneByOne {
        out.append(.direct)
    }
    out.append(.im2col)
    var seen = Set<ConvAlgorithm>()
    return out.filter { seen.insert($0).inserted }
}
