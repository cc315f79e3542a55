import Foundation

// Reference kernels (Double precision, written for clarity) of the reduce family (see Reduce.swift).

/// ReduceMean and ReduceL2: `finish` turns the sum over the reduced axes (of x, or of x² for
/// L2) into the result.
func reduction(squares: Bool, _ finish: @escaping @Sendable (Double, Double) -> Double) -> RefKernel {
    { ctx in
        let x = try ctx.input(0)
        let r = x.shape.count
        let axes = Set((ctx.ints("axes") ?? Array(0..<r)).map { ctx.axis($0, rank: r) })
        let keptShape = (0..<r).map { axes.contains($0) ? 1 : x.shape[$0] }
        let keptStrides = strides(keptShape)
        var sums = [Double](repeating: 0, count: keptShape.reduce(1, *))
        var k = 0
        forEachIndex(x.shape) { c in
            var o = 0
            for d in 0..<r where !axes.contains(d) { o += c[d] * keptStrides[d] }
            let v = x.value(k)
            sums[o] += squares ? v * v : v
            k += 1
        }
        let n = Double(axes.reduce(1) { $0 * x.shape[$1] })
        return [HostTensor(dtype: x.dtype, shape: ctx.outShape(), f: sums.map { finish($0, n) })]
    }
}

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
