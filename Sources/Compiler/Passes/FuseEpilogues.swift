import Graph

extension Pass {
    /// Conv/Gemm followed by a residual Add and/or an activation becomes one fused node.
    public static let fuseEpilogues = Pass("fuse-epilogues", summary: "fuse bias, residual Add and activation into Conv, Gemm and MatMul") { g in
        Rewriter.apply([epilogueRule, matMulEpilogueRule, matMulTransposedRule, scaledQueryRule, scaledScoresRule], to: g)
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
    fusedActivationLink,
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
    if let r = m.links[1].first { addActivation(r, to: &attributes, chain: &chain, ctx) }
    attributes["chain"] = .strings(chain)
    return Node(name: p.name, op: p.op == "Conv" ? "FusedConv" : "FusedGemm", domain: "kiln",
                inputs: inputs.count == 4 ? inputs : Array(inputs.prefix(3)), outputs: [m.last.outputs[0]], attributes: attributes)
})

/// An activation the epilogue applies (Clip with constant bounds, Gelu in its erf form).
private let fusedActivationLink = RewriteRule.Link(.optional) { r, previous, ctx in
    guard r.domain.isEmpty || (r.domain == "kiln" && r.op == "QuantizeDequantize"), fusableActivations.contains(r.op), r.outputs.count == 1,
          r.inputs.first == previous.outputs[0].name,
          hasNoTanhApproximation(r) else { return false }
    return r.op != "Clip" || (1..<min(3, r.inputs.count)).allSatisfy { r.inputs[$0].isEmpty || ctx.scalar(r.inputs[$0]) != nil }
}

/// The activation `r` as epilogue attributes (its parameters with ONNX's defaults).
private func addActivation(_ r: Node, to attributes: inout [String: Attribute], chain: inout [String], _ ctx: RewriteContext) {
    let defaults = activationParameters(r.op)
    if parameterisedActivations.contains(r.op) { attributes["alpha"] = r.attributes["alpha"] ?? .float(defaults.alpha) }
    if r.op == "HardSigmoid" { attributes["beta"] = r.attributes["beta"] ?? .float(defaults.beta) }
    if r.op == "QuantizeDequantize" { for k in ["scale", "zero_point", "qmin", "qmax"] { attributes[k] = r.attributes[k] } }
    if r.op == "Clip" {
        for (k, key) in [(1, "min"), (2, "max")] where k < r.inputs.count && !r.inputs[k].isEmpty {
            attributes[key] = .float(ctx.scalar(r.inputs[k])!)
        }
    }
    chain.append(r.op)
    attributes["activation"] = .string(r.op)
}

/// The other operand of an Add that reads `value`.
private func otherOperand(_ a: Node, _ value: String) -> String? {
    guard a.domain.isEmpty, a.op == "Add", a.inputs.count == 2, a.inputs.contains(value), a.inputs[0] != a.inputs[1] else { return nil }
    return a.inputs[0] == value ? a.inputs[1] : a.inputs[0]
}

/// `act(MatMul(x, w) + bias + r)` with w a constant [K, N] (the linear layers of transformers
/// and MLPs), bias a constant [N], each part optional but the MatMul, becomes
/// `kiln.FusedMatMul(x, w, bias, r)`, which runs on packed weights with the epilogue in the
/// store.
let matMulEpilogueRule = RewriteRule("matmul-epilogue", root: { n, ctx in
    guard n.domain.isEmpty, n.op == "MatMul", n.outputs[0].type.dtype == .f32, let w = ctx.parameters[n.inputs[1]],
          let x = ctx.types[n.inputs[0]] else { return false }
    return w.type.rank == 2 && x.rank >= 2
}, links: [
    // A bias: a constant [N] (or [1, …, 1, N]).
    .init(.optional) { a, previous, ctx in
        guard let b = otherOperand(a, previous.outputs[0].name), let p = ctx.parameters[b], a.outputs[0].type == previous.outputs[0].type else { return false }
        let shape = p.type.shape.compactMap(\.value), n = previous.outputs[0].type.shape.last?.value
        return shape.count == p.type.rank && shape.last == n && shape.dropLast().allSatisfy { $0 == 1 } && shape.count <= previous.outputs[0].type.rank
    },
    // A residual of the output's type.
    .init(.optional) { a, previous, ctx in
        guard let r = otherOperand(a, previous.outputs[0].name) else { return false }
        return ctx.types[r] == previous.outputs[0].type && a.outputs[0].type == previous.outputs[0].type
    },
    fusedActivationLink,
], replace: { m, ctx in
    guard m.nodes.count > 1 else { return nil }
    let root = m.root
    var inputs = [root.inputs[0], root.inputs[1], "", ""], chain = ["MatMul"], attributes: [String: Attribute] = [:]
    var value = root.outputs[0].name
    if let add = m.links[0].first {
        let b = otherOperand(add, value)!
        guard let p = ctx.parameters[b] else { return nil }
        if p.type.rank == 1 {
            inputs[2] = b
        } else {
            // [1, …, 1, N] as the [N] the kernel reads.
            guard let n = p.type.shape.last?.value, let data = p.initializer.tensor else { return nil }
            inputs[2] = ctx.addParameter("\(b).row", TensorData(dtype: data.dtype, shape: [n], bytes: data.bytes))
        }
        chain.append("Add")
        value = add.outputs[0].name
    }
    if let add = m.links[1].first {
        inputs[3] = otherOperand(add, value)!
        chain.append("Add")
    }
    if let r = m.links[2].first { addActivation(r, to: &attributes, chain: &chain, ctx) }
    attributes["chain"] = .strings(chain)
    while inputs.last == "" { inputs.removeLast() }
    return Node(name: root.name, op: "FusedMatMul", domain: "kiln", inputs: inputs, outputs: [m.last.outputs[0]], attributes: attributes)
})

/// `MatMul(a, Transpose(b))` with the transpose swapping b's last two axes (attention's q·kᵀ)
/// becomes `kiln.MatMulTransB(a, b)`: the product reads b as it is stored.
let matMulTransposedRule = RewriteRule("matmul-transposed-b", root: { t, ctx in
    guard t.domain.isEmpty, t.op == "Transpose", t.outputs[0].type.dtype == .f32, let x = ctx.types[t.inputs[0]], x.rank >= 2,
          case .ints(let perm)? = t.attributes["perm"] else { return false }
    return perm == Array(0..<(x.rank - 2)) + [x.rank - 1, x.rank - 2]
}, links: [
    // A scale on the way (PyTorch's attention scales q and kᵀ by √scale each).
    .init(.optional) { s, previous, ctx in
        guard s.domain.isEmpty, s.op == "Mul", s.inputs.count == 2, s.outputs[0].type == previous.outputs[0].type else { return false }
        return (s.inputs[0] == previous.outputs[0].name && ctx.scalar(s.inputs[1]) != nil) || (s.inputs[1] == previous.outputs[0].name && ctx.scalar(s.inputs[0]) != nil)
    },
    .init(.one) { m, previous, _ in m.domain.isEmpty && m.op == "MatMul" && m.inputs.count == 2 && m.inputs[1] == previous.outputs[0].name && m.inputs[0] != m.inputs[1] },
], replace: { m, ctx in
    let product = m.links[1][0]
    guard let a = ctx.types[product.inputs[0]], a.rank >= 2 else { return nil }
    var attributes: [String: Attribute] = [:]
    if let s = m.links[0].first { attributes["alpha"] = .float(ctx.scalar(s.inputs[0]) ?? ctx.scalar(s.inputs[1])!) }
    return Node(name: product.name, op: "MatMulTransB", domain: "kiln", inputs: [product.inputs[0], m.root.inputs[0]], outputs: product.outputs,
                attributes: attributes)
})

/// `MatMulTransB(Mul(a, s), b)` with s a scalar constant (timm's attention scales q before
/// q·kᵀ) becomes `MatMulTransB(a, b)` with α multiplied by s: the scale rides on the packing
/// of b instead of a pass over a.
let scaledQueryRule = RewriteRule("scaled-query", root: { s, ctx in
    guard s.domain.isEmpty, s.op == "Mul", s.inputs.count == 2, s.outputs[0].type.dtype == .f32 else { return false }
    return (ctx.scalar(s.inputs[1]) != nil && ctx.types[s.inputs[0]] == s.outputs[0].type)
        || (ctx.scalar(s.inputs[0]) != nil && ctx.types[s.inputs[1]] == s.outputs[0].type)
}, links: [
    .init(.one) { m, previous, _ in
        m.domain == "kiln" && m.op == "MatMulTransB" && m.inputs.count == 2 && m.inputs[0] == previous.outputs[0].name && m.inputs[1] != m.inputs[0]
    },
], replace: { m, ctx in
    let scale = m.root, product = m.links[0][0]
    let (value, s) = ctx.scalar(scale.inputs[1]) != nil ? (scale.inputs[0], ctx.scalar(scale.inputs[1])!) : (scale.inputs[1], ctx.scalar(scale.inputs[0])!)
    var attributes = product.attributes
    var alpha: Float = 1
    if case .float(let a)? = attributes["alpha"] { alpha = a }
    attributes["alpha"] = .float(alpha * s)
    return Node(name: product.name, op: "MatMulTransB", domain: "kiln", inputs: [value, product.inputs[1]], outputs: product.outputs, attributes: attributes)
})

/// `MatMulTransB(a, b) · s` or `/ s` with s a scalar constant (scores scaled after the
/// product) becomes `MatMulTransB(a, b)` with α multiplied (divided) by s.
let scaledScoresRule = RewriteRule("scaled-scores", root: { m, _ in
    m.domain == "kiln" && m.op == "MatMulTransB" && m.outputs.count == 1 && m.outputs[0].type.dtype == .f32
}, links: [
    .init(.one) { s, previous, ctx in
        guard s.domain.isEmpty, s.op == "Mul" || s.op == "Div", s.inputs.count == 2, s.outputs[0].type == previous.outputs[0].type else { return false }
        let out = previous.outputs[0].name
        if s.op == "Div" { return s.inputs[0] == out && ctx.scalar(s.inputs[1]).map { $0 != 0 } == true }
        return (s.inputs[0] == out && ctx.scalar(s.inputs[1]) != nil) || (s.inputs[1] == out && ctx.scalar(s.inputs[0]) != nil)
    },
], replace: { m, ctx in
    let product = m.root, scale = m.links[0][0]
    let out = product.outputs[0].name
    let s = ctx.scalar(scale.inputs[0] == out ? scale.inputs[1] : scale.inputs[0])!
    var attributes = product.attributes
    var alpha: Float = 1
    if case .float(let a)? = attributes["alpha"] { alpha = a }
    attributes["alpha"] = .float(scale.op == "Div" ? alpha / s : alpha * s)
    return Node(name: product.name, op: "MatMulTransB", domain: "kiln", inputs: product.inputs, outputs: scale.outputs, attributes: attributes)
})
