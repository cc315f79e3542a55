// Schemas (arity, attributes, type and shape rules) of the indexing family (see Index.swift).

/// The static length of the last axis of indices (input `i`): how many leading axes of the
/// data each index row addresses.
private func indexDepth(_ ctx: InferenceContext, _ i: Int, dataRank r: Int, batchDims b: Int) throws -> Int {
    let idx = try ctx.input(i)
    guard idx.dtype == .i64 else { throw ctx.error("indices must be int64, got \(idx.dtype)") }
    guard idx.rank >= 1, let k = idx.shape[idx.rank - 1].value else { throw ctx.error("indices must have a static last axis, got \(idx.shape.text)") }
    guard k >= 1, k <= r - b else { throw ctx.error("indices' last axis \(k) must be between 1 and the data's rank \(r) − batch_dims \(b)") }
    return k
}

// GatherND-13: out = indices.shape[:-1] + data.shape[batch_dims + k:], where k is indices'
// last axis; the first batch_dims axes of data and indices are shared.
let gatherNDSchema = OpSchema("GatherND", inputs: 2...2, attributes: [.int("batch_dims", 0)]) { ctx in
    let x = try ctx.input(0), idx = try ctx.input(1)
    let b = ctx.int("batch_dims")
    guard b >= 0, b < min(x.rank, idx.rank) else { throw ctx.error("batch_dims \(b) must be below both inputs' ranks") }
    let k = try indexDepth(ctx, 1, dataRank: x.rank, batchDims: b)
    guard Array(x.shape[..<b]) == Array(idx.shape[..<b]) else {
        throw ctx.error("the first \(b) axes of data \(x.shape.text) and indices \(idx.shape.text) must be equal")
    }
    ctx.setOutput(0, TensorType(x.dtype, Array(idx.shape.dropLast()) + Array(x.shape[(b + k)...])))
}

// ScatterND-18: data with the slices that indices address replaced (or combined, by
// `reduction`) by updates, whose shape is indices.shape[:-1] + data.shape[k:].
let scatterNDSchema = OpSchema("ScatterND", inputs: 3...3, attributes: [.string("reduction", "none")]) { ctx in
    let x = try ctx.input(0), idx = try ctx.input(1), u = try ctx.input(2)
    guard ["none", "add", "mul", "max", "min"].contains(ctx.string("reduction")) else {
        throw ctx.error("reduction must be none, add, mul, max or min, got '\(ctx.string("reduction"))'")
    }
    let k = try indexDepth(ctx, 1, dataRank: x.rank, batchDims: 0)
    try ctx.requireSameType(TensorType(x.dtype, []), TensorType(u.dtype, []), "data and updates")
    let want = Array(idx.shape.dropLast()) + Array(x.shape[k...])
    guard u.shape == want else { throw ctx.error("updates must be \(want.text), got \(u.shape.text)") }
    ctx.setOutput(0, x)
}

// Trilu-14: the upper (upper = 1) or lower triangle of the last two axes, from diagonal k
// (an optional int64 scalar known at compile time); the rest zero.
let triluSchema = OpSchema("Trilu", inputs: 1...2, attributes: [.int("upper", 1)]) { ctx in
    let x = try ctx.input(0)
    guard x.rank >= 2 else { throw ctx.error("input must have rank ≥ 2, got \(x.shape.text)") }
    if ctx.hasInput(1) {
        let k = try ctx.input(1)
        guard k.dtype == .i64, k.shape.elementCount.value == 1 else { throw ctx.error("k must be an int64 scalar, got \(k)") }
        _ = try ctx.constantInts(1, what: "k")
    }
    ctx.setOutput(0, x)
}

// CumSum-14: running sums along `axis` (an int32 or int64 scalar known at compile time),
// `exclusive` leaving out the element itself, `reverse` summing from the end.
let cumSumSchema = OpSchema("CumSum", inputs: 2...2, attributes: [.int("exclusive", 0), .int("reverse", 0)]) { ctx in
    let x = try ctx.input(0), a = try ctx.input(1)
    guard x.dtype != .bool else { throw ctx.error("CumSum is not defined on bool tensors") }
    guard a.dtype == .i64 || a.dtype == .i32, a.shape.elementCount.value == 1 else { throw ctx.error("axis must be an int32 or int64 scalar, got \(a)") }
    guard x.rank >= 1 else { throw ctx.error("input must have rank ≥ 1") }
    _ = try ctx.axis(try ctx.constantInts(1, what: "axis")[0], rank: x.rank)
    ctx.setOutput(0, x)
}
