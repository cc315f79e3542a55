// Reference kernels (Double precision, written for clarity) of the indexing family (see Index.swift).

/// For each row of indices (its last axis, k long, addressing leading axes of data after
/// `b` batch axes), the flat offset of the slice it names in data; negative indices count
/// back, any outside the data fail.
private func sliceOffsets(_ ctx: RefContext, data x: HostTensor, indices idx: HostTensor, batchDims b: Int) throws -> (offsets: [Int], slice: Int) {
    let k = idx.shape.last!, rows = idx.count / k
    let slice = x.shape[(b + k)...].reduce(1, *)
    let batch = x.shape[..<b].reduce(1, *), perBatch = rows / max(batch, 1)
    let xs = strides(x.shape)
    var offsets: [Int] = []
    offsets.reserveCapacity(rows)
    for r in 0..<rows {
        var o = b > 0 ? (r / perBatch) * xs[b - 1] : 0
        for j in 0..<k {
            let d = x.shape[b + j]
            var v = Int(idx.i[r * k + j])
            if v < 0 { v += d }
            guard v >= 0, v < d else { throw ctx.fail("index \(idx.i[r * k + j]) is out of range for axis \(b + j) of size \(d)") }
            o += v * xs[b + j]
        }
        offsets.append(o)
    }
    return (offsets, slice)
}

let gatherNDReference: RefKernel = { ctx in
    let x = try ctx.input(0), idx = try ctx.input(1)
    let (offsets, slice) = try sliceOffsets(ctx, data: x, indices: idx, batchDims: ctx.int("batch_dims"))
    return [x.gather(offsets.flatMap { o in (0..<slice).map { o + $0 } }, shape: ctx.outShape())]
}

let scatterNDReference: RefKernel = { ctx in
    var out = try ctx.input(0)
    let idx = try ctx.input(1), u = try ctx.input(2)
    let (offsets, slice) = try sliceOffsets(ctx, data: out, indices: idx, batchDims: 0)
    let reduction = ctx.string("reduction")
    func combine(_ a: Double, _ b: Double) -> Double {
        switch reduction {
        case "add": a + b
        case "mul": a * b
        case "max": a.isNaN || b.isNaN ? .nan : Swift.max(a, b)
        case "min": a.isNaN || b.isNaN ? .nan : Swift.min(a, b)
        default: b
        }
    }
    for (r, o) in offsets.enumerated() {
        for j in 0..<slice {
            if out.isFloat {
                out.f[o + j] = combine(out.f[o + j], u.f[r * slice + j])
            } else {
                out.i[o + j] = wrap(TensorData.clampedInt64(combine(Double(out.i[o + j]), Double(u.i[r * slice + j]))), out.dtype)
            }
        }
    }
    return [out]
}

let triluReference: RefKernel = { ctx in
    var x = try ctx.input(0)
    let k = ctx.optional(1).map { Int($0.i[0]) } ?? 0
    let upper = ctx.int("upper") != 0
    let rows = x.shape[x.shape.count - 2], cols = x.shape[x.shape.count - 1]
    for e in 0..<x.count {
        let i = (e / cols) % rows, j = e % cols
        // Kept: j − i ≥ k in the upper triangle, j − i ≤ k in the lower.
        guard upper ? j - i < k : j - i > k else { continue }
        if x.isFloat { x.f[e] = 0 } else { x.i[e] = 0 }
    }
    return [x]
}

let cumSumReference: RefKernel = { ctx in
    var x = try ctx.input(0)
    let axis = ctx.axis(Int(try ctx.input(1).i[0]), rank: x.shape.count)
    let len = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *), outer = x.shape[..<axis].reduce(1, *)
    let exclusive = ctx.int("exclusive") != 0, reverse = ctx.int("reverse") != 0
    /// Running sums of `v` along the axis, in place.
    func scan<T>(_ v: inout [T], zero: T, _ add: (T, T) -> T) {
        for o in 0..<outer {
            for i in 0..<inner {
                var sum = zero
                for s in 0..<len {
                    let e = (o * len + (reverse ? len - 1 - s : s)) * inner + i
                    let value = v[e]
                    if !exclusive { sum = add(sum, value) }
                    v[e] = sum
                    if exclusive { sum = add(sum, value) }
                }
            }
        }
    }
    if x.isFloat { scan(&x.f, zero: 0, +) } else { scan(&x.i, zero: 0, &+); x.i = x.i.map { wrap($0, x.dtype) } }
    return [x]
}
