/// Per-node cost of a graph at a given batch size.
public struct NodeStats: Sendable {
    public var name: String
    public var op: String
    public var outputShapes: [[Int]]
    /// Trainable parameter elements this node is the first to use.
    public var parameters: Int
    /// Floating-point operations: multiply-adds × 2 for Conv, Gemm and MatMul; an estimate
    /// of one to a few per element for elementwise ops, normalisation and pooling.
    public var flops: Int
    /// Whether `flops` counts toward the conv + gemm total.
    public var isDense: Bool
    /// Bytes of all outputs.
    public var activationBytes: Int
}

public struct GraphStats: Sendable {
    public var batch: Int
    public var nodes: [NodeStats]
    public var trainableParameters: Int
    public var bufferElements: Int
    public var constantElements: Int
    public var parameterBytes: Int
    /// FLOPs of Conv, Gemm and MatMul.
    public var denseFlops: Int
    public var totalFlops: Int
    public var activationBytes: Int
}

/// a × b, clamped to Int.max: statistics of a huge (verified) graph saturate, never trap.
@inline(__always) func sat(_ a: Int, _ b: Int) -> Int {
    let (p, o) = a.multipliedReportingOverflow(by: b)
    return o ? Int.max : p
}

@inline(__always) func satAdd(_ a: Int, _ b: Int) -> Int {
    let (p, o) = a.addingReportingOverflow(b)
    return o ? Int.max : p
}

extension Graph {
    /// Parameter counts, FLOPs and activation sizes with every symbolic dimension bound to `batch`.
    public func stats(batch: Int = 1) -> GraphStats {
        var bindings: [String: Int] = [:]
        func concrete(_ s: Shape) -> [Int] {
            s.map { d in
                for sym in d.symbols where bindings[sym] == nil { bindings[sym] = batch }
                return d.bound(bindings).value ?? 0
            }
        }
        let params = Dictionary(parameters.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var types = valueTypes
        var used = Set<String>()
        var out: [NodeStats] = []
        for n in nodes {
            let outShapes = n.outputs.map { concrete($0.type.shape) }
            let inShapes = n.inputs.map { $0.isEmpty ? [] : concrete(types[$0]?.shape ?? []) }
            var p = 0
            for i in n.inputs where !i.isEmpty {
                if let q = params[i], q.role == .param, used.insert(i).inserted { p = satAdd(p, q.count) }
            }
            let (flops, dense) = Graph.flops(n, inShapes: inShapes, outShapes: outShapes)
            let bytes = zip(n.outputs, outShapes).reduce(0) { satAdd($0, sat($1.1.reduce(1, sat), $1.0.type.dtype.byteSize)) }
            out.append(NodeStats(name: n.name, op: n.qualifiedOp, outputShapes: outShapes, parameters: p, flops: flops,
                                 isDense: dense, activationBytes: bytes))
            for o in n.outputs { types[o.name] = o.type }
        }
        func total(_ role: ParameterRole) -> Int { parameters.filter { $0.role == role }.reduce(0) { satAdd($0, $1.count) } }
        return GraphStats(
            batch: batch, nodes: out,
            trainableParameters: total(.param), bufferElements: total(.buffer), constantElements: total(.const),
            parameterBytes: parameters.reduce(0) { satAdd($0, sat($1.count, $1.dtype.byteSize)) },
            denseFlops: out.filter(\.isDense).reduce(0) { satAdd($0, $1.flops) },
            totalFlops: out.reduce(0) { satAdd($0, $1.flops) },
            activationBytes: out.reduce(0) { satAdd($0, $1.activationBytes) })
    }

    /// The node's FLOPs and whether they are dense work (conv+gemm), by its definition's rule.
    static func flops(_ n: Node, inShapes: [[Int]], outShapes: [[Int]]) -> (Int, Bool) {
        let outCount = outShapes.first?.reduce(1, sat) ?? 0
        let inCount = inShapes.first?.reduce(1, sat) ?? 0
        guard let d = OpRegistry.definition(of: n) else { return (0, false) }
        switch d.flops {
        case .none: return (0, false)
        case .perOutput(let k): return (sat(k, outCount), false)
        case .perInput: return (inCount, false)
        case .dense(let f): return (f(n, inShapes, outCount), true)
        case .custom(let f): return (f(n, inShapes, outCount), false)
        }
    }
}
