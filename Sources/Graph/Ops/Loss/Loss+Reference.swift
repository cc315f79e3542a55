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

    init(_ ctx: RefContext, first: Int, labelsAt: Int? = nil) throws {
        z = try ctx.input(first)
        let y = try ctx.input(labelsAt ?? first + 1), wt = try ctx.input(first + 2)
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

/// log(prior_j) = log(n_j / Σ n).
func logPrior(_ counts: [Int]) -> [Double] {
    let total = Double(counts.reduce(0, +))
    return counts.map { log(Double($0) / total) }
}

/// The rows a loss applies softmax cross-entropy to, and d(row_ij)/d(z_ij) per class j.
/// CE and Focal: the logits; LDAM: s·(z − Δ_y·e_y); logit-adjusted: z + τ·log π;
/// VS: Δ_j·z_j + τ·log π_j with Δ_j = (n_j / n_max)^γ.
func lossRows(_ ctx: RefContext, _ l: LossInputs) -> (rows: [Double], factor: [Double]) {
    let op = ctx.node.op.hasSuffix("Grad") ? String(ctx.node.op.dropLast(4)) : ctx.node.op
    let counts = ctx.ints("class_counts") ?? []
    var rows = l.z.f
    switch op {
    case "LDAMLoss":
        let s = ctx.float("scale")
        let delta = ldamMargins(counts: counts, maxM: ctx.float("max_m"))
        for i in 0..<l.n { rows[i * l.c + l.labels[i]] -= delta[l.labels[i]] }
        return (rows.map { $0 * s }, [Double](repeating: s, count: l.c))
    case "LogitAdjustedLoss":
        let shift = logPrior(counts).map { ctx.float("tau") * $0 }
        for k in rows.indices { rows[k] += shift[k % l.c] }
        return (rows, [Double](repeating: 1, count: l.c))
    case "VSLoss":
        let top = Double(counts.max() ?? 1)
        let delta = counts.map { pow(Double($0) / top, ctx.float("gamma")) }
        let shift = logPrior(counts).map { ctx.float("tau") * $0 }
        for k in rows.indices { rows[k] = delta[k % l.c] * rows[k] + shift[k % l.c] }
        return (rows, delta)
    default:
        return (rows, [Double](repeating: 1, count: l.c))
    }
}

/// Row i's target distribution: one-hot on the label, smoothed by ε: (1 − ε)·e_y + ε/C.
func lossTarget(_ ctx: RefContext, _ l: LossInputs, _ i: Int) -> [Double] {
    let eps = ctx.float("label_smoothing")
    return (0..<l.c).map { (j: Int) -> Double in (j == l.labels[i] ? 1 - eps : 0) + eps / Double(l.c) }
}

// Weighted-mean cross-entropy (CE, LDAM, logit-adjusted, VS): Σ w_y ℓ / Σ w_y with
// ℓ_i = −Σ_j t_ij log p_ij. Focal follows the reference implementation: c_i = w_y ℓ_i,
// loss = mean((1 − e^(−c_i))^γ c_i). With mixing inputs (second labels y', λ):
// λ·loss(y) + (1 − λ)·loss(y'), and its gradient the same combination.
func loss(_ ctx: RefContext) throws -> [HostTensor] {
    let (first, second, lambda) = try mixedInputs(ctx, first: 0)
    var value = lossValue(ctx, first)
    if let second { value = lambda * value + (1 - lambda) * lossValue(ctx, second) }
    return [HostTensor(dtype: first.z.dtype, shape: [], f: [value])]
}

func lossGrad(_ ctx: RefContext) throws -> [HostTensor] {
    let dloss = try ctx.input(0).f[0]
    let (first, second, lambda) = try mixedInputs(ctx, first: 1)
    var dz = lossGradient(ctx, first, dloss)
    if let second {
        let other = lossGradient(ctx, second, dloss)
        dz.f = zip(dz.f, other.f).map { lambda * $0 + (1 - lambda) * $1 }
    }
    return [dz]
}

/// The loss inputs with the labels, and with the second labels when the node mixes (and λ).
func mixedInputs(_ ctx: RefContext, first: Int) throws -> (LossInputs, LossInputs?, Double) {
    let a = try LossInputs(ctx, first: first)
    guard ctx.node.inputs.count > first + 3 else { return (a, nil, 1) }
    let b = try LossInputs(ctx, first: first, labelsAt: first + 3)
    return (a, b, try ctx.input(first + 4).f[0])
}

func lossValue(_ ctx: RefContext, _ l: LossInputs) -> Double {
    let (rows, _) = lossRows(ctx, l)
    var ce: [Double] = []
    for i in 0..<l.n {
        let p = l.softmax(rows, i), t = lossTarget(ctx, l, i)
        ce.append(-(0..<l.c).map { t[$0] == 0 ? 0 : t[$0] * log(p[$0]) }.reduce(0, +))
    }
    if ctx.node.op.hasPrefix("FocalLoss") {
        let gamma = ctx.float("gamma")
        return (0..<l.n).map { i -> Double in
            let ci = l.w[l.labels[i]] * ce[i]
            return pow(max(0, 1 - exp(-ci)), gamma) * ci
        }.reduce(0, +) / Double(l.n)
    }
    let total = l.labels.map { l.w[$0] }.reduce(0, +)
    return (0..<l.n).map { l.w[l.labels[$0]] * ce[$0] }.reduce(0, +) / total
}

func lossGradient(_ ctx: RefContext, _ l: LossInputs, _ dloss: Double) -> HostTensor {
    let (rows, rowFactor) = lossRows(ctx, l)
    var dz = HostTensor.zeros(l.z.dtype, l.z.shape)
    let total = l.labels.map { l.w[$0] }.reduce(0, +)
    let gamma = ctx.float("gamma")
    for i in 0..<l.n {
        let p = l.softmax(rows, i), t = lossTarget(ctx, l, i)
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
            dz.f[i * l.c + j] = dloss * factor * rowFactor[j] * (p[j] - t[j])
        }
    }
    return dz
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
