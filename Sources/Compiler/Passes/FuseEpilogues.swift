import Graph

extension Pass {
    /// Conv/Gemm followed by a residual Add and/or an activation becomes one fused node.
    public static let fuseEpilogues = Pass("fuse-epilogues", summary: "fuse bias, residual Add and activation into Conv and Gemm") { g in
        Rewriter.apply(epilogueRule, to: g)
    }
}

/// `act(Conv(x, w, b) + r)` (each part optional but the Conv, each intermediate used once)
/// becomes `kiln.FusedConv[Conv→Add→act](x, w, b, r)`; the same for Gemm. Placed where the
/// chain ends, since the residual may be computed after the Conv.
let epilogueRule = RewriteRule("conv-gemm-epilogue", root: { n, _ in
    n.domain.isEmpty && (n.op == "Conv" || n.op == "Gemm") && n.outputs[0].type.dtype == .f32
}, links: [
    // A residual Add of a value of the output's type.
    .init(.optional) { a, previous, ctx in
        let out = previous.outputs[0]
        guard a.domain.isEmpty, a.op == "Add", a.inputs.count == 2, a.outputs[0].type == out.type else { return false }
        let other = a.inputs[0] == out.name ? a.inputs[1] : a.inputs[0]
        return other != out.name && ctx.types[other] == out.type
    },
    // An activation the epilogue applies (Clip with constant bounds).
    .init(.optional) { r, previous, ctx in
        guard r.domain.isEmpty, fusableActivations.contains(r.op), r.outputs.count == 1, r.inputs.first == previous.outputs[0].name else { return false }
        return r.op != "Clip" || (1..<min(3, r.inputs.count)).allSatisfy { r.inputs[$0].isEmpty || ctx.scalar(r.inputs[$0]) != nil }
    },
], replace: { m, ctx in
    let p = m.root
    guard m.nodes.count > 1 else { return nil }
    var chain = [p.op], inputs = p.inputs, attributes = p.attributes
    while inputs.count < 3 { inputs.append("") }
    if p.op == "Gemm", let a = attributes.removeValue(forKey: "alpha") { attributes["alpha_gemm"] = a }
    if let add = m.links[0].first {
        let out = p.outputs[0].name
        chain.append("Add")
        inputs.append(add.inputs[0] == out ? add.inputs[1] : add.inputs[0])
    }
    if let r = m.links[1].first {
        if r.op == "LeakyRelu" { attributes["alpha"] = r.attributes["alpha"] ?? .float(0.01) }
        if r.op == "Clip" {
            for (k, key) in [(1, "min"), (2, "max")] where k < r.inputs.count && !r.inputs[k].isEmpty {
                attributes[key] = .float(ctx.scalar(r.inputs[k])!)
            }
        }
        chain.append(r.op)
        attributes["activation"] = .string(r.op)
    }
    attributes["chain"] = .strings(chain)
    return Node(name: p.name, op: p.op == "Conv" ? "FusedConv" : "FusedGemm", domain: "kiln",
                inputs: inputs.count == 4 ? inputs : Array(inputs.prefix(3)), outputs: [m.last.outputs[0]], attributes: attributes)
})
