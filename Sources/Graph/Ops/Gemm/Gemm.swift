// Matrix products: Gemm, MatMul, Einsum (Einsum.swift), the fused kiln.FusedGemm and kiln.FusedMatMul, and LDAM's cosine classifier
// kiln.NormedLinear with its gradient.
// Schemas: Gemm+Schemas.swift; reference kernels: Gemm+Reference.swift.

/// 2 · outputs · K.
private let gemmFlops = FlopRule.dense { n, inShapes, out in
    guard inShapes.count >= 2, inShapes[0].count == 2 else { return 0 }
    let k = n.intAttribute("transA", 0) != 0 ? inShapes[0][0] : inShapes[0][1]
    return sat(2, sat(out, k))
}

/// 2 · outputs · K: the multiply-adds of a matrix product (K is A's last dimension).
let matMulFlops = FlopRule.dense { _, inShapes, out in
    guard let a = inShapes.first, let k = a.last else { return 0 }
    return sat(2, sat(out, k))
}

let gemmDefinitions: [OpDefinition] = [
    define(einsumSchema, einsumReference, types: .numbers, flops: .perOutput(1), gradient: .none("Kiln has no backward rule for it yet"),
           lowering: .reference),
    define(gemmSchema, gemm, types: .floats, flops: gemmFlops, gradient: .rule(gemmGradient), lowering: .kernel(.gemm)),
    define(matMulSchema, matmul, types: .floats, flops: matMulFlops, gradient: .rule { ctx, n, dy, wants in
        let (a, b) = (n.inputs[0], n.inputs[1])
        guard ctx.type(a).rank == 2, ctx.type(b).rank == 2 else { throw ctx.unsupported(n, "MatMul of rank other than 2") }
        if wants[0] { try ctx.add(a, ctx.emit("Gemm", domain: "", [dy, b], [ctx.part(a)], attributes: ["transB": .int(1)], name: "\(n.name).grad.a")[0]) }
        if wants[1] { try ctx.add(b, ctx.emit("Gemm", domain: "", [a, dy], [ctx.part(b)], attributes: ["transA": .int(1)], name: "\(n.name).grad.b")[0]) }
    }, lowering: .kernel(.matMul)),
    define(fusedGemmSchema, fusedGemmReference, types: .floats, flops: gemmFlops, gradient: .none("the compiler forms it after differentiation"),
           lowering: .kernel(.gemm)),
    define(fusedMatMulSchema, fusedMatMulReference, types: .floats, flops: .dense { _, inShapes, out in
        guard let a = inShapes.first, let k = a.last else { return 0 }
        return sat(2, sat(out, k))
    }, gradient: .none("the compiler forms it after differentiation"), lowering: .kernel(.linear)),
    define(matMulTransBSchema, matMulTransBReference, types: .floats, flops: .dense { _, inShapes, out in
        guard let a = inShapes.first, let k = a.last else { return 0 }
        return sat(2, sat(out, k))
    }, gradient: .none("the compiler forms it after differentiation"), lowering: .kernel(.matMul)),
    define(normedLinearSchema, normedLinear, types: .floats, flops: .perOutput(1), gradient: .rule { ctx, n, dy, wants in
        let (x, w) = (n.inputs[0], n.inputs[1])
        let outs = try ctx.emit("NormedLinearGrad", [dy, x, w], [ctx.part(x), ctx.part(w)], name: "\(n.name).grad")
        for k in 0..<2 where wants[k] { try ctx.add(n.inputs[k], outs[k]) }
    }, lowering: .reference),
    define(normedLinearGradSchema, normedLinearGrad, types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .reference),
]

// Y = α·A'·B' + β·C with A' = A or Aᵀ, B' = B or Bᵀ.
@Sendable private func gemmGradient(_ ctx: inout GradientContext, _ n: Node, _ dy: String, _ wants: [Bool]) throws {
    let transA = n.intAttribute("transA", 0), transB = n.intAttribute("transB", 0)
    let alpha = n.floatAttribute("alpha", 1), beta = n.floatAttribute("beta", 1)
    let a = n.inputs[0], b = n.inputs[1]
    let ta = ctx.type(a), tb = ctx.type(b)
    if wants[0] {
        let grad = transA == 0
            ? try ctx.emit("Gemm", domain: "", [dy, b], [ctx.part(a)], attributes: ["alpha": .float(alpha), "transB": .int(transB == 0 ? 1 : 0)], name: "\(n.name).grad.a")[0]
            : try ctx.emit("Gemm", domain: "", [b, dy], [ctx.part(a)], attributes: ["alpha": .float(alpha), "transA": .int(transB), "transB": .int(1)], name: "\(n.name).grad.a")[0]
        try ctx.add(a, grad)
    }
    if wants[1] {
        let grad = transB == 0
            ? try ctx.emit("Gemm", domain: "", [a, dy], [ctx.part(b)], attributes: ["alpha": .float(alpha), "transA": .int(transA == 0 ? 1 : 0)], name: "\(n.name).grad.b")[0]
            : try ctx.emit("Gemm", domain: "", [dy, a], [ctx.part(b)], attributes: ["alpha": .float(alpha), "transA": .int(1), "transB": .int(transA)], name: "\(n.name).grad.b")[0]
        try ctx.add(b, grad)
    }
    if n.inputs.count > 2, !n.inputs[2].isEmpty, wants[2] {
        let c = n.inputs[2]
        var grad = try ctx.reduced(dy, to: c)
        if beta != 1 {
            let k = ctx.constant("\(n.name).beta", TensorData(floats: [beta], shape: []))
            grad = try ctx.emit("Mul", domain: "", [grad, k], [ctx.part(c)], name: "\(n.name).grad.beta")[0]
        }
        try ctx.add(c, grad)
    }
}
