// Schemas (arity, attributes, type and shape rules) of the gemm family (see Gemm.swift).

// Gemm-13: Y = alpha·A'·B' + beta·C, A' [M, K], B' [K, N], C broadcast to [M, N].
let gemmSchema = OpSchema("Gemm", inputs: 2...3,
                          attributes: [.float("alpha", 1), .float("beta", 1), .int("transA", 0), .int("transB", 0)]) { ctx in
    let a = try ctx.input(0), b = try ctx.input(1)
    try ctx.requireSameType(a, b, "A and B")
    guard a.rank == 2, b.rank == 2 else { throw ctx.error("A and B must be matrices, got \(a.shape.text) and \(b.shape.text)") }
    let (m, ka) = ctx.int("transA") != 0 ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
    let (kb, n) = ctx.int("transB") != 0 ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
    guard ka == kb else { throw ctx.error("inner dimensions differ: A' is [\(m), \(ka)], B' is [\(kb), \(n)]") }
    if let c = ctx.optionalInput(2) {
        try ctx.requireSameType(a, c, "A and C")
        guard let s = broadcastShapes(c.shape, [m, n]), s == [m, n], c.rank <= 2 else {
            throw ctx.error("C \(c.shape.text) does not broadcast to [\(m), \(n)]")
        }
    }
    ctx.setOutput(0, TensorType(a.dtype, [m, n]))
}

// MatMul-13: numpy matmul, batch dimensions broadcast.
let matMulSchema = OpSchema("MatMul", inputs: 2...2) { ctx in
    let a = try ctx.input(0), b = try ctx.input(1)
    try ctx.requireSameType(a, b, "A and B")
    ctx.setOutput(0, TensorType(a.dtype, try matMulShape(ctx, a, b)))
}

/// numpy matmul's output shape (batch dimensions broadcast): MatMul's, MatMulInteger's and
/// QLinearMatMul's.
func matMulShape(_ ctx: InferenceContext, _ a: TensorType, _ b: TensorType) throws -> Shape {
    guard a.rank >= 1, b.rank >= 1 else { throw ctx.error("\(ctx.node.op) needs inputs of rank ≥ 1") }
    let sa = a.rank == 1 ? [Dim(1)] + a.shape : a.shape
    let sb = b.rank == 1 ? b.shape + [Dim(1)] : b.shape
    let k1 = sa[sa.count - 1], k2 = sb[sb.count - 2]
    guard k1 == k2 else { throw ctx.error("inner dimensions differ: \(a.shape.text) × \(b.shape.text)") }
    guard let batch = broadcastShapes(Array(sa.dropLast(2)), Array(sb.dropLast(2))) else {
        throw ctx.error("batch dimensions of \(a.shape.text) and \(b.shape.text) do not broadcast")
    }
    var shape = batch
    if a.rank > 1 { shape.append(sa[sa.count - 2]) }
    if b.rank > 1 { shape.append(sb[sb.count - 1]) }
    return shape
}

// A, B, C?, residual? → act(Gemm(A, B, C) + residual); Gemm's alpha is `alpha_gemm`
// (`alpha` is LeakyRelu's).
let fusedGemmSchema = OpSchema("FusedGemm", domain: "kiln", inputs: 2...4,
                               attributes: [.float("alpha_gemm", 1), .float("beta", 1), .int("transA", 0), .int("transB", 0)] + epilogueAttributes) { ctx in
    try checkActivation(ctx)
    let t = try inferAs("Gemm", ctx, inputs: 3, attributes: ["beta", "transA", "transB"])
    try checkResidual(ctx, 3, t)
    ctx.setOutput(0, t)
}

// x [..., K], w [K, N], bias [N] (optional), residual (optional, the output's type) →
// act(x·w + bias + residual) [..., N]: MatMul by a constant weight with its epilogue.
let fusedMatMulSchema = OpSchema("FusedMatMul", domain: "kiln", inputs: 2...4, attributes: epilogueAttributes) { ctx in
    try checkActivation(ctx)
    let x = try ctx.input(0), w = try ctx.input(1)
    try ctx.requireFloat(x, "x")
    try ctx.requireSameType(x, w, "x and w")
    guard x.rank >= 2, w.rank == 2, x.shape[x.rank - 1] == w.shape[0] else {
        throw ctx.error("x must be [..., K] and w [K, N], got \(x.shape.text) and \(w.shape.text)")
    }
    let out = TensorType(x.dtype, Array(x.shape.dropLast()) + [w.shape[1]])
    if let b = ctx.optionalInput(2), b.shape != [w.shape[1]] { throw ctx.error("bias must be [\(w.shape[1])], got \(b.shape.text)") }
    try checkResidual(ctx, 3, out)
    ctx.setOutput(0, out)
}

// a [..., m, k], b [..., n, k] → alpha · a · bᵀ [..., m, n] (MatMul of a by b's last two axes
// swapped: attention's scaled q · kᵀ without writing kᵀ out).
let matMulTransBSchema = OpSchema("MatMulTransB", domain: "kiln", inputs: 2...2, attributes: [.float("alpha", 1)]) { ctx in
    let a = try ctx.input(0), b = try ctx.input(1)
    try ctx.requireSameType(a, b, "A and B")
    guard a.rank >= 2, b.rank >= 2, a.shape[a.rank - 1] == b.shape[b.rank - 1] else {
        throw ctx.error("A must be [..., m, k] and B [..., n, k], got \(a.shape.text) and \(b.shape.text)")
    }
    guard let batch = broadcastShapes(Array(a.shape.dropLast(2)), Array(b.shape.dropLast(2))) else {
        throw ctx.error("batch dimensions of \(a.shape.text) and \(b.shape.text) do not broadcast")
    }
    ctx.setOutput(0, TensorType(a.dtype, batch + [a.shape[a.rank - 2], b.shape[b.rank - 2]]))
}

// x [N, F], w [F, C] → cos [N, C]: L2-normalised rows of x times L2-normalised columns of w.
let normedLinearSchema = OpSchema("NormedLinear", domain: "kiln", inputs: 2...2) { ctx in
    let x = try ctx.input(0), w = try ctx.input(1)
    try ctx.requireFloat(x, "x")
    try ctx.requireSameType(x, w, "x and w")
    guard x.rank == 2, w.rank == 2 else { throw ctx.error("x must be [N, F] and w [F, C], got \(x.shape.text) and \(w.shape.text)") }
    guard x.shape[1] == w.shape[0] else { throw ctx.error("x has \(x.shape[1]) features, w expects \(w.shape[0])") }
    ctx.setOutput(0, TensorType(x.dtype, [x.shape[0], w.shape[1]]))
}

// dz [N, C], x, w → dx, dw
let normedLinearGradSchema = OpSchema("NormedLinearGrad", domain: "kiln", inputs: 3...3, outputs: 2...2) { ctx in
    let x = try ctx.input(1), w = try ctx.input(2)
    ctx.setOutput(0, x)
    ctx.setOutput(1, w)
}
