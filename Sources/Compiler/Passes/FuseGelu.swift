import Graph

extension Pass {
    /// The GELU the classic exporters write out, 0.5·x·(1 + erf(x/√2)), becomes one Gelu node
    /// (which the elementwise and epilogue fusions then take like any activation).
    public static let fuseGelu = Pass("fuse-gelu", summary: "turn the decomposed 0.5·x·(1 + erf(x/√2)) into Gelu") { g in
        eliminateDeadCode(Rewriter.apply(geluRule, to: g))
    }
}

/// The value `n` combines with a constant scalar near `value` (either operand order), or nil.
private func operand(of n: Node, _ op: String, scalar value: Float, _ ctx: RewriteContext) -> String? {
    guard n.domain.isEmpty, n.op == op, n.inputs.count == 2 else { return nil }
    for (k, other) in [(0, 1), (1, 0)] where !(op == "Div" && k == 1) {
        if let c = ctx.scalar(n.inputs[other]), abs(c - value) <= 1e-5 * max(1, abs(value)) { return n.inputs[k] }
    }
    return nil
}

/// Div(x, √2) (or Mul(x, 1/√2)) → Erf → Add 1 → Mul x → Mul 0.5, each intermediate read once.
let geluRule = RewriteRule("gelu", root: { n, ctx in
    guard n.outputs.first?.type.dtype == .f32 else { return false }
    return operand(of: n, "Div", scalar: Float(2).squareRoot(), ctx) != nil || operand(of: n, "Mul", scalar: Float(0.5).squareRoot(), ctx) != nil
}, links: [
    .init(.one) { e, previous, _ in e.domain.isEmpty && e.op == "Erf" && e.inputs == [previous.outputs[0].name] },
    .init(.one) { a, previous, ctx in operand(of: a, "Add", scalar: 1, ctx) == previous.outputs[0].name },
    .init(.one) { m, previous, _ in m.domain.isEmpty && m.op == "Mul" && m.inputs.count == 2 && m.inputs.contains(previous.outputs[0].name) },
    .init(.one) { h, previous, ctx in operand(of: h, "Mul", scalar: 0.5, ctx) == previous.outputs[0].name },
], replace: { m, ctx in
    let x = operand(of: m.root, "Div", scalar: Float(2).squareRoot(), ctx) ?? operand(of: m.root, "Mul", scalar: Float(0.5).squareRoot(), ctx)!
    let product = m.links[2][0], erfPlusOne = m.links[1][0].outputs[0].name
    // The Mul must multiply x by 1 + erf(…), not the sum by itself or by another value.
    guard Set(product.inputs) == [x, erfPlusOne] else { return nil }
    return Node(name: m.root.name, op: "Gelu", inputs: [x], outputs: m.last.outputs)
})
