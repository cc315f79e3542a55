import Foundation

// Reference kernels (Double precision, written for clarity) of the loss family (see Loss.swift).

func sgd(_ ctx: RefContext) throws -> [HostTensor] {
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

/// The losses' shared arithmetic on logits z [N, C], labels, class weights.
struct LossInputs {
    let z: HostTensor, labels: [Int], w: [Double]
    let n: Int, c: Int

    init(_ ctx: RefContext, first: Int) throws {
        z = try ctx.input(first)
        let y = try ctx.input(first + 1), wt = try ctx.input(first + 2)
        n = z.shape[0]
        c = z.shape[1]
        labels = y.i.map { Int($0) }
        w = wt.f
        for (k, l) in labels.enumerated() where l < 0 || l >= c {
            throw ctx.fail("label \(l) of sample \(k) is outside 0..<\(c)")
        }
    }

    /// Softmax of row i of `rows` (the logits after any margin and scale).
    func softmax(_ rows: [Double], _ i: Int) -> [Double] {
        let r = rows[(i * c)..<((i + 1) * c)]
        let top = r.max() ?? 0
        let e = r.map { exp($0 - top) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }
}

/// LDAM's margins: Δ_j ∝ n_j^(−1/4), scaled so the largest is `max_m`.
func ldamMargins(counts: [Int], maxM: Double) -> [Double] {
    let raw = counts.map { 1 / sqrt(sqrt(Double($0))) }
    let top = raw.max() ?? 1
    return raw.map { $0 * maxM / top }
}

/// The rows a loss applies softmax cross-entropy to, and the factor d(rows)/d(logits).
func lossRows(_ ctx: RefContext, _ l: LossInputs) -> (rows: [Double], scale: Double) {
    guard ctx.node.op.hasPrefix("LDAM") else { return (l.z.f, 1) }
    let s = ctx.float("scale")
    let delta = ldamMargins(counts: ctx.ints("class_counts") ?? [], maxM: ctx.float("max_m"))
    var rows = l.z.f
    for i in 0..<l.n { rows[i * l.c + l.labels[i]] -= delta[l.labels[i]] }
    return (rows.map { $0 * s }, s)
}

// Weighted-mean cross-entropy (CE and LDAM): Σ w_y ℓ / Σ w_y. Focal follows the reference
// implementation: c_i = w_y ℓ_i, loss = mean((1 − e^(−c_i))^γ c_i).
func loss(_ ctx: RefContext) throws -> [HostTensor] {
    let l = try LossInputs(ctx, first: 0)
    let (rows, _) = lossRows(ctx, l)
    var ce: [Double] = []
    for i in 0..<l.n { ce.append(-log(l.softmax(rows, i)[l.labels[i]])) }
    let value: Double
    if ctx.node.op == "FocalLoss" {
        let gamma = ctx.float("gamma")
        value = (0..<l.n).map { i -> Double in
            let ci = l.w[l.labels[i]] * ce[i]
            return pow(max(0, 1 - exp(-ci)), gamma) * ci
        }.reduce(0, +) / Double(l.n)
    } else {
        let total = l.labels.map { l.w[$0] }.reduce(0, +)
        value = (0..<l.n).map { l.w[l.labels[$0]] * ce[$0] }.reduce(0, +) / total
    }
    return [HostTensor(dtype: l.z.dtype, shape: [], f: [value])]
}

func lossGrad(_ ctx: RefContext) throws -> [HostTensor] {
    let dloss = try ctx.input(0).f[0]
    let l = try LossInputs(ctx, first: 1)
    let (rows, scale) = lossRows(ctx, l)
    var dz = HostTensor.zeros(l.z.dtype, l.z.shape)
    let total = l.labels.map { l.w[$0] }.reduce(0, +)
    let gamma = ctx.float("gamma")
    for i in 0..<l.n {
        let p = l.softmax(rows, i)
        let wy = l.w[l.labels[i]]
        // d(loss)/d(ℓ_i), ℓ_i the unweighted cross-entropy of row i
        let factor: Double
        if ctx.node.op == "FocalLossGrad" {
            let ci = wy * -log(p[l.labels[i]])
            let q = max(0, 1 - exp(-ci))
            let df = (gamma == 0 ? 0 : gamma * pow(q, gamma - 1) * exp(-ci) * ci) + pow(q, gamma)
            factor = df * wy / Double(l.n)
        } else {
            factor = wy / total
        }
        for j in 0..<l.c {
            dz.f[i * l.c + j] = dloss * factor * scale * (p[j] - (j == l.labels[i] ? 1 : 0))
        }
    }
    return [dz]
}

let normEpsilon = 1e-12  // F.normalize's

func normedLinearParts(_ x: HostTensor, _ w: HostTensor) -> (u: [Double], xn: [Double], v: [Double], wn: [Double]) {
    let n = x.shape[0], f = x.shape[1], c = w.shape[1]
    var u = x.f, xn = [Double](repeating: 0, count: n), v = w.f, wn = [Double](repeating: 0, count: c)
    for i in 0..<n {
        xn[i] = max(sqrt((0..<f).map { x.f[i * f + $0] * x.f[i * f + $0] }.reduce(0, +)), normEpsilon)
        for k in 0..<f { u[i * f + k] /= xn[i] }
    }
    for j in 0..<c {
        wn[j] = max(sqrt((0..<f).map { w.f[$0 * c + j] * w.f[$0 * c + j] }.reduce(0, +)), normEpsilon)
        for k in 0..<f { v[k * c + j] /= wn[j] }
    }
    return (u, xn, v, wn)
}

func normedLinear(_ ctx: RefContext) throws -> [HostTensor] {
    let x = try ctx.input(0), w = try ctx.input(1)
    let n = x.shape[0], f = x.shape[1], c = w.shape[1]
    let (u, _, v, _) = normedLinearParts(x, w)
    var z = HostTensor.zeros(x.dtype, [n, c])
    for i in 0..<n { for j in 0..<c { z.f[i * c + j] = (0..<f).map { u[i * f + $0] * v[$0 * c + j] }.reduce(0, +) } }
    return [z]
}

// With u = x/‖x‖: dx = (du − u·(u·du)) / ‖x‖, where du = dz·vᵀ; the same per column of w.
func normedLinearGrad(_ ctx: RefContext) throws -> [HostTensor] {
    let dz = try ctx.input(0), x = try ctx.input(1), w = try ctx.input(2)
    let n = x.shape[0], f = x.shape[1], c = w.shape[1]
    let (u, xn, v, wn) = normedLinearParts(x, w)
    var dx = HostTensor.zeros(x.dtype, x.shape), dw = HostTensor.zeros(w.dtype, w.shape)
    for i in 0..<n {
        let du = (0..<f).map { k in (0..<c).map { dz.f[i * c + $0] * v[k * c + $0] }.reduce(0, +) }
        let dot = (0..<f).map { u[i * f + $0] * du[$0] }.reduce(0, +)
        for k in 0..<f { dx.f[i * f + k] = xn[i] > normEpsilon ? (du[k] - u[i * f + k] * dot) / xn[i] : du[k] / normEpsilon }
    }
    for j in 0..<c {
        let dv = (0..<f).map { k in (0..<n).map { u[$0 * f + k] * dz.f[$0 * c + j] }.reduce(0, +) }
        let dot = (0..<f).map { v[$0 * c + j] * dv[$0] }.reduce(0, +)
        for k in 0..<f { dw.f[k * c + j] = wn[j] > normEpsilon ? (dv[k] - v[k * c + j] * dot) / wn[j] : dv[k] / normEpsilon }
    }
    return [dx, dw]
}
