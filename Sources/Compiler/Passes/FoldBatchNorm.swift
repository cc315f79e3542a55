import Graph

extension Pass {
    /// Folds inference BatchNormalization into the Conv or Gemm before it.
    public static let foldBatchNorm = Pass("fold-bn", summary: "fold inference BatchNormalization into the preceding Conv or Gemm") { g in
        foldBatchNormalization(g)
    }
}

/// Conv (or Gemm) → BatchNormalization, where the BN is the only consumer and every parameter
/// holds values, becomes one Conv (Gemm) with
/// w'[m, …] = w[m, …] · s[m], b'[m] = (b[m] − mean[m]) · s[m] + β[m], s = γ / √(var + ε).
public func foldBatchNormalization(_ graph: Graph) -> Graph {
    var g = graph
    var params = Dictionary(g.parameters.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    var uses: [String: Int] = [:]
    for n in g.nodes { for i in n.inputs { uses[i, default: 0] += 1 } }
    for o in g.outputs { uses[o.name, default: 0] += 1 }
    var removed = Set<Int>()
    var newParams: [Parameter] = []
    for (bi, bn) in g.nodes.enumerated() where bn.domain.isEmpty && bn.op == "BatchNormalization" && bn.outputs.count == 1 {
        if case .int(let t)? = bn.attributes["training_mode"], t != 0 { continue }
        guard let pi = g.nodes.firstIndex(where: { $0.outputs.first?.name == bn.inputs[0] }), !removed.contains(pi) else { continue }
        let p = g.nodes[pi]
        guard p.domain.isEmpty, p.op == "Conv" || p.op == "Gemm", uses[bn.inputs[0]] == 1 else { continue }
        let stats = bn.inputs[1...4].map { params[$0]?.initializer.tensor }
        guard let gamma = stats[0], let beta = stats[1], let mean = stats[2], let variance = stats[3],
              let w = params[p.inputs[1]]?.initializer.tensor, w.dtype == .f32 else { continue }
        var eps = 1e-5
        if case .float(let e)? = bn.attributes["epsilon"] { eps = Double(e) }
        let channels = gamma.count
        let scale = (0..<channels).map { gamma.double(at: $0) / (variance.double(at: $0) + eps).squareRoot() }
        var folded: TensorData
        if p.op == "Conv" {
            guard w.shape[0] == channels else { continue }
            let per = w.count / channels
            folded = w.mapFloats { src, dst in
                for m in 0..<channels {
                    let s = scale[m]
                    for k in m * per..<(m + 1) * per { dst[k] = Float(Double(src[k]) * s) }
                }
            }
        } else {
            // Gemm: output columns are W's rows (transB=1) or columns (transB=0).
            var transB = 0
            if case .int(let t)? = p.attributes["transB"] { transB = t }
            if case .int(let t)? = p.attributes["transA"], t != 0 { continue }
            if case .float(let a)? = p.attributes["alpha"], a != 1 { continue }
            if case .float(let b)? = p.attributes["beta"], b != 1 { continue }
            guard w.shape.count == 2 else { continue }
            let (rows, cols) = (w.shape[0], w.shape[1])
            guard (transB != 0 ? rows : cols) == channels else { continue }
            if p.inputs.count > 2, !p.inputs[2].isEmpty, let c = params[p.inputs[2]]?.initializer.tensor, c.count != channels { continue }
            folded = w.mapFloats { src, dst in
                for r in 0..<rows { for c in 0..<cols { dst[r * cols + c] = Float(Double(src[r * cols + c]) * scale[transB != 0 ? r : c]) } }
            }
        }
        let oldBias = p.inputs.count > 2 && !p.inputs[2].isEmpty ? params[p.inputs[2]]?.initializer.tensor : nil
        let bias = (0..<channels).map { m in
            Float(((oldBias?.double(at: m) ?? 0) - mean.double(at: m)) * scale[m] + beta.double(at: m))
        }
        let wName = uniqueName("\(p.name).weight.folded", params)
        let bName = uniqueName("\(p.name).bias.folded", params)
        let wp = Parameter(name: wName, role: .param, data: folded)
        let bp = Parameter(name: bName, role: .param, data: TensorData(floats: bias, shape: [channels]))
        params[wName] = wp
        params[bName] = bp
        newParams += [wp, bp]
        var fused = p
        fused.inputs = [p.inputs[0], wName, bName]
        fused.outputs = bn.outputs
        g.nodes[pi] = fused
        removed.insert(bi)
    }
    g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    g.parameters += newParams
    return eliminateDeadCode(g)
}

func uniqueName(_ base: String, _ taken: [String: Parameter]) -> String {
    var n = base, k = 1
    while taken[n] != nil { n = "\(base)_\(k)"; k += 1 }
    return n
}
