import Foundation

// Reference kernels (Double precision, written for clarity) of the gemm family (see Gemm.swift).

// Gemm: Y [M, N] = alpha·A'·B' + beta·C, A' = transA ? Aᵀ : A, B' likewise.
func gemm(_ ctx: RefContext) throws -> [HostTensor] {
    let a = try ctx.input(0), b = try ctx.input(1), cIn = ctx.optional(2)
    let ta = ctx.int("transA") != 0, tb = ctx.int("transB") != 0
    let m = ta ? a.shape[1] : a.shape[0], k = ta ? a.shape[0] : a.shape[1]
    let n = tb ? b.shape[0] : b.shape[1]
    let alpha = ctx.float("alpha"), beta = ctx.float("beta")
    var y = HostTensor.zeros(a.dtype, [m, n])
    let cIdx = cIn.map { broadcastIndices(from: $0.shape, to: [m, n]) }
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let av = ta ? a.value(p * m + i) : a.value(i * k + p)
                let bv = tb ? b.value(j * k + p) : b.value(p * n + j)
                s += av * bv
            }
            var v = alpha * s
            if let cIn, let cIdx { v += beta * cIn.value(cIdx[i * n + j]) }
            if y.isFloat { y.f[i * n + j] = v } else { y.i[i * n + j] = Int64(v) }
        }
    }
    return [y]
}

// MatMul: numpy semantics, batch dimensions broadcast, 1-D operands promoted.
func matmul(_ ctx: RefContext) throws -> [HostTensor] {
    let a = try ctx.input(0), b = try ctx.input(1)
    let sa = a.shape.count == 1 ? [1] + a.shape : a.shape
    let sb = b.shape.count == 1 ? b.shape + [1] : b.shape
    let m = sa[sa.count - 2], k = sa[sa.count - 1], n = sb[sb.count - 1]
    let batch = broadcastShape([Array(sa.dropLast(2)), Array(sb.dropLast(2))])
    let batches = batch.reduce(1, *)
    let ia = broadcastIndices(from: Array(sa.dropLast(2)), to: batch)
    let ib = broadcastIndices(from: Array(sb.dropLast(2)), to: batch)
    var out = HostTensor.zeros(a.dtype, ctx.outShape())
    for bi in 0..<batches {
        let oa = ia[bi] * m * k, ob = ib[bi] * k * n, oy = bi * m * n
        for i in 0..<m {
            for j in 0..<n {
                if a.isFloat {
                    var s = 0.0
                    for p in 0..<k { s += a.f[oa + i * k + p] * b.f[ob + p * n + j] }
                    out.f[oy + i * n + j] = s
                } else {
                    var s: Int64 = 0
                    for p in 0..<k { s = s &+ a.i[oa + i * k + p] &* b.i[ob + p * n + j] }
                    out.i[oy + i * n + j] = wrap(s, a.dtype)
                }
            }
        }
    }
    return [out]
}

/// kiln.FusedGemm: Gemm on the first three inputs (its alpha is `alpha_gemm`), then the epilogue.
let fusedMatMulReference: RefKernel = { ctx in
    var y = try runPart(ctx, "MatMul", [try ctx.input(0), try ctx.input(1)])
    if let b = ctx.optional(2) { y = try runPart(ctx, "Add", [y, b]) }
    return [try fusedEpilogue(ctx, y)]
}

let matMulTransBReference: RefKernel = { ctx in
    let b = try ctx.input(1)
    let perm = Array(0..<(b.shape.count - 2)) + [b.shape.count - 1, b.shape.count - 2]
    let bt = try runPart(ctx, "Transpose", [b], attributes: ["perm": .ints(perm)])
    let y = try runPart(ctx, "MatMul", [try ctx.input(0), bt])
    let alpha = ctx.float("alpha")
    return [ctx.has("alpha") && alpha != 1 ? try runPart(ctx, "Mul", [y, HostTensor(dtype: y.dtype, shape: [], f: [alpha])]) : y]
}

let fusedGemmReference: RefKernel = { ctx in
    var attributes = ctx.node.attributes.filter { ["beta", "transA", "transB"].contains($0.key) }
    if let a = ctx.node.attributes["alpha_gemm"] { attributes["alpha"] = a }
    let y = try runPart(ctx, "Gemm", Array(ctx.inputs.prefix(3)), attributes: attributes)
    return [try fusedEpilogue(ctx, y)]
}
