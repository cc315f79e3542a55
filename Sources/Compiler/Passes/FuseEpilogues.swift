import Graph

extension Pass {
    /// Conv/Gemm followed by a residual Add and/or an activation becomes one fused node.
    public static let fuseEpilogues = Pass("fuse-epilogues", summary: "fuse bias, residual Add and activation into Conv and Gemm") { g in
        fuseConvGemmEpilogues(g)
    }
}

/// Rewrites `act(Conv(x, w, b) + r)` (each part optional but the Conv, each intermediate used
/// once) into `kiln.FusedConv[Conv→Add→act](x, w, b, r)`; the same for Gemm.
public func fuseConvGemmEpilogues(_ graph: Graph) -> Graph {
    var g = graph
    let params = Dictionary(g.parameters.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    let consumers = Consumers(g)
    let types = g.valueTypes
    var removed = Set<Int>()
    var replacement: [Int: Node] = [:]
    for (pi, p) in g.nodes.enumerated() where p.domain.isEmpty && (p.op == "Conv" || p.op == "Gemm") && !removed.contains(pi) {
        guard p.outputs[0].type.dtype == .f32 else { continue }
        var chain = [p.op]
        var inputs = p.inputs
        while inputs.count < 3 { inputs.append("") }
        var attributes = p.attributes
        if p.op == "Gemm", let a = attributes.removeValue(forKey: "alpha") { attributes["alpha_gemm"] = a }
        var members = [pi]
        var output = p.outputs[0]
        if let ai = consumers.sole(output.name), !removed.contains(ai) {
            let a = g.nodes[ai]
            if a.domain.isEmpty, a.op == "Add", a.inputs.count == 2, a.outputs[0].type == output.type {
                let other = a.inputs[0] == output.name ? a.inputs[1] : a.inputs[0]
                if other != output.name, types[other] == output.type {
                    chain.append("Add")
                    inputs.append(other)
                    members.append(ai)
                    output = a.outputs[0]
                }
            }
        }
        if let ri = consumers.sole(output.name), !removed.contains(ri) {
            let r = g.nodes[ri]
            if r.domain.isEmpty, fusableActivations.contains(r.op), r.outputs.count == 1, r.inputs.first == output.name {
                var ok = true
                if r.op == "LeakyRelu" {
                    attributes["alpha"] = r.attributes["alpha"] ?? .float(0.01)
                } else if r.op == "Clip" {
                    for (k, key) in [(1, "min"), (2, "max")] where k < r.inputs.count && !r.inputs[k].isEmpty {
                        if let t = params[r.inputs[k]]?.initializer.tensor, t.count == 1 { attributes[key] = .float(Float(t.double(at: 0))) } else { ok = false }
                    }
                }
                if ok {
                    chain.append(r.op)
                    attributes["activation"] = .string(r.op)
                    members.append(ri)
                    output = r.outputs[0]
                }
            }
        }
        guard chain.count > 1 else { continue }
        attributes["chain"] = .strings(chain)
        let fused = Node(name: p.name, op: p.op == "Conv" ? "FusedConv" : "FusedGemm", domain: "kiln",
                         inputs: inputs.count == 4 ? inputs : Array(inputs.prefix(3)), outputs: [output], attributes: attributes)
        // The fused node takes the place of the chain's last node (its residual input may be
        // computed after the Conv), the others go.
        for m in members { removed.insert(m) }
        replacement[members.last!] = fused
    }
    g.nodes = g.nodes.enumerated().compactMap { i, n in replacement[i] ?? (removed.contains(i) ? nil : n) }
    return g
}
