import Graph

extension Pass {
    /// Einsum in the form of a (batched) matrix product — each label shared by both inputs and
    /// the output (batch), by one input and the output (rows, columns) or by both inputs only
    /// (summed) — becomes Transpose/Reshape → MatMul (or kiln.MatMulTransB when B already
    /// has its summed axes last) → Reshape/Transpose, each only where the layout needs it.
    /// Other forms stay Einsum (its reference kernel).
    public static let lowerEinsum = Pass("lower-einsum", summary: "Einsum in matrix-product form as MatMul with transposes") { g in
        var out = g
        out.nodes = []
        var taken = Set(g.parameters.map(\.name) + g.inputs.map(\.name) + g.nodes.flatMap { [$0.name] + $0.outputs.map(\.name) })
        let types = g.valueTypes
        for n in g.nodes {
            if let nodes = matrixProduct(n, types, &taken, &out.parameters) { out.nodes += nodes } else { out.nodes.append(n) }
        }
        return out
    }
}

/// The nodes computing Einsum `n` as a matrix product, or nil for another form.
private func matrixProduct(_ n: Node, _ types: [String: TensorType], _ taken: inout Set<String>, _ parameters: inout [Parameter]) -> [Node]? {
    guard n.domain.isEmpty, n.op == "Einsum", n.inputs.count == 2, case .string(let text)? = n.attributes["equation"],
          let ta = types[n.inputs[0]], let tb = types[n.inputs[1]], ta.dtype == .f32, tb.dtype == .f32,
          let sa = ta.shape.staticSizes, let sb = tb.shape.staticSizes, let eq = try? EinsumEquation(text, ranks: [sa.count, sb.count]) else { return nil }
    let (a, b, o) = (eq.inputs[0], eq.inputs[1], eq.output)
    // No diagonals, no axis summed within one input.
    guard Set(a).count == a.count, Set(b).count == b.count, Set(o).isSubset(of: Set(a).union(b)) else { return nil }
    let batch = o.filter { a.contains($0) && b.contains($0) }
    // Rows and columns keep their inputs' order (a permutation, if any, falls on the output).
    let rows = a.filter { o.contains($0) && !b.contains($0) }, cols = b.filter { o.contains($0) && !a.contains($0) }
    let summed = a.filter { b.contains($0) && !o.contains($0) }
    guard batch.count + rows.count + cols.count == o.count, rows.count + summed.count + batch.count == a.count,
          cols.count + summed.count + batch.count == b.count else { return nil }
    func size(_ l: Int, _ labels: [Int], _ s: [Int]) -> Int { s[labels.firstIndex(of: l)!] }
    // Batch axes broadcast (an ellipsis of size 1 in one input): MatMul broadcasts them too.
    let batchA = batch.map { size($0, a, sa) }, batchB = batch.map { size($0, b, sb) }
    let m = rows.reduce(1) { $0 * size($1, a, sa) }, k = summed.reduce(1) { $0 * size($1, a, sa) }
    let nn = cols.reduce(1) { $0 * size($1, b, sb) }
    guard summed.allSatisfy({ size($0, a, sa) == size($0, b, sb) }) else { return nil }
    var nodes: [Node] = []
    func name(_ suffix: String) -> String {
        let v = uniqueName("\(n.name).\(suffix)", taken: taken)
        taken.insert(v)
        return v
    }
    /// `value` reshaped to `target` (a new constant shape and a Reshape node).
    func reshaped(_ value: String, _ target: [Int], _ what: String) -> String {
        let s = name("\(what).shape")
        parameters.append(Parameter(name: s, role: .const, data: TensorData(int64s: target.map(Int64.init), shape: [target.count])))
        let r = name("\(what).reshaped")
        nodes.append(Node(name: r, op: "Reshape", inputs: [value, s], outputs: [Value(r, TensorType(.f32, target.map { Dim($0) }))]))
        return r
    }
    /// `value` (labels `from`, sizes `shape`) permuted into `order` and reshaped to `target`.
    func arrange(_ value: String, _ from: [Int], _ shape: [Int], _ order: [Int], _ target: [Int], _ what: String) -> String {
        var v = value
        let perm = order.map { from.firstIndex(of: $0)! }
        if perm != Array(perm.indices) {
            let t = name("\(what).transposed")
            nodes.append(Node(name: t, op: "Transpose", inputs: [v], outputs: [Value(t, TensorType(.f32, perm.map { Dim(shape[$0]) }))],
                              attributes: ["perm": .ints(perm)]))
            v = t
        }
        return target != perm.map({ shape[$0] }) ? reshaped(v, target, what) : v
    }
    let x = arrange(n.inputs[0], a, sa, batch + rows + summed, batchA + [m, k], "a")
    // B with its summed axes last takes the transposed product (no copy of B).
    let lastSummed = summed.last.flatMap { b.firstIndex(of: $0) }, lastCol = cols.last.flatMap { b.firstIndex(of: $0) } ?? -1
    let transB = lastSummed.map { $0 > lastCol } ?? false
    let y = transB ? arrange(n.inputs[1], b, sb, batch + cols + summed, batchB + [nn, k], "b")
                   : arrange(n.inputs[1], b, sb, batch + summed + cols, batchB + [k, nn], "b")
    let batchOut = zip(batchA, batchB).map { Swift.max($0, $1) }
    let product = name("product")
    nodes.append(Node(name: product, op: transB ? "MatMulTransB" : "MatMul", domain: transB ? "kiln" : "",
                      inputs: [x, y], outputs: [Value(product, TensorType(.f32, (batchOut + [m, nn]).map { Dim($0) }))]))
    // [batch, M, N] → the output's labels.
    let labels = batch + rows + cols
    let full = batchOut + rows.map { size($0, a, sa) } + cols.map { size($0, b, sb) }
    let v = full != batchOut + [m, nn] ? reshaped(product, full, "product") : product
    let perm = o.map { labels.firstIndex(of: $0)! }
    if perm != Array(perm.indices) {
        nodes.append(Node(name: n.name, op: "Transpose", inputs: [v], outputs: n.outputs, attributes: ["perm": .ints(perm)]))
    } else {  // the last node (the product or its reshape) gives the Einsum's output
        nodes[nodes.count - 1].outputs = n.outputs
        nodes[nodes.count - 1].name = n.name
    }
    return nodes
}
