import Graph

extension Pass {
    /// Folds inference BatchNormalization into the Conv or Gemm before it.
    public static let foldBatchNorm = Pass("fold-bn", summary: "fold inference BatchNormalization into the preceding Conv or Gemm") { g in
        eliminateDeadCode(Rewriter.apply(foldBatchNormRule, to: g))
    }
}

/// Conv (or Gemm) → BatchNormalization, where the BN is the only consumer and every parameter
/// holds values, becomes one Conv (Gemm) with
/// w'[m, …] = w[m, …] · s[m], b'[m] = (b[m] − mean[m]) · s[m] + β[m], s = γ / √(var + ε),
/// at the Conv's place.
let foldBatchNormRule = RewriteRule("fold-batchnorm", root: { p, _ in p.domain.isEmpty && (p.op == "Conv" || p.op == "Gemm") }, links: [
    .init { bn, p, _ in
        guard bn.domain.isEmpty, bn.op == "BatchNormalization", bn.outputs.count == 1, bn.inputs.count == 5, bn.inputs[0] == p.outputs[0].name else { return false }
        if case .int(let t)? = bn.attributes["training_mode"], t != 0 { return false }
        return true
    },
], placement: .root, replace: { m, ctx in
    let p = m.root, bn = m.last
    let stats = bn.inputs[1...4].map { ctx.parameters[$0]?.initializer.tensor }
    guard let gamma = stats[0], let beta = stats[1], let mean = stats[2], let variance = stats[3],
          let w = ctx.parameters[p.inputs[1]]?.initializer.tensor, w.dtype == .f32 else { return nil }
    var eps = 1e-5
    if case .float(let e)? = bn.attributes["epsilon"] { eps = Double(e) }
    let channels = gamma.count
    let scale = (0..<channels).map { gamma.double(at: $0) / (variance.double(at: $0) + eps).squareRoot() }
    guard let folded = foldedWeight(p, w, scale: scale, ctx: ctx) else { return nil }
    let oldBias = p.inputs.count > 2 && !p.inputs[2].isEmpty ? ctx.parameters[p.inputs[2]]?.initializer.tensor : nil
    let bias = (0..<channels).map { m in
        Float(((oldBias?.double(at: m) ?? 0) - mean.double(at: m)) * scale[m] + beta.double(at: m))
    }
    let wName = ctx.addParameter("\(p.name).weight.folded", folded)
    let bName = ctx.addParameter("\(p.name).bias.folded", TensorData(floats: bias, shape: [channels]))
    var fused = p
    fused.inputs = [p.inputs[0], wName, bName]
    fused.outputs = bn.outputs
    return fused
})

/// The Conv's weight scaled per output channel, or the Gemm's per output column; nil for a
/// Gemm the folding does not take (transA, α or β ≠ 1, shapes that do not match).
private func foldedWeight(_ p: Node, _ w: TensorData, scale: [Double], ctx: RewriteContext) -> TensorData? {
    let channels = scale.count
    if p.op == "Conv" {
        guard w.shape[0] == channels else { return nil }
        let per = w.count / channels
        return w.mapFloats { src, dst in
            for m in 0..<channels {
                let s = scale[m]
                for k in m * per..<(m + 1) * per { dst[k] = Float(Double(src[k]) * s) }
            }
        }
    }
    // Gemm: output columns are W's rows (transB=1) or columns (transB=0).
    var transB = 0
    if case .int(let t)? = p.attributes["transB"] { transB = t }
    if case .int(let t)? = p.attributes["transA"], t != 0 { return nil }
    if case .float(let a)? = p.attributes["alpha"], a != 1 { return nil }
    if case .float(let b)? = p.attributes["beta"], b != 1 { return nil }
    guard w.shape.count == 2 else { return nil }
    let (rows, cols) = (w.shape[0], w.shape[1])
    guard (transB != 0 ? rows : cols) == channels else { return nil }
    if p.inputs.count > 2, !p.inputs[2].isEmpty, let c = ctx.parameters[p.inputs[2]]?.initializer.tensor, c.count != channels { return nil }
    return w.mapFloats { src, dst in
        for r in 0..<rows { for c in 0..<cols { dst[r * cols + c] = Float(Double(src[r * cols + c]) * scale[transB != 0 ? r : c]) } }
    }
}
