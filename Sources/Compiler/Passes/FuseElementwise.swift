import Graph

extension Pass {
    /// Chains of elementwise ops become one node that makes one pass over memory.
    public static let fuseElementwise = Pass("fuse-elementwise", summary: "fuse chains of elementwise ops into one pass") { g in
        fuseElementwiseChains(g)
    }
}

/// Joins runs of single-consumer elementwise nodes (activations, and arithmetic whose other
/// operand broadcasts into the running value) into `kiln.FusedElementwise[A→B→…]`.
public func fuseElementwiseChains(_ graph: Graph) -> Graph {
    var g = graph
    let params = Dictionary(g.parameters.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    let consumers = Consumers(g)
    let types = g.valueTypes

    /// The input the chain runs through, or nil when the node cannot join a chain.
    func chainInput(_ n: Node) -> (value: String, operand: String?, swap: Bool)? {
        guard n.domain.isEmpty, chainableElementwise.contains(n.op), n.outputs.count == 1, n.outputs[0].type.dtype == .f32 else { return nil }
        let out = n.outputs[0].type
        if n.op == "Clip" {
            for k in 1..<min(3, n.inputs.count) where !n.inputs[k].isEmpty {
                guard params[n.inputs[k]]?.initializer.tensor?.count == 1 else { return nil }
            }
            return types[n.inputs[0]] == out ? (n.inputs[0], nil, false) : nil
        }
        if n.inputs.count == 1 { return types[n.inputs[0]] == out ? (n.inputs[0], nil, false) : nil }
        guard n.inputs.count == 2, n.inputs[0] != n.inputs[1] else { return nil }
        if types[n.inputs[0]] == out, let t = types[n.inputs[1]], broadcastShapes(out.shape, t.shape) == out.shape {
            return (n.inputs[0], n.inputs[1], false)
        }
        if types[n.inputs[1]] == out, let t = types[n.inputs[0]], broadcastShapes(out.shape, t.shape) == out.shape {
            return (n.inputs[1], n.inputs[0], n.op == "Sub" || n.op == "Div")
        }
        return nil
    }

    var removed = Set<Int>()
    var replacement: [Int: Node] = [:]
    for i in g.nodes.indices where !removed.contains(i) {
        guard let first = chainInput(g.nodes[i]) else { continue }
        var members = [i]
        var links = [first]
        var current = g.nodes[i].outputs[0].name
        while let next = consumers.sole(current), !removed.contains(next), let link = chainInput(g.nodes[next]), link.value == current {
            members.append(next)
            links.append(link)
            current = g.nodes[next].outputs[0].name
        }
        guard members.count >= 2 else { continue }
        var inputs = [first.value]
        var chain: [String] = [], operand: [Int] = [], swap: [Int] = []
        var alphas: [Float] = [], mins: [Float] = [], maxs: [Float] = []
        for (m, link) in zip(members, links) {
            let n = g.nodes[m]
            chain.append(n.op)
            if let o = link.operand {
                operand.append(inputs.count)
                inputs.append(o)
            } else {
                operand.append(-1)
            }
            swap.append(link.swap ? 1 : 0)
            var alpha: Float = 0.01, lo = -Float.greatestFiniteMagnitude, hi = Float.greatestFiniteMagnitude
            if case .float(let a)? = n.attributes["alpha"] { alpha = a }
            if n.op == "Clip" {
                if n.inputs.count > 1, !n.inputs[1].isEmpty { lo = Float(params[n.inputs[1]]!.initializer.tensor!.double(at: 0)) }
                if n.inputs.count > 2, !n.inputs[2].isEmpty { hi = Float(params[n.inputs[2]]!.initializer.tensor!.double(at: 0)) }
            }
            alphas.append(alpha); mins.append(lo); maxs.append(hi)
        }
        let last = g.nodes[members.last!]
        let fused = Node(name: g.nodes[i].name, op: "FusedElementwise", domain: "kiln", inputs: inputs, outputs: last.outputs,
                         attributes: ["chain": .strings(chain), "operand": .ints(operand), "swap": .ints(swap),
                                      "alphas": .floats(alphas), "mins": .floats(mins), "maxs": .floats(maxs)])
        for m in members { removed.insert(m) }
        replacement[members.last!] = fused
    }
    g.nodes = g.nodes.enumerated().compactMap { i, n in replacement[i] ?? (removed.contains(i) ? nil : n) }
    return eliminateDeadCode(g)
}
