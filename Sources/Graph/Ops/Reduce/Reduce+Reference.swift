import Foundation

// Reference kernels (Double precision, written for clarity) of the reduce family (see Reduce.swift).

/// Where a reduction over the `axes` attribute (every axis when absent) sends each element of
/// x (row-major): its output element; with the number of output elements and of inputs each
/// one reduces.
func reducedPositions(_ ctx: RefContext, _ x: HostTensor) -> (of: [Int], outputs: Int, perOutput: Int) {
    let r = x.shape.count
    let axes = Set((ctx.ints("axes") ?? Array(0..<r)).map { ctx.axis($0, rank: r) })
    let keptShape = (0..<r).map { axes.contains($0) ? 1 : x.shape[$0] }
    let keptStrides = strides(keptShape)
    var positions: [Int] = []
    positions.reserveCapacity(x.count)
    forEachIndex(x.shape) { c in
        var o = 0
        for d in 0..<r where !axes.contains(d) { o += c[d] * keptStrides[d] }
        positions.append(o)
    }
    return (positions, keptShape.reduce(1, *), axes.reduce(1) { $0 * x.shape[$1] })
}

/// A reduction by `combine` from `initial` over the reduced axes, then `finish(value, count)`;
/// integer inputs give integer results (ReduceSum, ReduceMax, ReduceMin of int tensors).
func fold(initial: Double, _ combine: @escaping @Sendable (Double, Double) -> Double,
          finish: @escaping @Sendable (Double, Double) -> Double = { v, _ in v }) -> RefKernel {
    { ctx in
        let x = try ctx.input(0)
        let (of, outputs, perOutput) = reducedPositions(ctx, x)
        var acc = [Double](repeating: initial, count: outputs)
        for (k, o) in of.enumerated() { acc[o] = combine(acc[o], x.value(k)) }
        let n = Double(perOutput)
        let values = acc.map { finish($0, n) }
        if x.isFloat { return [HostTensor(dtype: x.dtype, shape: ctx.outShape(), f: values)] }
        // An empty bool max is false (from −∞), an empty min true.
        if x.dtype == .bool { return [HostTensor(dtype: .bool, shape: ctx.outShape(), i: values.map { $0 > 0 ? 1 : 0 })] }
        return [HostTensor(dtype: x.dtype, shape: ctx.outShape(), i: values.map { wrap(TensorData.clampedInt64($0), x.dtype) })]
    }
}

/// Max and Min propagate NaN (as numpy's do).
let reduceMaxReference = fold(initial: -.infinity) { a, b in a.isNaN || b.isNaN ? .nan : Swift.max(a, b) }
let reduceMinReference = fold(initial: .infinity) { a, b in a.isNaN || b.isNaN ? .nan : Swift.min(a, b) }

func reduceToShape(_ ctx: RefContext) throws -> [HostTensor] {
    let dy = try ctx.input(0), like = try ctx.input(1)
    guard broadcastShape([like.shape, dy.shape]) == dy.shape else {
        throw ctx.fail("\(like.shape) does not broadcast to the gradient's \(dy.shape)")
    }
    let map = broadcastIndices(from: like.shape, to: dy.shape)
    var out = HostTensor.zeros(like.dtype, like.shape)
    for (k, i) in map.enumerated() { out.f[i] += dy.f[k] }
    return [out]
}

/// log Σ eˣ, shifted by the largest value so that large inputs do not overflow.
let logSumExpReference: RefKernel = { ctx in
    let x = try ctx.input(0)
    let m = try reduceMaxReference(ctx)[0]
    let (of, outputs, _) = reducedPositions(ctx, x)
    var sums = [Double](repeating: 0, count: outputs)
    for (k, o) in of.enumerated() { sums[o] += m.f[o].isFinite ? exp(x.f[k] - m.f[o]) : 0 }
    return [HostTensor(dtype: x.dtype, shape: ctx.outShape(), f: zip(sums, m.f).map { s, mx in mx.isFinite ? mx + log(s) : mx })]
}
