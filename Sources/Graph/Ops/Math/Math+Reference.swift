import Foundation

// Reference kernels (Double precision, written for clarity) of the math family (see Math.swift).

/// Applies `ff` to floats and `fi` to integers, element by element.
func unaryAny(_ ff: @escaping @Sendable (Double) -> Double, _ fi: @escaping @Sendable (Int64) -> Int64) -> RefKernel {
    { ctx in
        var x = try ctx.input(0)
        if x.isFloat { x.f = x.f.map(ff) } else { x.i = x.i.map { wrap(fi($0), x.dtype) } }
        return [x]
    }
}

/// Inputs `indices` broadcast together: their tensors, the output shape, and per input the
/// index it reads for every output element.
func broadcastOperands(_ ctx: RefContext, _ indices: [Int]) throws -> ([HostTensor], [Int], [[Int]]) {
    let xs = try indices.map { try ctx.input($0) }
    let shape = broadcastShape(xs.map(\.shape))
    return (xs, shape, xs.map { broadcastIndices(from: $0.shape, to: shape) })
}

/// A comparison: bool output from two inputs of one type (NaN compares false, unequal).
func comparisonReference(_ ff: @escaping @Sendable (Double, Double) -> Bool, _ fi: @escaping @Sendable (Int64, Int64) -> Bool) -> RefKernel {
    { ctx in
        let (xs, shape, idx) = try broadcastOperands(ctx, [0, 1])
        let (a, b) = (xs[0], xs[1])
        let out = (0..<idx[0].count).map { k -> Int64 in
            let r = a.isFloat ? ff(a.f[idx[0][k]], b.f[idx[1][k]]) : fi(a.i[idx[0][k]], b.i[idx[1][k]])
            return r ? 1 : 0
        }
        return [HostTensor(dtype: .bool, shape: shape, i: out)]
    }
}

/// And, Or, Xor on bools.
func logicalReference(_ f: @escaping @Sendable (Bool, Bool) -> Bool) -> RefKernel {
    { ctx in
        let (xs, shape, idx) = try broadcastOperands(ctx, [0, 1])
        return [HostTensor(dtype: .bool, shape: shape, i: (0..<idx[0].count).map { f(xs[0].i[idx[0][$0]] != 0, xs[1].i[idx[1][$0]] != 0) ? 1 : 0 })]
    }
}

let notReference: RefKernel = { ctx in
    var x = try ctx.input(0)
    x.i = x.i.map { $0 != 0 ? 0 : 1 }
    return [x]
}

let whereReference: RefKernel = { ctx in
    let (xs, shape, idx) = try broadcastOperands(ctx, [0, 1, 2])
    let (c, x, y) = (xs[0], xs[1], xs[2])
    if x.isFloat {
        return [HostTensor(dtype: x.dtype, shape: shape, f: (0..<idx[0].count).map { c.i[idx[0][$0]] != 0 ? x.f[idx[1][$0]] : y.f[idx[2][$0]] })]
    }
    return [HostTensor(dtype: x.dtype, shape: shape, i: (0..<idx[0].count).map { c.i[idx[0][$0]] != 0 ? x.i[idx[1][$0]] : y.i[idx[2][$0]] })]
}

/// x^y; an integer base takes the exact integer power (0 for a negative exponent but of ±1,
/// as integer division would give), wrapped to its type.
let powReference: RefKernel = { ctx in
    let (xs, shape, idx) = try broadcastOperands(ctx, [0, 1])
    let (x, y) = (xs[0], xs[1])
    if x.isFloat {
        return [HostTensor(dtype: x.dtype, shape: shape, f: (0..<idx[0].count).map { Foundation.pow(x.f[idx[0][$0]], y.value(idx[1][$0])) })]
    }
    func power(_ b: Int64, _ e: Double) -> Int64 {
        guard e >= 0 else { return b == 1 ? 1 : b == -1 ? (Int64(e) % 2 == 0 ? 1 : -1) : 0 }
        var r: Int64 = 1, base = b, n = Int64(e)
        while n > 0 {
            if n & 1 == 1 { r = r &* base }
            base = base &* base
            n >>= 1
        }
        return r
    }
    return [HostTensor(dtype: x.dtype, shape: shape, i: (0..<idx[0].count).map { wrap(power(x.i[idx[0][$0]], y.value(idx[1][$0])), x.dtype) })]
}

/// Mod: integers by zero give 0 (no trap), floats follow IEEE fmod and, for fmod = 0,
/// numpy.mod's rule (a nonzero remainder of the other sign moves by b; zero takes b's sign).
let modReference: RefKernel = { ctx in
    let (xs, shape, idx) = try broadcastOperands(ctx, [0, 1])
    let (a, b) = (xs[0], xs[1]), truncated = ctx.node.intAttribute("fmod", 0) == 1
    if a.isFloat {
        return [HostTensor(dtype: a.dtype, shape: shape, f: (0..<idx[0].count).map { k in
            let x = a.f[idx[0][k]], y = b.f[idx[1][k]]
            var r = Foundation.fmod(x, y)
            if truncated { return r }
            if r != 0, (r < 0) != (y < 0) { r += y }
            return r == 0 ? (y < 0 ? -0.0 : 0.0) : r
        })]
    }
    return [HostTensor(dtype: a.dtype, shape: shape, i: (0..<idx[0].count).map { k in
        let x = a.i[idx[0][k]], y = b.i[idx[1][k]]
        guard y != 0 else { return 0 }
        if y == -1 { return 0 }  // Int64.min % −1 would overflow
        let r = x % y
        return truncated || r == 0 || (r < 0) == (y < 0) ? r : r + y
    })]
}

let preluReference: RefKernel = { ctx in
    let (xs, shape, idx) = try broadcastOperands(ctx, [0, 1])
    return [HostTensor(dtype: xs[0].dtype, shape: shape, f: (0..<idx[0].count).map { k in
        let v = xs[0].f[idx[0][k]]
        return v < 0 ? xs[1].f[idx[1][k]] * v : v
    })]
}

let geluReference = unaryFloat { x, c in
    if c.string("approximate") == "tanh" { return 0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x))) }
    return 0.5 * x * (1 + erf(x / 2.0.squareRoot()))
}

/// log(1 + eˣ) without overflow for large x.
func softplus(_ x: Double) -> Double { x > 30 ? x : log1p(exp(x)) }

let expReference = unaryFloat { x, _ in exp(x) }
let logReference = unaryFloat { x, _ in log(x) }
let erfReference = unaryFloat { x, _ in erf(x) }
let reciprocalReference = unaryFloat { x, _ in 1 / x }
let floorReference = unaryFloat { x, _ in x.rounded(.down) }
let ceilReference = unaryFloat { x, _ in x.rounded(.up) }
/// Halves to even, as ONNX's Round (and numpy's) does.
let roundReference = unaryFloat { x, _ in x.rounded(.toNearestOrEven) }
let negReference = unaryAny({ -$0 }, { 0 &- $0 })
let absReference = unaryAny({ Swift.abs($0) }, { $0 < 0 ? 0 &- $0 : $0 })
let eluReference = unaryFloat { x, c in x < 0 ? c.float("alpha") * (exp(x) - 1) : x }
let softplusReference = unaryFloat { x, _ in softplus(x) }
let mishReference = unaryFloat { x, _ in x * tanh(softplus(x)) }
let swishReference = unaryFloat { x, c in x / (1 + exp(-c.float("alpha") * x)) }
let seluReference = unaryFloat { x, c in c.float("gamma") * (x <= 0 ? c.float("alpha") * (exp(x) - 1) : x) }
