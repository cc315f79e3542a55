import Foundation

// Reference kernels (double precision) for the training ops of Ops+Train.swift: the cosine
// head, the three losses and their gradients, training-mode BatchNormalization, the backward
// kernels of the forward ops, and SGD. Written for clarity; the finite-difference tests
// check the gradients against these forward kernels.

// MARK: Convolution geometry shared by the backward kernels

/// Calls body(xIndex, wIndex, yIndex) for every multiply-add of Conv(x, w) — the forward
/// kernel's loop nest — so each backward kernel is the same sum read another way.
private func forEachConvProduct(_ ctx: RefContext, x xShape: [Int], w wShape: [Int],
                                _ body: (Int, Int, Int) -> Void) throws {
    let n = xShape[0], c = xShape[1], spatial = Array(xShape[2...])
    let m = wShape[0], cg = wShape[1], kernel = Array(wShape[2...])
    let group = max(ctx.int("group"), 1)
    let g = try windowGeometry(ctx, spatial: spatial, kernel: kernel, ceil: false)
    let outPlane = g.output.reduce(1, *), inPlane = spatial.reduce(1, *), kSize = kernel.reduce(1, *)
    let inStrides = strides(spatial)
    var taps: [[Int]] = []
    forEachIndex(kernel) { taps.append($0) }
    var outCoords: [[Int]] = []
    forEachIndex(g.output) { outCoords.append($0) }
    let mPerGroup = m / group
    for ni in 0..<n {
        for mi in 0..<m {
            let gi = mi / mPerGroup
            for (oi, o) in outCoords.enumerated() {
                let yi = (ni * m + mi) * outPlane + oi
                for (ti, t) in taps.enumerated() {
                    var offset = 0, inside = true
                    for d in 0..<spatial.count {
                        let p = o[d] * g.strides[d] - g.padsBegin[d] + t[d] * g.dilations[d]
                        if p < 0 || p >= spatial[d] { inside = false; break }
                        offset += p * inStrides[d]
                    }
                    guard inside else { continue }
                    for ci in 0..<cg {
                        body((ni * c + gi * cg + ci) * inPlane + offset, (mi * cg + ci) * kSize + ti, yi)
                    }
                }
            }
        }
    }
}

// MARK: BatchNormalization in training mode

/// Channel c's elements of x [N, C, …]: (count, index of element k).
private func channelElements(_ shape: [Int]) -> (perChannel: Int, index: (Int, Int) -> Int) {
    let n = shape[0], c = shape[1], inner = shape[2...].reduce(1, *)
    return (n * inner, { ch, k in ((k / inner) * c + ch) * inner + k % inner })
}

private func batchNormTraining(_ ctx: RefContext) throws -> [HostTensor] {
    let x = try ctx.input(0), scale = try ctx.input(1), bias = try ctx.input(2)
    let runMean = try ctx.input(3), runVar = try ctx.input(4)
    let eps = ctx.float("epsilon"), momentum = ctx.float("momentum")
    let c = x.shape[1]
    let (count, at) = channelElements(x.shape)
    var y = HostTensor.zeros(x.dtype, x.shape)
    var mean = HostTensor.zeros(x.dtype, [c]), invstd = HostTensor.zeros(x.dtype, [c])
    var newMean = HostTensor.zeros(x.dtype, [c]), newVar = HostTensor.zeros(x.dtype, [c])
    for ch in 0..<c {
        let values = (0..<count).map { x.f[at(ch, $0)] }
        let mu = values.reduce(0, +) / Double(count)
        let variance = values.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / Double(count)
        let inv = 1 / sqrt(variance + eps)
        let relu = ctx.string("activation") == "Relu"
        for k in 0..<count {
            let v = (values[k] - mu) * inv * scale.f[ch] + bias.f[ch]
            y.f[at(ch, k)] = relu ? max(v, 0) : v
        }
        mean.f[ch] = mu
        invstd.f[ch] = inv
        newMean.f[ch] = momentum * runMean.f[ch] + (1 - momentum) * mu
        let unbiased = count > 1 ? variance * Double(count) / Double(count - 1) : variance
        newVar.f[ch] = momentum * runVar.f[ch] + (1 - momentum) * unbiased
    }
    return [y, mean, invstd, newMean, newVar]
}

// x̂ = (x − μ)·inv; dB = Σ dy; dscale = Σ dy·x̂; dx = scale·inv/M · (M·dy − dB − x̂·dscale).
private func batchNormGrad(_ ctx: RefContext) throws -> [HostTensor] {
    var dy = try ctx.input(0)
    let x = try ctx.input(1), scale = try ctx.input(2), mean = try ctx.input(3), invstd = try ctx.input(4)
    if let y = ctx.optional(5) { for k in 0..<dy.count where !(y.f[k] > 0) { dy.f[k] = 0 } }
    let c = x.shape[1]
    let (count, at) = channelElements(x.shape)
    var dx = HostTensor.zeros(x.dtype, x.shape), ds = HostTensor.zeros(x.dtype, [c]), db = HostTensor.zeros(x.dtype, [c])
    let m = Double(count)
    for ch in 0..<c {
        let inv = invstd.f[ch]
        var sumDy = 0.0, sumDyXhat = 0.0
        for k in 0..<count {
            let i = at(ch, k)
            sumDy += dy.f[i]
            sumDyXhat += dy.f[i] * (x.f[i] - mean.f[ch]) * inv
        }
        db.f[ch] = sumDy
        ds.f[ch] = sumDyXhat
        for k in 0..<count {
            let i = at(ch, k)
            let xhat = (x.f[i] - mean.f[ch]) * inv
            dx.f[i] = scale.f[ch] * inv / m * (m * dy.f[i] - sumDy - xhat * sumDyXhat)
        }
    }
    return [dx, ds, db]
}

// MARK: Backward kernels of forward ops

private func convGradData(_ ctx: RefContext) throws -> [HostTensor] {
    let dy = try ctx.input(0), w = try ctx.input(1), x = try ctx.input(2)
    var dx = HostTensor.zeros(x.dtype, x.shape)
    try forEachConvProduct(ctx, x: x.shape, w: w.shape) { xi, wi, yi in dx.f[xi] += dy.f[yi] * w.f[wi] }
    return [dx]
}

private func convGradWeight(_ ctx: RefContext) throws -> [HostTensor] {
    let x = try ctx.input(0), dy = try ctx.input(1), w = try ctx.input(2)
    var dw = HostTensor.zeros(w.dtype, w.shape)
    try forEachConvProduct(ctx, x: x.shape, w: w.shape) { xi, wi, yi in dw.f[wi] += dy.f[yi] * x.f[xi] }
    return [dw]
}

private func convGradBias(_ ctx: RefContext) throws -> [HostTensor] {
    let dy = try ctx.input(0)
    let m = dy.shape[1]
    let (count, at) = channelElements(dy.shape)
    var db = HostTensor.zeros(dy.dtype, [m])
    for ch in 0..<m { db.f[ch] = (0..<count).map { dy.f[at(ch, $0)] }.reduce(0, +) }
    return [db]
}

private func maxPoolGrad(_ ctx: RefContext) throws -> [HostTensor] {
    let dy = try ctx.input(0), x = try ctx.input(1)
    var dx = HostTensor.zeros(x.dtype, x.shape)
    try forEachWindow(ctx, x: x) { out, positions, _ in
        guard var best = positions.first?.flat else { return }
        for p in positions.dropFirst() where x.f[p.flat] > x.f[best] { best = p.flat }
        dx.f[best] += dy.f[out]
    }
    return [dx]
}

private func averagePoolGrad(_ ctx: RefContext) throws -> [HostTensor] {
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

private func globalAveragePoolGrad(_ ctx: RefContext) throws -> [HostTensor] {
    let dy = try ctx.input(0), x = try ctx.input(1)
    let planes = x.shape[0] * x.shape[1], size = x.shape[2...].reduce(1, *)
    var dx = HostTensor.zeros(x.dtype, x.shape)
    for p in 0..<planes { for k in 0..<size { dx.f[p * size + k] = dy.f[p] / Double(size) } }
    return [dx]
}

private func reduceToShape(_ ctx: RefContext) throws -> [HostTensor] {
    let dy = try ctx.input(0), like = try ctx.input(1)
    guard broadcastShape([like.shape, dy.shape]) == dy.shape else {
        throw ctx.fail("\(like.shape) does not broadcast to the gradient's \(dy.shape)")
    }
    let map = broadcastIndices(from: like.shape, to: dy.shape)
    var out = HostTensor.zeros(like.dtype, like.shape)
    for (k, i) in map.enumerated() { out.f[i] += dy.f[k] }
    return [out]
}

/// Runs a data-movement kernel on element indices of `x` (as the compiled path does) and
/// returns, per output element, the input index it copies (or a negative fill).
private func indexMap(_ ctx: RefContext, kernel name: String, inputs: [HostTensor?]) throws -> [Int] {
    guard let kernel = referenceKernels[name] else { throw ctx.fail("no \(name) kernel") }
    var ins = inputs
    let x = try ctx.input(1)
    ins[0] = HostTensor(dtype: .f64, shape: x.shape, f: (0..<x.count).map(Double.init))
    var node = ctx.node
    node.domain = ""
    node.op = name
    let out = try kernel(RefContext(node: node, inputs: ins, outputTypes: [TensorType(.f64, ctx.inputs[0]!.shape.map { Dim($0) })]))
    return out[0].f.map { Int($0) }
}

private func sliceGrad(_ ctx: RefContext) throws -> [HostTensor] {
    let dy = try ctx.input(0), x = try ctx.input(1)
    let map = try indexMap(ctx, kernel: "Slice", inputs: [nil] + Array(ctx.inputs[2...]))
    var dx = HostTensor.zeros(x.dtype, x.shape)
    for (k, i) in map.enumerated() { dx.f[i] += dy.f[k] }
    return [dx]
}

private func padGrad(_ ctx: RefContext) throws -> [HostTensor] {
    let dy = try ctx.input(0), x = try ctx.input(1)
    let pads = try ctx.input(2)
    let map = try indexMap(ctx, kernel: "Pad", inputs: [nil, pads, HostTensor(dtype: .f64, shape: [], f: [-1])])
    var dx = HostTensor.zeros(x.dtype, x.shape)
    for (k, i) in map.enumerated() where i >= 0 { dx.f[i] += dy.f[k] }
    return [dx]
}

// MARK: SGD

private func sgd(_ ctx: RefContext) throws -> [HostTensor] {
    let p = try ctx.input(0), g = try ctx.input(1), v = try ctx.input(2), lr = try ctx.input(3).f[0]
    let momentum = ctx.float("momentum"), wd = ctx.float("weight_decay"), nesterov = ctx.int("nesterov") != 0
    var np = p, nv = v
    for k in 0..<p.count {
        let gk = g.f[k] + wd * p.f[k]
        nv.f[k] = momentum * v.f[k] + gk
        np.f[k] = p.f[k] - lr * (nesterov ? gk + momentum * nv.f[k] : nv.f[k])
    }
    return [np, nv]
}

let trainKernels: [String: RefKernel] = [
    "kiln.SoftmaxCrossEntropy": loss,
    "kiln.FocalLoss": loss,
    "kiln.LDAMLoss": loss,
    "kiln.SoftmaxCrossEntropyGrad": lossGrad,
    "kiln.FocalLossGrad": lossGrad,
    "kiln.LDAMLossGrad": lossGrad,
    "kiln.NormedLinear": normedLinear,
    "kiln.NormedLinearGrad": normedLinearGrad,
    "kiln.BatchNormTraining": batchNormTraining,
    "kiln.BatchNormGrad": batchNormGrad,
    "kiln.ConvGradData": convGradData,
    "kiln.ConvGradWeight": convGradWeight,
    "kiln.ConvGradBias": convGradBias,
    "kiln.ReluGrad": { ctx in
        let dy = try ctx.input(0), y = try ctx.input(1)
        var dx = dy
        if let dy2 = ctx.optional(2) {
            guard dy2.shape == dy.shape else { throw ctx.fail("the two gradients differ in shape: \(dy.shape) and \(dy2.shape)") }
            for k in 0..<dx.count { dx.f[k] += dy2.f[k] }
        }
        for k in 0..<dx.count where !(y.f[k] > 0) { dx.f[k] = 0 }
        return [dx]
    },
    "kiln.LeakyReluGrad": { ctx in
        let dy = try ctx.input(0), x = try ctx.input(1), alpha = ctx.float("alpha")
        var dx = dy
        for k in 0..<dx.count where !(x.f[k] > 0) { dx.f[k] *= alpha }
        return [dx]
    },
    "kiln.MaxPoolGrad": maxPoolGrad,
    "kiln.AveragePoolGrad": averagePoolGrad,
    "kiln.GlobalAveragePoolGrad": globalAveragePoolGrad,
    "kiln.ReduceToShape": reduceToShape,
    "kiln.ReshapeLike": { ctx in [try ctx.input(0).reshaped(try ctx.input(1).shape)] },
    "kiln.SliceGrad": sliceGrad,
    "kiln.PadGrad": padGrad,
    "kiln.DropoutGrad": { ctx in
        let dy = try ctx.input(0), mask = try ctx.input(1), ratio = ctx.float("ratio")
        var dx = dy
        for k in 0..<dx.count { dx.f[k] = mask.value(k) != 0 ? dy.f[k] / (1 - ratio) : 0 }
        return [dx]
    },
    "kiln.SGD": sgd,
]
