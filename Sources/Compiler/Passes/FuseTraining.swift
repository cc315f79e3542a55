import Graph

extension Pass {
    /// Training-step fusions: ReLU into the training-mode BatchNorm before it, ReLU's
    /// backward mask into the BatchNorm backward after it, and a gradient sum into the ReLU
    /// backward after it — one pass over memory each.
    public static let fuseTraining = Pass("fuse-training", summary: "fuse ReLU into training BatchNorm and its mask into BatchNorm backward") { g in
        fuseTrainingSteps(g)
    }
}

/// `Relu(BatchNormTraining(x, …))` becomes `BatchNormTraining(x, …) {activation="Relu"}`
/// producing the ReLU's output, `BatchNormGrad(ReluGrad(dy, y), …)` becomes
/// `BatchNormGrad(dy, …, y)`, and `ReluGrad(Sum(a, b), y)` — the gradient of a ReLU after a
/// residual Add, two contributions summed first — becomes `ReluGrad(a, y, b)`, each when the
/// intermediate has no other reader.
public func fuseTrainingSteps(_ graph: Graph) -> Graph {
    var g = graph
    let consumers = Consumers(g)
    var producer: [String: Int] = [:]
    for (i, n) in g.nodes.enumerated() { for o in n.outputs { producer[o.name] = i } }
    var removed = Set<Int>()
    for (bi, bn) in g.nodes.enumerated() where bn.domain == "kiln" && bn.op == "BatchNormTraining" && bn.attributes["activation"] == nil {
        guard let ri = consumers.sole(bn.outputs[0].name) else { continue }
        let r = g.nodes[ri]
        guard r.domain.isEmpty, r.op == "Relu", r.outputs.count == 1 else { continue }
        var fused = bn
        fused.outputs[0] = r.outputs[0]
        fused.attributes["activation"] = .string("Relu")
        g.nodes[bi] = fused
        removed.insert(ri)
    }
    for (gi, grad) in g.nodes.enumerated() where grad.domain == "kiln" && grad.op == "BatchNormGrad" && grad.inputs.count == 5 {
        guard consumers.sole(grad.inputs[0]) == gi, let ri = producer[grad.inputs[0]] else { continue }
        let r = g.nodes[ri]
        guard r.domain == "kiln", r.op == "ReluGrad" else { continue }
        var fused = grad
        fused.inputs = [r.inputs[0]] + Array(grad.inputs[1...]) + [r.inputs[1]]
        g.nodes[gi] = fused
        removed.insert(ri)
    }
    let types = g.valueTypes
    for (ri, r) in g.nodes.enumerated() where r.domain == "kiln" && r.op == "ReluGrad" && r.inputs.count == 2 && !removed.contains(ri) {
        guard consumers.sole(r.inputs[0]) == ri, let si = producer[r.inputs[0]], !removed.contains(si) else { continue }
        let sum = g.nodes[si]
        guard sum.domain.isEmpty, sum.op == "Sum" || sum.op == "Add", sum.inputs.count == 2,
              let y = types[r.inputs[1]], types[sum.inputs[0]] == y, types[sum.inputs[1]] == y else { continue }
        var fused = r
        fused.inputs = [sum.inputs[0], r.inputs[1], sum.inputs[1]]
        g.nodes[ri] = fused
        removed.insert(si)
    }
    g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    return g
}
