import Graph

extension Pass {
    /// Chains of elementwise ops become one node that makes one pass over memory.
    public static let fuseElementwise = Pass("fuse-elementwise", summary: "fuse chains of elementwise ops into one pass") { g in
        eliminateDeadCode(Rewriter.apply(elementwiseChainRule, to: g))
    }
}

/// The input an elementwise node's chain runs through, its other operand and whether that
/// operand comes first (Sub, Div); nil when the node cannot join a chain.
private func chainInput(_ n: Node, _ ctx: RewriteContext, running: String? = nil) -> (value: String, operand: String?, swap: Bool)? {
    let quantization = n.domain == "kiln" && n.op == "QuantizeDequantize"
    guard n.domain.isEmpty || quantization, chainableElementwise.contains(n.op), n.outputs.count == 1, n.outputs[0].type.dtype == .f32,
          hasNoTanhApproximation(n) else { return nil }
    let out = n.outputs[0].type, types = ctx.types
    if n.op == "Clip" {
        for k in 1..<min(3, n.inputs.count) where !n.inputs[k].isEmpty {
            guard ctx.scalar(n.inputs[k]) != nil else { return nil }
        }
        return types[n.inputs[0]] == out ? (n.inputs[0], nil, false) : nil
    }
    if n.inputs.count == 1 { return types[n.inputs[0]] == out ? (n.inputs[0], nil, false) : nil }
    guard n.inputs.count == 2, n.inputs[0] != n.inputs[1] else { return nil }
    // The chain's running value second where the first is read elsewhere too (x · q(σ(x))
    // written as Mul(x, …), x also the chain's input): the first is the operand. (A first
    // read only here may end a chain of its own that takes this node.)
    if let running, n.inputs[1] == running, ctx.soleReader(n.inputs[0]) == nil, types[n.inputs[1]] == out, let t = types[n.inputs[0]], broadcastShapes(out.shape, t.shape) == out.shape {
        return (n.inputs[1], n.inputs[0], n.op == "Sub" || n.op == "Div")
    }
    if types[n.inputs[0]] == out, let t = types[n.inputs[1]], broadcastShapes(out.shape, t.shape) == out.shape {
        return (n.inputs[0], n.inputs[1], false)
    }
    if types[n.inputs[1]] == out, let t = types[n.inputs[0]], broadcastShapes(out.shape, t.shape) == out.shape {
        return (n.inputs[1], n.inputs[0], n.op == "Sub" || n.op == "Div")
    }
    return nil
}

/// Runs of single-consumer elementwise nodes (activations, and arithmetic whose other operand
/// broadcasts into the running value) become `kiln.FusedElementwise[A→B→…]`.
let elementwiseChainRule = RewriteRule("elementwise-chain", root: { n, ctx in chainInput(n, ctx) != nil }, links: [
    .init(.oneOrMore) { next, previous, ctx in chainInput(next, ctx, running: previous.outputs[0].name)?.value == previous.outputs[0].name },
], replace: { m, ctx in
    var inputs: [String] = []
    var chain: [String] = [], operand: [Int] = [], swap: [Int] = []
    var alphas: [Float] = [], mins: [Float] = [], maxs: [Float] = []
    var chainValue = ""
    for n in m.nodes {
        guard let link = chainInput(n, ctx, running: inputs.isEmpty ? nil : chainValue) else { return nil }
        chainValue = n.outputs[0].name
        if inputs.isEmpty { inputs.append(link.value) }
        chain.append(n.op)
        if let o = link.operand {
            operand.append(inputs.count)
            inputs.append(o)
        } else {
            operand.append(-1)
        }
        swap.append(link.swap ? 1 : 0)
        let defaults = activationParameters(n.op)
        var alpha = defaults.alpha, lo = -Float.greatestFiniteMagnitude, hi = Float.greatestFiniteMagnitude
        if case .float(let a)? = n.attributes["alpha"] { alpha = a }
        if n.op == "HardSigmoid" {
            lo = defaults.beta  // the kernels' rule reads HardSigmoid's beta from lo
            if case .float(let b)? = n.attributes["beta"] { lo = b }
        }
        if n.op == "QuantizeDequantize" {
            guard case .float(let scale)? = n.attributes["scale"], case .int(let zero)? = n.attributes["zero_point"],
                  case .int(let qmin)? = n.attributes["qmin"], case .int(let qmax)? = n.attributes["qmax"] else { return nil }
            (alpha, lo, hi) = (scale, Float(qmin - zero), Float(qmax - zero))
        }
        if n.op == "Clip" {
            if n.inputs.count > 1, !n.inputs[1].isEmpty { lo = ctx.scalar(n.inputs[1])! }
            if n.inputs.count > 2, !n.inputs[2].isEmpty { hi = ctx.scalar(n.inputs[2])! }
        }
        alphas.append(alpha); mins.append(lo); maxs.append(hi)
    }
    return Node(name: m.root.name, op: "FusedElementwise", domain: "kiln", inputs: inputs, outputs: m.last.outputs,
                attributes: ["chain": .strings(chain), "operand": .ints(operand), "swap": .ints(swap),
                             "alphas": .floats(alphas), "mins": .floats(mins), "maxs": .floats(maxs)])
})
