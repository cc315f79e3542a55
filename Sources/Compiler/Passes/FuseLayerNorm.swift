import Graph

extension Pass {
    /// The LayerNorm that exporters write out for opsets before 17 — ReduceMean → Sub → Pow 2
    /// → ReduceMean → Add ε → Sqrt → Div, then optionally Mul by a scale and Add a bias, all
    /// over the same trailing axes — becomes one LayerNormalization (one pass per row).
    public static let fuseLayerNorm = Pass("fuse-layernorm", summary: "turn the decomposed (x − mean)/√(var + ε)·γ + β into LayerNormalization") { g in
        eliminateDeadCode(fusedLayerNorms(g))
    }
}

/// Long by choice: the pattern is a small DAG (x − mean is read twice), matched node by node.
private func fusedLayerNorms(_ graph: Graph) -> Graph {
    var g = graph
    let ctx = RewriteContext(g)
    var readers: [String: [Int]] = [:]
    for (i, n) in g.nodes.enumerated() { for v in n.inputs where !v.isEmpty { readers[v, default: []].append(i) } }
    let outputs = Set(g.outputs.map(\.name))
    /// The one node reading `v` (nothing else, no graph output), if it is `op`.
    func next(_ v: String, _ op: String) -> Int? {
        guard !outputs.contains(v), let r = readers[v], r.count == 1, g.nodes[r[0]].domain.isEmpty, g.nodes[r[0]].op == op else { return nil }
        return r[0]
    }
    /// The operand of binary node `i` other than `v`, when `v` is its first input (or either, for `commutes`).
    func other(_ i: Int, _ v: String, commutes: Bool) -> String? {
        let n = g.nodes[i]
        guard n.inputs.count == 2 else { return nil }
        if n.inputs[0] == v { return n.inputs[1] }
        return commutes && n.inputs[1] == v ? n.inputs[0] : nil
    }
    var removed = Set<Int>(), replacement: [Int: Node] = [:]
    for (i, mean) in g.nodes.enumerated() where mean.domain.isEmpty && mean.op == "ReduceMean" && !removed.contains(i) {
        guard let x = mean.inputs.first, let t = ctx.types[x], t.dtype == .f32, case .ints(let axes)? = mean.attributes["axes"],
              mean.attributes["keepdims"] == nil || mean.attributes["keepdims"] == .int(1) else { continue }
        let rank = t.rank, k = axes.count
        guard k >= 1, Set(axes.map { $0 < 0 ? $0 + rank : $0 }) == Set((rank - k)..<rank) else { continue }
        // x − mean, read by the Pow and the Div only.
        guard let sub = next(mean.outputs[0].name, "Sub"), g.nodes[sub].inputs == [x, mean.outputs[0].name] else { continue }
        let d = g.nodes[sub].outputs[0].name
        guard !outputs.contains(d), let dr = readers[d], dr.count == 2 else { continue }
        guard let pow = dr.first(where: { g.nodes[$0].op == "Pow" }), let div = dr.first(where: { g.nodes[$0].op == "Div" }),
              other(pow, d, commutes: false).flatMap({ ctx.scalar($0) }) == 2 else { continue }
        guard let variance = next(g.nodes[pow].outputs[0].name, "ReduceMean"), g.nodes[variance].attributes["axes"] == mean.attributes["axes"],
              g.nodes[variance].attributes["keepdims"] == mean.attributes["keepdims"],
              let add = next(g.nodes[variance].outputs[0].name, "Add"),
              let epsilon = other(add, g.nodes[variance].outputs[0].name, commutes: true).flatMap({ ctx.scalar($0) }),
              let sqrt = next(g.nodes[add].outputs[0].name, "Sqrt"), next(g.nodes[sqrt].outputs[0].name, "Div") == div,
              g.nodes[div].inputs == [d, g.nodes[sqrt].outputs[0].name] else { continue }
        var members = [i, sub, pow, variance, add, sqrt, div], last = div
        // × γ and + β, constants of the normalised shape (or broadcasting to it).
        let normalised = Array(t.shape[(rank - k)...])
        func affine(_ op: String) -> String? {
            guard let n = next(g.nodes[last].outputs[0].name, op), let c = other(n, g.nodes[last].outputs[0].name, commutes: true),
                  ctx.parameters[c]?.initializer.tensor != nil, let ct = ctx.types[c], broadcastShapes(normalised, ct.shape) == normalised else { return nil }
            members.append(n)
            last = n
            return c
        }
        let scale = affine("Mul"), bias = scale != nil ? affine("Add") : nil
        guard members.allSatisfy({ !removed.contains($0) }) else { continue }
        var inputs = [x]
        if let s = scale {
            inputs.append(s)
        } else {
            let ones = uniqueName("\(mean.name).ones", taken: Set(ctx.types.keys))
            g.parameters.append(Parameter(name: ones, role: .const, data: TensorData(floats: Array(repeating: 1, count: normalised.reduce(1) { $0 * ($1.value ?? 1) }),
                                                                              shape: normalised.map { $0.value ?? 1 })))
            inputs.append(ones)
        }
        if let b = bias { inputs.append(b) }
        for m in members { removed.insert(m) }
        replacement[last] = Node(name: mean.name, op: "LayerNormalization", inputs: inputs, outputs: [g.nodes[last].outputs[0]],
                                 attributes: ["axis": .int(rank - k), "epsilon": .float(epsilon)])
    }
    g.nodes = g.nodes.enumerated().compactMap { i, n in replacement[i] ?? (removed.contains(i) ? nil : n) }
    return g
}
