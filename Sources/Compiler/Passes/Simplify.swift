import Graph

extension Pass {
    /// Removes Identity and inference-mode Dropout nodes, rewiring their consumers.
    public static let removeIdentities = Pass("identity", summary: "remove Identity and inference Dropout") { g in
        removeIdentityNodes(g)
    }

    /// Replaces values known at compile time (shape computations, nodes on constants) by constants.
    public static let foldConstants = Pass("fold-constants", summary: "replace values known at compile time by constants") { g in
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

/// Folds what is known at compile time into constants: Constant nodes, integer values the
/// verifier's known-value propagation computed (shape arithmetic), and every node whose inputs
/// are all constants (`.const` parameters, whatever their element type), evaluated by its
/// reference kernel. Outputs larger than `maxFoldedElements` stay computed.
public func foldConstantValues(_ graph: Graph) throws -> Graph {
    var g = graph
    let known = try graph.knownIntegerValues()
    let graphOutputs = Set(graph.outputs.map(\.name))
    var constants: [String: TensorData] = [:]
    // In an inference graph (no optimizer step) trained parameters do not change while it
    // runs, so what is computed from them alone folds too (the relative-position tables of
    // windowed attention); CompiledModel.refresh runs the passes again on new values.
    let inference = !graph.nodes.contains { $0.domain == "kiln" && $0.op == "SGD" }
    for p in graph.parameters where p.role == .const || (inference && p.role == .param) {
        if let t = p.initializer.tensor { constants[p.name] = t }
    }
    var folded: [Parameter] = []
    var keep: [Node] = []
    for n in graph.nodes {
        let outs = n.outputs.filter { !$0.name.isEmpty }
        func fold(_ values: [(String, TensorData)]) {
            for (name, t) in values {
                folded.append(Parameter(name: name, role: .const, data: t))
                constants[name] = t
            }
        }
        // Constant nodes become parameters whatever their type.
        if n.domain.isEmpty && n.op == "Constant", n.outputs.count == 1, !graphOutputs.contains(n.outputs[0].name) {
            if let t = constantTensor(n) {
                fold([(n.outputs[0].name, t)])
                continue
            }
        }
        guard !outs.isEmpty, !outs.contains(where: { graphOutputs.contains($0.name) }) else { keep.append(n); continue }
        let knownInts = outs.allSatisfy { o in
            known[o.name] != nil && (o.type.dtype.isInteger || o.type.dtype == .bool)
                && o.type.shape.staticSizes.map { $0.reduce(1, *) == known[o.name]!.count } == true
        }
        if knownInts {
            fold(outs.map { o in (o.name, TensorData(dtype: o.type.dtype, shape: o.type.shape.staticSizes!, integers: known[o.name]!.map(Int64.init))) })
            continue
        }
        if let values = evaluatedOnConstants(n, constants) {
            fold(values)
            continue
        }
        keep.append(n)
    }
    g.nodes = keep
    g.parameters += folded
    return eliminateDeadCode(g)
}

/// Largest output (in elements) constant folding materialises.
let maxFoldedElements = 1 << 22

/// The outputs of `n` computed by its reference kernel, when every input is in `constants`.
func evaluatedOnConstants(_ n: Node, _ constants: [String: TensorData]) -> [(String, TensorData)]? {
    guard n.inputs.contains(where: { !$0.isEmpty }), n.inputs.allSatisfy({ $0.isEmpty || constants[$0] != nil }),
          n.outputs.allSatisfy({ $0.type.shape.staticSizes.map { $0.reduce(1, *) <= maxFoldedElements } ?? false }),
          let kernel = OpRegistry.definition(of: n)?.reference else { return nil }
    let inputs = n.inputs.map { $0.isEmpty ? nil : HostTensor(constants[$0]!) }
    guard let outs = try? kernel(RefContext(node: n, inputs: inputs, outputTypes: n.outputs.map(\.type))), outs.count >= n.outputs.count else { return nil }
    var values: [(String, TensorData)] = []
    for (o, t) in zip(n.outputs, outs) where !o.name.isEmpty {
        guard t.dtype == o.type.dtype, t.shape == o.type.shape.staticSizes else { return nil }
        values.append((o.name, t.data))
    }
    return values
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
