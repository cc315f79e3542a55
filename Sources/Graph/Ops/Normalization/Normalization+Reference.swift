import Foundation

// Reference kernels (Double precision, written for clarity) of the normalization family (see Normalization.swift).

// BatchNormalization: y = scale·(x − mean)/√(var + ε) + B per channel (axis 1). In training
// mode the batch statistics (population variance) normalise, and the running statistics
// update as running = input·momentum + batch·(1 − momentum).
func batchNorm(_ ctx: RefContext) throws -> [HostTensor] {
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

// Softmax / LogSoftmax along `axis` (opset 13 semantics).
func softmax(log: Bool) -> RefKernel {
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
func lrn(_ ctx: RefContext) throws -> [HostTensor] {
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

/// Channel c's elements of x [N, C, …]: (count, index of element k).
func channelElements(_ shape: [Int]) -> (perChannel: Int, index: (Int, Int) -> Int) {
    let n = shape[0], c = shape[1], inner = shape[2...].reduce(1, *)
    return (n * inner, { ch, k in ((k / inner) * c + ch) * inner + k % inner })
}

func batchNormTraining(_ ctx: RefContext) throws -> [HostTensor] {
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
func batchNormGrad(_ ctx: RefContext) throws -> [HostTensor] {
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

/// Normalises each of `groups` consecutive runs of `size` values of x (mean 0, variance 1 with
/// ε), returning the normalised values and each run's mean and 1/√(var + ε).
func normalizedRuns(_ x: [Double], groups: Int, size: Int, epsilon: Double) -> (y: [Double], mean: [Double], invStd: [Double]) {
    var y = x, means = [Double](repeating: 0, count: groups), inv = means
    for g in 0..<groups {
        let run = x[(g * size)..<((g + 1) * size)]
        let mean = run.reduce(0, +) / Double(size)
        let variance = run.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(size)
        let s = 1 / (variance + epsilon).squareRoot()
        for k in 0..<size { y[g * size + k] = (x[g * size + k] - mean) * s }
        (means[g], inv[g]) = (mean, s)
    }
    return (y, means, inv)
}

let layerNormalizationReference: RefKernel = { ctx in
    let x = try ctx.input(0), scale = try ctx.input(1), bias = ctx.optional(2)
    let axis = ctx.axis(ctx.int("axis"), rank: x.shape.count)
    let size = x.shape[axis...].reduce(1, *), groups = x.shape[..<axis].reduce(1, *)
    var (y, mean, inv) = normalizedRuns(x.f, groups: groups, size: size, epsilon: ctx.float("epsilon"))
    let inner = Array(x.shape[axis...])
    let si = broadcastIndices(from: scale.shape, to: inner), bi = bias.map { broadcastIndices(from: $0.shape, to: inner) }
    for g in 0..<groups {
        for k in 0..<size { y[g * size + k] = y[g * size + k] * scale.f[si[k]] + (bias.map { $0.f[bi![k]] } ?? 0) }
    }
    let statShape = ctx.outputTypes.count > 1 ? ctx.outShape(1) : []
    return [HostTensor(dtype: x.dtype, shape: x.shape, f: y), HostTensor(dtype: .f32, shape: statShape, f: mean),
            HostTensor(dtype: .f32, shape: statShape, f: inv)].prefix(ctx.outputTypes.count).map { $0 }
}

let instanceNormalizationReference: RefKernel = { ctx in
    let x = try ctx.input(0), scale = try ctx.input(1), bias = try ctx.input(2)
    let c = x.shape[1], size = x.shape[2...].reduce(1, *), groups = x.shape[0] * c
    var y = normalizedRuns(x.f, groups: groups, size: size, epsilon: ctx.float("epsilon")).y
    for g in 0..<groups { for k in 0..<size { y[g * size + k] = y[g * size + k] * scale.f[g % c] + bias.f[g % c] } }
    return [HostTensor(dtype: x.dtype, shape: x.shape, f: y)]
}

let groupNormalizationReference: RefKernel = { ctx in
    let x = try ctx.input(0), scale = try ctx.input(1), bias = try ctx.input(2)
    let c = x.shape[1], g = ctx.int("num_groups"), spatial = x.shape[2...].reduce(1, *)
    var y = normalizedRuns(x.f, groups: x.shape[0] * g, size: c / g * spatial, epsilon: ctx.float("epsilon")).y
    for e in 0..<y.count {
        let channel = (e / spatial) % c
        let k = scale.count == c ? channel : channel / (c / g)
        y[e] = y[e] * scale.f[k] + bias.f[k]
    }
    return [HostTensor(dtype: x.dtype, shape: x.shape, f: y)]
}
