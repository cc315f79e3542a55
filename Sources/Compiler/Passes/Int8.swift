import CKernels
import Graph

/// How an int8 convolution's input is quantized: u = round(x / scale) + zero in [0, 255], so
/// x = scale · (u − zero).
public struct Int8Input: Sendable, Equatable {
    public var scale: Float
    public var zero: Int
}

/// Weights [rows, K] that lie on a per-row symmetric int8 grid, w = scale[row] · q with q in
/// [−128, 127], recovered from their float values (a QDQ model's weights arrive folded:
/// DequantizeLinear of int8 constants): each row's step is tried as its largest magnitude over
/// 127, 128, 63 and 64 (the 8- and 7-bit conventions of onnxruntime's quantizer and Kiln's)
/// and as its smallest non-zero magnitude, and taken only when every value is within 2⁻²⁰ of
/// the row's largest magnitude of its grid point — so the int8 product equals the f32 one up
/// to f32 rounding. nil when a row is on no such grid (or holds a NaN or an infinity).
public func int8Grid(_ w: UnsafeBufferPointer<Float>, rows: Int) -> (q: [Int8], scales: [Float])? {
    guard rows > 0, w.count % rows == 0 else { return nil }
    let k = w.count / rows
    var q = [Int8](repeating: 0, count: w.count), scales = [Float](repeating: 1, count: rows)
    for r in 0..<rows {
        let row = UnsafeBufferPointer(rebasing: w[(r * k)..<((r + 1) * k)])
        var amax: Float = 0, amin = Float.infinity
        for v in row {
            guard v.isFinite else { return nil }
            let a = abs(v)
            amax = max(amax, a)
            if a > 0 { amin = min(amin, a) }
        }
        guard amax > 0 else { continue }
        let tolerance = amax * 0x1p-20
        var found = false
        for s in [amax / 127, amax / 128, amax / 63, amax / 64, amin] where s > 0 && s.isNormal {
            var ok = true
            for (j, v) in row.enumerated() {
                let t = (v / s).rounded(.toNearestOrEven)
                guard t >= -128, t <= 127, abs(t * s - v) <= tolerance else { ok = false; break }
                q[r * k + j] = Int8(t)
            }
            if ok { scales[r] = s; found = true; break }
        }
        if !found { return nil }
    }
    return (q, scales)
}

/// The quantization of convolution `n`'s input when `n` can run on the int8 kernel here: the
/// CPU has a fast 8-bit dot product (the int8 kernel runs on VNNI), one group, the input
/// produced by a QuantizeDequantize (a node of its own, or an epilogue's last step) over 256
/// levels, and the weight on a per-channel int8 grid.
public func int8Input(of n: Node, _ g: Graph) -> Int8Input? {
    guard let input = int8InputQuantization(of: n, g), let w = g.parameter(named: n.inputs[1]), w.shape.count == 4,
          let t = w.initializer.tensor, t.dtype == .f32, t.count == w.shape.reduce(1, *), t.count > 0 else { return nil }
    let onGrid = t.bytes.withUnsafeBytes { raw in int8Grid(raw.bindMemory(to: Float.self), rows: w.shape[0]) != nil }
    return onGrid ? input : nil
}

/// `int8Input` without the weight's grid (which select-algorithms checked, and packing
/// recovers): what lowering a convolution already chosen for the int8 kernel reads.
public func int8InputQuantization(of n: Node, _ g: Graph) -> Int8Input? {
    guard kiln_qconv_vnni() != 0, n.outputs.first?.type.rank == 4 else { return nil }
    if case .int(let group)? = n.attributes["group"], group != 1 { return nil }
    guard let producer = g.nodes.first(where: { $0.outputs.contains { $0.name == n.inputs[0] } }),
          let (scale, low, high) = finalQuantization(producer), high - low == 255, scale.isNormal, scale > 0 else { return nil }
    return Int8Input(scale: scale, zero: -low)
}

/// The scale and the quantized range less the zero point of the QuantizeDequantize that
/// makes `producer`'s output: the node itself, an epilogue's activation, or the last part of
/// an elementwise chain.
private func finalQuantization(_ producer: Node) -> (scale: Float, low: Int, high: Int)? {
    if producer.domain == "kiln", producer.op == "FusedElementwise" {
        guard case .strings(let chain)? = producer.attributes["chain"], chain.last == "QuantizeDequantize",
              case .floats(let alphas)? = producer.attributes["alphas"], case .floats(let mins)? = producer.attributes["mins"],
              case .floats(let maxs)? = producer.attributes["maxs"], let scale = alphas.last, let low = mins.last, let high = maxs.last,
              low == low.rounded(), high == high.rounded() else { return nil }
        return (scale, Int(low), Int(high))
    }
    let isQDQ = producer.domain == "kiln" && producer.op == "QuantizeDequantize"
    guard isQDQ || producer.attributes["activation"] == .string("QuantizeDequantize"),
          case .float(let scale)? = producer.attributes["scale"], case .int(let zero)? = producer.attributes["zero_point"],
          case .int(let qmin)? = producer.attributes["qmin"], case .int(let qmax)? = producer.attributes["qmax"] else { return nil }
    return (scale, qmin - zero, qmax - zero)
}

/// Whether convolution `n` can run on the bf16 kernel here: the CPU has a bf16 dot product,
/// one group, and a finite f32 weight of rank 4.
public func bf16Eligible(_ n: Node, _ g: Graph) -> Bool {
    guard kiln_bconv_fast() != 0, n.outputs.first?.type.rank == 4 else { return false }
    if case .int(let group)? = n.attributes["group"], group != 1 { return false }
    guard let w = g.parameter(named: n.inputs[1]), w.shape.count == 4, let t = w.initializer.tensor, t.dtype == .f32 else { return false }
    return !hasNonFiniteWeights(n, g)
}
