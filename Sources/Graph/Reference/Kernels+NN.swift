import Foundation

// Reference kernels for convolution, pooling, normalisation, dense layers and softmax.
// Layout NCHW (N-D spatial), shapes as in the ONNX operator definitions.

/// Iterates over every index of `shape`, row-major, calling `body` with the coordinates.
@inline(__always)
func forEachIndex(_ shape: [Int], _ body: ([Int]) -> Void) {
    let n = shape.reduce(1, *)
    guard n > 0 else { return }
    var c = [Int](repeating: 0, count: shape.count)
    for _ in 0..<n {
        body(c)
        var d = shape.count - 1
        while d >= 0 {
            c[d] += 1
            if c[d] < shape[d] { break }
            c[d] = 0
            d -= 1
        }
    }
}

func windowGeometry(_ ctx: RefContext, spatial: [Int], kernel: [Int], ceil: Bool) throws -> WindowGeometry {
    do {
        return try WindowGeometry.resolve(input: spatial, kernel: kernel, strides: ctx.ints("strides"), dilations: ctx.ints("dilations"),
                                          pads: ctx.ints("pads"), autoPad: ctx.string("auto_pad"), ceilMode: ceil)
    } catch {
        switch error { case .message(let m): throw ctx.fail(m) }
    }
}

// Conv: x [N, C, D…], w [M, C/group, k…], b [M] → y [N, M, D'…]
private func conv(_ ctx: RefContext) throws -> [HostTensor] {
    let x = try ctx.input(0), w = try ctx.input(1), b = ctx.optional(2)
    let n = x.shape[0], c = x.shape[1], spatial = Array(x.shape[2...])
    let m = w.shape[0], cg = w.shape[1], kernel = Array(w.shape[2...])
    let group = ctx.int("group")
    let g = try windowGeometry(ctx, spatial: spatial, kernel: kernel, ceil: false)
    let outSpatial = g.output
    let outPlane = outSpatial.reduce(1, *), inPlane = spatial.reduce(1, *), kSize = kernel.reduce(1, *)
    var y = HostTensor.zeros(x.dtype, [n, m] + outSpatial)
    let inStrides = strides(spatial)
    let mPerGroup = m / group
    // Offsets of every kernel tap, per spatial dimension.
    var taps: [[Int]] = []
    forEachIndex(kernel) { taps.append($0) }
    var outCoords: [[Int]] = []
    forEachIndex(outSpatial) { outCoords.append($0) }
    let dims = spatial.count
    for ni in 0..<n {
        for mi in 0..<m {
            let gi = mi / mPerGroup
            let bias = b?.f[mi] ?? 0
            for (oi, o) in outCoords.enumerated() {
                var acc = bias
                for (ti, t) in taps.enumerated() {
                    var offset = 0, inside = true
                    for d in 0..<dims {
                        let p = o[d] * g.strides[d] - g.padsBegin[d] + t[d] * g.dilations[d]
                        if p < 0 || p >= spatial[d] { inside = false; break }
                        offset += p * inStrides[d]
                    }
                    if !inside {
                        // Padding is zeros that take part: 0 × inf and 0 × NaN are NaN.
                        for ci in 0..<cg { acc += 0 * w.f[(mi * cg + ci) * kSize + ti] }
                        continue
                    }
                    for ci in 0..<cg {
                        let xc = gi * cg + ci
                        acc += x.f[(ni * c + xc) * inPlane + offset] * w.f[(mi * cg + ci) * kSize + ti]
                    }
                }
                y.f[(ni * m + mi) * outPlane + oi] = acc
            }
        }
    }
    return [y]
}

/// Every window of a pool over x [N, C, D…]: its output index, the input positions inside the
/// image in tap order (the flat row-major index into x, and the same with the spatial
/// dimensions column-major, for storage_order = 1), and how many taps fall inside the padded
/// input.
func forEachWindow(_ ctx: RefContext, x: HostTensor, _ body: (_ out: Int, _ positions: [(flat: Int, column: Int)], _ padded: Int) -> Void) throws {
    let n = x.shape[0], c = x.shape[1], spatial = Array(x.shape[2...])
    guard let kernel = ctx.ints("kernel_shape") else { throw ctx.fail("missing kernel_shape") }
    let g = try windowGeometry(ctx, spatial: spatial, kernel: kernel, ceil: ctx.int("ceil_mode") != 0)
    let outPlane = g.output.reduce(1, *), inPlane = spatial.reduce(1, *)
    let inStrides = strides(spatial)
    var colStrides = Array(repeating: 1, count: spatial.count)
    for d in 1..<max(1, spatial.count) { colStrides[d] = colStrides[d - 1] * spatial[d - 1] }
    var taps: [[Int]] = []
    forEachIndex(kernel) { taps.append($0) }
    var outCoords: [[Int]] = []
    forEachIndex(g.output) { outCoords.append($0) }
    for plane in 0..<(n * c) {
        for (oi, o) in outCoords.enumerated() {
            var positions: [(flat: Int, column: Int)] = [], padded = 0
            for t in taps {
                var offset = 0, colOffset = 0, inside = true, inPadded = true
                for d in 0..<spatial.count {
                    let p = o[d] * g.strides[d] - g.padsBegin[d] + t[d] * g.dilations[d]
                    if p < -g.padsBegin[d] || p >= spatial[d] + g.padsEnd[d] { inPadded = false }
                    if p < 0 || p >= spatial[d] { inside = false } else {
                        offset += p * inStrides[d]
                        colOffset += p * colStrides[d]
                    }
                }
                if inPadded { padded += 1 }
                if inside { positions.append((plane * inPlane + offset, plane * inPlane + colOffset)) }
            }
            body(plane * outPlane + oi, positions, padded)
        }
    }
}

// MaxPool / AveragePool: x [N, C, D…] → y [N, C, D'…]; MaxPool's Indices index x flat
// (row-major, or column-major over the spatial dims with storage_order=1).
private func pool(max isMax: Bool) -> RefKernel {
    { ctx in
        let x = try ctx.input(0)
        guard let kernel = ctx.ints("kernel_shape") else { throw ctx.fail("missing kernel_shape") }
        let spatial = Array(x.shape[2...])
        let g = try windowGeometry(ctx, spatial: spatial, kernel: kernel, ceil: ctx.int("ceil_mode") != 0)
        var y = HostTensor.zeros(x.dtype, [x.shape[0], x.shape[1]] + g.output)
        var indices = HostTensor.zeros(.i64, [x.shape[0], x.shape[1]] + g.output)
        let colMajor = ctx.int("storage_order") == 1
        let includePad = ctx.int("count_include_pad") != 0
        try forEachWindow(ctx, x: x) { k, positions, padded in
            var best = -Double.infinity, bestIndex = -1, sum = 0.0
            for p in positions {
                let v = x.value(p.flat)
                sum += v
                // NaN propagates (the first one wins), as numpy's max and ONNX's Max.
                if bestIndex < 0 || v > best || (v.isNaN && !best.isNaN) {
                    best = v
                    bestIndex = colMajor ? p.column : p.flat
                }
            }
            if isMax {
                if x.isFloat { y.f[k] = best } else { y.i[k] = Int64(best) }
                indices.i[k] = Int64(bestIndex)
            } else {
                y.f[k] = sum / Double(includePad ? padded : max(positions.count, 1))
            }
        }
        return isMax ? [y, indices] : [y]
    }
}

private func globalPool(max isMax: Bool) -> RefKernel {
    { ctx in
        let x = try ctx.input(0)
        let planes = x.shape[0] * x.shape[1], size = x.shape[2...].reduce(1, *)
        var y = HostTensor.zeros(x.dtype, ctx.outShape())
        for p in 0..<planes {
            let slice = x.f[(p * size)..<((p + 1) * size)]
            y.f[p] = isMax ? slice.reduce(-Double.infinity) { $0.isNaN || $1.isNaN ? .nan : Swift.max($0, $1) }
                           : slice.reduce(0, +) / Double(size)
        }
        return [y]
    }
}

// BatchNormalization: y = scale·(x − mean)/√(var + ε) + B per channel (axis 1). In training
// mode the batch statistics (population variance) normalise, and the running statistics
// update as running = input·momentum + batch·(1 − momentum).
private func batchNorm(_ ctx: RefContext) throws -> [HostTensor] {
    let x = try ctx.input(0), scale = try ctx.input(1), bias = try ctx.input(2)
    var mean = try ctx.input(3), variance = try ctx.input(4)
    let n = x.shape[0], c = x.shape[1], inner = x.shape[2...].reduce(1, *)
    let eps = ctx.float("epsilon"), momentum = ctx.float("momentum")
    let training = ctx.int("training_mode") != 0
    var useMean = mean.f, useVar = variance.f
    if training {
        for ci in 0..<c {
            var s = 0.0
            for ni in 0..<n { for k in 0..<inner { s += x.f[(ni * c + ci) * inner + k] } }
            let mu = s / Double(n * inner)
            var v = 0.0
            for ni in 0..<n { for k in 0..<inner { let d = x.f[(ni * c + ci) * inner + k] - mu; v += d * d } }
            useMean[ci] = mu
            useVar[ci] = v / Double(n * inner)
        }
        for ci in 0..<c {
            mean.f[ci] = mean.f[ci] * momentum + useMean[ci] * (1 - momentum)
            variance.f[ci] = variance.f[ci] * momentum + useVar[ci] * (1 - momentum)
        }
    }
    var y = x
    for ni in 0..<n {
        for ci in 0..<c {
            let a = scale.f[ci] / (useVar[ci] + eps).squareRoot()
            for k in 0..<inner {
                let i = (ni * c + ci) * inner + k
                y.f[i] = a * (x.f[i] - useMean[ci]) + bias.f[ci]
            }
        }
    }
    return training ? [y, mean, variance] : [y]
}

// Gemm: Y [M, N] = alpha·A'·B' + beta·C, A' = transA ? Aᵀ : A, B' likewise.
private func gemm(_ ctx: RefContext) throws -> [HostTensor] {
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
private func matmul(_ ctx: RefContext) throws -> [HostTensor] {
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

// Softmax / LogSoftmax along `axis` (opset 13 semantics).
private func softmax(log: Bool) -> RefKernel {
    { ctx in
        var x = try ctx.input(0)
        let axis = ctx.axis(ctx.int("axis"), rank: x.shape.count)
        let outer = x.shape[..<axis].reduce(1, *), len = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *)
        for o in 0..<outer {
            for i in 0..<inner {
                let idx = (0..<len).map { (o * len + $0) * inner + i }
                let mx = idx.map { x.f[$0] }.max() ?? 0
                let sum = idx.reduce(0.0) { $0 + exp(x.f[$1] - mx) }
                for j in idx { x.f[j] = log ? x.f[j] - mx - Foundation.log(sum) : exp(x.f[j] - mx) / sum }
            }
        }
        return [x]
    }
}

// LRN: y = x / (bias + alpha/size · Σ x²)^beta over channels c − ⌊(size−1)/2⌋ … c + ⌈(size−1)/2⌉.
private func lrn(_ ctx: RefContext) throws -> [HostTensor] {
    let x = try ctx.input(0)
    let n = x.shape[0], c = x.shape[1], inner = x.shape[2...].reduce(1, *)
    let size = ctx.int("size"), alpha = ctx.float("alpha"), beta = ctx.float("beta"), bias = ctx.float("bias")
    let lo = (size - 1) / 2, hi = size - 1 - lo
    var y = x
    for ni in 0..<n {
        for ci in 0..<c {
            for k in 0..<inner {
                var s = 0.0
                for cj in max(0, ci - lo)...min(c - 1, ci + hi) {
                    let v = x.f[(ni * c + cj) * inner + k]
                    s += v * v
                }
                let i = (ni * c + ci) * inner + k
                y.f[i] = x.f[i] / pow(bias + alpha / Double(size) * s, beta)
            }
        }
    }
    return [y]
}

let nnKernels: [String: RefKernel] = [
    "Conv": conv,
    "MaxPool": pool(max: true),
    "AveragePool": pool(max: false),
    "GlobalAveragePool": globalPool(max: false),
    "GlobalMaxPool": globalPool(max: true),
    "BatchNormalization": batchNorm,
    "Gemm": gemm,
    "MatMul": matmul,
    "Softmax": softmax(log: false),
    "LogSoftmax": softmax(log: true),
    "LRN": lrn,
]
