import Graph

extension Pass {
    /// Removes Identity and inference-mode Dropout nodes, rewiring their consumers.
    public static let removeIdentities = Pass("identity", summary: "remove Identity and inference Dropout") { g in
        removeIdentityNodes(g)
    }

    /// Replaces integer values known at compile time (shape computations) by constants.
    public static let foldConstants = Pass("fold-constants", summary: "replace compile-time integer values by constants") { g in
        try foldConstantValues(g)
    }
}

/// Renames every use of `from` to `to` (node inputs and graph outputs).
func rename(_ g: inout Graph, _ from: String, to: String) {
    for i in g.nodes.indices {
        for k in g.nodes[i].inputs.indices where g.nodes[i].inputs[k] == from { g.nodes[i].inputs[k] = to }
    }
}

public func removeIdentityNodes(_ graph: Graph) -> Graph {
    var g = graph
    let graphOutputs = Set(g.outputs.map(\.name))
    let defined = Set(g.inputs.map(\.name) + g.parameters.map(\.name))
    var i = 0
    while i < g.nodes.count {
        let n = g.nodes[i]
        var removable = n.domain.isEmpty && n.op == "Identity"
        if n.domain.isEmpty && n.op == "Dropout" {
            let training = n.inputs.count > 2 && !n.inputs[2].isEmpty
            let maskUsed = n.outputs.count > 1 && !n.outputs[1].name.isEmpty
                && (g.nodes.contains { $0.inputs.contains(n.outputs[1].name) } || graphOutputs.contains(n.outputs[1].name))
            removable = !training && !maskUsed
        }
        guard removable, let input = n.inputs.first, !input.isEmpty else { i += 1; continue }
        let output = n.outputs[0].name
        if !graphOutputs.contains(output) {
            g.nodes.remove(at: i)
            rename(&g, output, to: input)
            continue
        }
        // The output name is part of the graph's interface: keep it by renaming the producer's
        // output instead, when the input is an intermediate value used nowhere else visible.
        if !defined.contains(input) && !graphOutputs.contains(input),
           let p = g.nodes.firstIndex(where: { $0.outputs.contains { $0.name == input } }) {
            g.nodes.remove(at: i)
            for k in g.nodes[p].outputs.indices where g.nodes[p].outputs[k].name == input { g.nodes[p].outputs[k].name = output }
            rename(&g, input, to: output)
            continue
        }
        i += 1
    }
    return g
}

public func foldConstantValues(_ graph: Graph) throws -> Graph {
    var g = graph
    let known = try graph.knownIntegerValues()
    let graphOutputs = Set(graph.outputs.map(\.name))
    var folded: [Parameter] = []
    var keep: [Node] = []
    for n in graph.nodes {
        let outs = n.outputs.filter { !$0.name.isEmpty }
        let foldable = !outs.isEmpty && outs.allSatisfy { o in
            known[o.name] != nil && o.type.dtype.isInteger && !graphOutputs.contains(o.name)
                && o.type.shape.staticSizes.map { $0.reduce(1, *) == known[o.name]!.count } == true
        }
        // Constant nodes become parameters whatever their type.
        if n.domain.isEmpty && n.op == "Constant", n.outputs.count == 1, !graphOutputs.contains(n.outputs[0].name) {
            if let t = constantTensor(n) {
                folded.append(Parameter(name: n.outputs[0].name, role: .const, data: t))
                continue
            }
        }
        if foldable && !(n.domain.isEmpty && n.op == "Constant") {
            for o in outs {
                let shape = o.type.shape.staticSizes!
                folded.append(Parameter(name: o.name, role: .const,
                                        data: TensorData(dtype: o.type.dtype, shape: shape, integers: known[o.name]!.map(Int64.init))))
            }
            continue
        }
        keep.append(n)
    }
    g.nodes = keep
    g.parameters += folded
    return eliminateDeadCode(g)
}

/// The value of a Constant node as a tensor.
func constantTensor(_ n: Node) -> TensorData? {
    switch (n.attributes["value"], n.attributes["value_float"], n.attributes["value_floats"], n.attributes["value_int"], n.attributes["value_ints"]) {
    case (.tensor(let t)?, _, _, _, _): return t
    case (_, .float(let v)?, _, _, _): return TensorData(floats: [v], shape: [])
    case (_, _, .floats(let v)?, _, _): return TensorData(floats: v, shape: [v.count])
    case (_, _, _, .int(let v)?, _): return TensorData(int64s: [Int64(v)], shape: [])
    case (_, _, _, _, .ints(let v)?): return TensorData(int64s: v.map(Int64.init), shape: [v.count])
    default: return nil
    }
}
