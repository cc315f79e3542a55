import Foundation

// Reference kernels for elementwise ops. Floats compute in Double, integers in Int64.

/// The reference kernel applying `f` to every element of a floating-point input.
func unaryFloat(_ f: @escaping @Sendable (Double, RefContext) -> Double) -> RefKernel {
    { ctx in
        var x = try ctx.input(0)
        guard x.isFloat else { throw ctx.fail("expects a floating-point input") }
        for k in 0..<x.f.count { x.f[k] = f(x.f[k], ctx) }
        return [x]
    }
}

private func binary(_ ff: @escaping @Sendable (Double, Double) -> Double, _ fi: @escaping @Sendable (Int64, Int64) -> Int64) -> RefKernel {
    { ctx in
        let a = try ctx.input(0), b = try ctx.input(1)
        let shape = broadcastShape([a.shape, b.shape])
        let ia = broadcastIndices(from: a.shape, to: shape), ib = broadcastIndices(from: b.shape, to: shape)
        if a.isFloat {
            return [HostTensor(dtype: a.dtype, shape: shape, f: (0..<ia.count).map { ff(a.f[ia[$0]], b.f[ib[$0]]) })]
        }
        return [HostTensor(dtype: a.dtype, shape: shape, i: (0..<ia.count).map { fi(a.i[ia[$0]], b.i[ib[$0]]) })]
    }
}

/// Max and Min over broadcasting inputs; NaN propagates (as numpy's maximum does).
private func extremum(max isMax: Bool) -> RefKernel {
    { ctx in
        let xs = try (0..<ctx.inputs.count).map { try ctx.input($0) }
        let shape = broadcastShape(xs.map(\.shape))
        var out = HostTensor.zeros(xs[0].dtype, shape)
        for (n, x) in xs.enumerated() {
            let idx = broadcastIndices(from: x.shape, to: shape)
            if x.isFloat {
                for k in 0..<idx.count {
                    let a = out.f[k], b = x.f[idx[k]]
                    out.f[k] = n == 0 || b.isNaN ? b : a.isNaN ? a : isMax ? Swift.max(a, b) : Swift.min(a, b)
                }
            } else {
                for k in 0..<idx.count { out.i[k] = n == 0 ? x.i[idx[k]] : isMax ? Swift.max(out.i[k], x.i[idx[k]]) : Swift.min(out.i[k], x.i[idx[k]]) }
            }
        }
        return [out]
    }
}

/// Integer results wrap to the element type, as numpy's fixed-width arithmetic does.
func wrap(_ v: Int64, _ t: DType) -> Int64 {
    switch t {
    case .i8: return Int64(Int8(truncatingIfNeeded: v))
    case .u8: return Int64(UInt8(truncatingIfNeeded: v))
    case .i32: return Int64(Int32(truncatingIfNeeded: v))
    default: return v
    }
}

let elementwiseKernels: [String: RefKernel] = [
    "Relu": { ctx in
        var x = try ctx.input(0)
        if x.isFloat { x.f = x.f.map { max($0, 0) } } else { x.i = x.i.map { max($0, 0) } }
        return [x]
    },
    "LeakyRelu": unaryFloat { x, c in x >= 0 ? x : c.float("alpha") * x },
    "Sigmoid": unaryFloat { x, _ in 1 / (1 + exp(-x)) },
    "Tanh": unaryFloat { x, _ in tanh(x) },
    "HardSigmoid": unaryFloat { x, c in x.isNaN ? x : max(0, min(1, c.float("alpha") * x + c.float("beta"))) },
    "HardSwish": unaryFloat { x, _ in x * max(0, min(1, x / 6 + 0.5)) },
    "Add": binary(+, { $0 &+ $1 }),
    "Sub": binary(-, { $0 &- $1 }),
    "Mul": binary(*, { $0 &* $1 }),
    "Div": binary(/, { b, d in d == 0 ? 0 : b / d }),
    "Max": extremum(max: true),
    "Min": extremum(max: false),
    "Sum": { ctx in
        let xs = try (0..<ctx.inputs.count).map { try ctx.input($0) }
        let shape = broadcastShape(xs.map(\.shape))
        var out = HostTensor.zeros(xs[0].dtype, shape)
        for x in xs {
            let idx = broadcastIndices(from: x.shape, to: shape)
            if x.isFloat { for k in 0..<idx.count { out.f[k] += x.f[idx[k]] } }
            else { for k in 0..<idx.count { out.i[k] = out.i[k] &+ x.i[idx[k]] } }
        }
        return [out]
    },
    "Clip": { ctx in
        var x = try ctx.input(0)
        let lo = ctx.optional(1), hi = ctx.optional(2)
        if x.isFloat {
            // Without a bound, ONNX clamps to the type's lowest / largest finite value.
            let largest = x.dtype == .f64 ? Double.greatestFiniteMagnitude : x.dtype == .f16 ? 65504 : Double(Float.greatestFiniteMagnitude)
            let l = lo?.f.first ?? -largest, h = hi?.f.first ?? largest
            x.f = x.f.map { $0.isNaN ? $0 : min(max($0, l), h) }
        } else {
            let l = lo?.i.first ?? .min, h = hi?.i.first ?? .max
            x.i = x.i.map { min(max($0, l), h) }
        }
        return [x]
    },
    "Identity": { ctx in [try ctx.input(0)] },
    // Dropout: identity with an all-true mask at inference; in training mode a seeded mask
    // keeps each element with probability 1 − ratio and scales kept ones by 1/(1 − ratio).
    "Dropout": { ctx in
        var x = try ctx.input(0)
        let ratio = ctx.optional(1)?.f.first ?? 0.5
        let training = (ctx.optional(2)?.i.first ?? 0) != 0
        var mask = HostTensor(dtype: .bool, shape: x.shape, i: Array(repeating: 1, count: x.count))
        if training && ratio > 0 {
            var rng = KilnRandom(seed: UInt64(bitPattern: Int64(ctx.int("seed"))))
            let scale = ratio < 1 ? 1 / (1 - ratio) : 0
            for k in 0..<x.count {
                let keep = rng.unit() >= ratio
                mask.i[k] = keep ? 1 : 0
                x.f[k] = keep ? x.f[k] * scale : 0
            }
        }
        return [x, mask]
    },
    "Cast": { ctx in
        let x = try ctx.input(0)
        let to = ctx.outType()
        if to.isFloatingPoint {
            return [HostTensor(dtype: to, shape: x.shape, f: x.isFloat ? x.f : x.i.map(Double.init))]
        }
        if to == .bool {
            return [HostTensor(dtype: to, shape: x.shape, i: x.isFloat ? x.f.map { $0 != 0 ? 1 : 0 } : x.i.map { $0 != 0 ? 1 : 0 })]
        }
        let ints = x.isFloat ? x.f.map(TensorData.clampedInt64) : x.i
        return [HostTensor(dtype: to, shape: x.shape, i: ints.map { wrap($0, to) })]
    },
]
