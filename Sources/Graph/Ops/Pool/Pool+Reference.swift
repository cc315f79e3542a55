import Foundation

// Reference kernels (Double precision, written for clarity) of the pool family (see Pool.swift).

// MaxPool / AveragePool: x [N, C, D…] → y [N, C, D'…]; MaxPool's Indices index x flat
// (row-major, or column-major over the spatial dims with storage_order=1).
func pool(max isMax: Bool) -> RefKernel {
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

func globalPool(max isMax: Bool) -> RefKernel {
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

func maxPoolGrad(_ ctx: RefContext) throws -> [HostTensor] {
    let dy = try ctx.input(0), x = try ctx.input(1)
    var dx = HostTensor.zeros(x.dtype, x.shape)
    try forEachWindow(ctx, x: x) { out, positions, _ in
        guard var best = positions.first?.flat else { return }
        for p in positions.dropFirst() where x.f[p.flat] > x.f[best] { best = p.flat }
        dx.f[best] += dy.f[out]
    }
    return [dx]
}

func averagePoolGrad(_ ctx: RefContext) throws -> [HostTensor] {
    let dy = try ctx.input(0), x = try ctx.input(1)
    let includePad = ctx.int("count_include_pad") != 0
    var dx = HostTensor.zeros(x.dtype, x.shape)
    try forEachWindow(ctx, x: x) { out, positions, padded in
        let count = Double(includePad ? padded : positions.count)
        guard count > 0 else { return }
        for p in positions { dx.f[p.flat] += dy.f[out] / count }
    }
    return [dx]
}

func globalAveragePoolGrad(_ ctx: RefContext) throws -> [HostTensor] {
    let dy = try ctx.input(0), x = try ctx.input(1)
    let planes = x.shape[0] * x.shape[1], size = x.shape[2...].reduce(1, *)
    var dx = HostTensor.zeros(x.dtype, x.shape)
    for p in 0..<planes { for k in 0..<size { dx.f[p * size + k] = dy.f[p] / Double(size) } }
    return [dx]
}
