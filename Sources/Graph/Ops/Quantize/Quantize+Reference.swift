import Foundation

// Reference kernels of the quantization family (see Quantize.swift). Integer products are
// summed exactly (in Double or Int64); a scale's arithmetic is rounded to the scale's type,
// as ONNX computes it; results round half to even and saturate to the 8-bit type.

/// `v` rounded to the floating-point type `t` (the precision of a quantization's arithmetic).
func rounded(_ v: Double, to t: DType) -> Double {
    switch t {
    case .f32: return Double(Float(v))
    case .f16: return Double(HalfFloat.float(fromBits: HalfFloat.bits(fromFloat: Float(v))))
    case .bf16: return Double(HalfFloat.float(fromBFloat16Bits: HalfFloat.bfloat16Bits(fromFloat: Float(v))))
    default: return v
    }
}

/// `q` rounded half to even, plus the zero point, saturated to `t`'s range (uint8 or int8).
/// NaN quantizes to the lowest value (ONNX leaves it undefined; onnxruntime does so).
func quantized(_ q: Double, zero: Int64, _ t: DType) -> Int64 {
    quantized(q, zero: zero, range: t == .i8 ? -128...127 : 0...255)
}

/// The same with the quantized values' range given.
func quantized(_ q: Double, zero: Int64, range: ClosedRange<Int64>) -> Int64 {
    let lo = Double(range.lowerBound), hi = Double(range.upperBound)
    if q.isNaN { return range.lowerBound }
    return Int64(min(max(q.rounded(.toNearestOrEven) + Double(zero), lo), hi))
}

// kiln.QuantizeDequantize: QuantizeLinear then DequantizeLinear with one per-tensor scale and
// zero point, in float32 as the pair computes it: (saturate(round(x / scale) + zero) − zero) · scale.
let quantizeDequantizeReference: RefKernel = { ctx in
    let x = try ctx.input(0)
    let scale = Double(Float(ctx.float("scale"))), zero = Int64(ctx.int("zero_point"))
    let range = Int64(ctx.int("qmin"))...Int64(max(ctx.int("qmax"), ctx.int("qmin")))
    let y = x.f.map { Double(quantized(rounded($0 / scale, to: .f32), zero: zero, range: range) - zero) * scale }
    return [HostTensor(dtype: x.dtype, shape: x.shape, f: y)]
}

/// For every element of a tensor of `shape`, the index of its scale and zero point (of
/// `parameters`' shape): one for all (per tensor), one per index along `axis` (per axis, 1-D
/// parameters), or one per `blockSize` indices along `axis` (blocked, parameters of x's rank).
func quantizationParameterIndices(shape: [Int], parameters: [Int], axis: Int, blockSize: Int) -> [Int] {
    let count = shape.reduce(1, *)
    if parameters.reduce(1, *) == 1 && blockSize == 0 { return Array(repeating: 0, count: count) }
    let inner = shape[(axis + 1)...].reduce(1, *), size = shape[axis]
    if blockSize == 0 { return (0..<count).map { ($0 / inner) % size } }
    let blocks = parameters[axis]
    return (0..<count).map { k in
        let outer = k / (inner * size), along = (k / inner) % size
        return (outer * blocks + along / blockSize) * inner + k % inner
    }
}

/// The zero points of an optional input (0 where absent), as many as `count` (one broadcast).
private func zeroPoints(_ t: HostTensor?, count: Int) -> [Int64] {
    guard let t else { return Array(repeating: 0, count: count) }
    return t.i.count == 1 ? Array(repeating: t.i[0], count: count) : t.i
}

/// An optional input's values (integers as Double), `count` of them (one broadcast).
private func perIndex(_ t: HostTensor, count: Int) -> [Double] {
    let v = t.isFloat ? t.f : t.i.map(Double.init)
    return v.count == 1 ? Array(repeating: v[0], count: count) : v
}

let quantizeLinearReference: RefKernel = { ctx in
    let x = try ctx.input(0), s = try ctx.input(1), z = ctx.optional(2)
    let t = ctx.outType()
    let axis = x.shape.isEmpty ? 0 : ctx.axis(ctx.int("axis"), rank: x.shape.count)
    let index = quantizationParameterIndices(shape: x.shape, parameters: s.shape, axis: axis, blockSize: ctx.int("block_size"))
    // The division's precision: the `precision` attribute's type, else the scale's.
    let precision = ctx.int("precision") != 0 ? DType(onnxCode: Int32(clamping: ctx.int("precision"))) ?? s.dtype : s.dtype
    let zeros = zeroPoints(z, count: s.count)
    let y = (0..<x.count).map { k -> Int64 in
        let p = index[k]
        return quantized(rounded(x.f[k] / s.f[p], to: precision), zero: zeros[p], t)
    }
    return [HostTensor(dtype: t, shape: x.shape, i: y)]
}

let dequantizeLinearReference: RefKernel = { ctx in
    let x = try ctx.input(0), s = try ctx.input(1), z = ctx.optional(2)
    let axis = x.shape.isEmpty ? 0 : ctx.axis(ctx.int("axis"), rank: x.shape.count)
    let index = quantizationParameterIndices(shape: x.shape, parameters: s.shape, axis: axis, blockSize: ctx.int("block_size"))
    let zeros = zeroPoints(z, count: s.count)
    // The product is exact in Double; rounding to the output type is the one rounding.
    let y = (0..<x.count).map { k in Double(x.i[k] - zeros[index[k]]) * s.f[index[k]] }
    return [HostTensor(dtype: ctx.outType(), shape: x.shape, f: y)]
}

// Every step in float32, as the operator's definition writes it.
let dynamicQuantizeLinearReference: RefKernel = { ctx in
    let x = try ctx.input(0)
    let values = x.f.map { Float($0) }
    var lo: Float = 0, hi: Float = 0
    for v in values where !v.isNaN { lo = min(lo, v); hi = max(hi, v) }
    let scale = (hi - lo) / 255
    var zero: Int64 = 0
    var y = [Int64](repeating: 0, count: values.count)
    // An all-zero x has scale 0: every value (all zero) quantizes to 0 with zero point 0.
    if scale > 0 {
        zero = quantized(Double((0 - lo / scale)), zero: 0, .u8)
        for k in values.indices { y[k] = quantized(Double(values[k] / scale), zero: zero, .u8) }
    }
    return [HostTensor(dtype: .u8, shape: x.shape, i: y), HostTensor(dtype: .f32, shape: [], f: [Double(scale)]),
            HostTensor(dtype: .u8, shape: [], i: [zero])]
}

/// The rows and columns of a matmul operand as a matrix (a vector A is one row, a vector B one column).
private func matrixShape(_ t: HostTensor, isA: Bool) -> (rows: Int, columns: Int) {
    let s = t.shape
    if s.count == 1 { return isA ? (1, s[0]) : (s[0], 1) }
    return (s[s.count - 2], s[s.count - 1])
}

/// (A − a_zero_point)·(B − b_zero_point) summed exactly, zero points per tensor, per row of A
/// or per column of B; the result in the output's shape.
private func integerProduct(_ ctx: RefContext, a: HostTensor, aZero: HostTensor?, b: HostTensor, bZero: HostTensor?) throws -> HostTensor {
    let (m, k) = matrixShape(a, isA: true), (_, n) = matrixShape(b, isA: false)
    let za = zeroPoints(aZero, count: m), zb = zeroPoints(bZero, count: n)
    var a2 = HostTensor(dtype: .i64, shape: a.shape.count == 1 ? [1, k] : a.shape, i: a.i)
    for p in a2.i.indices { a2.i[p] -= za[(p / k) % m] }
    var b2 = HostTensor(dtype: .i64, shape: b.shape.count == 1 ? [k, 1] : b.shape, i: b.i)
    for p in b2.i.indices { b2.i[p] -= zb[p % n] }
    return try runPart(ctx, "MatMul", [a2, b2]).reshaped(ctx.outShape())
}

let matMulIntegerReference: RefKernel = { ctx in
    var y = try integerProduct(ctx, a: try ctx.input(0), aZero: ctx.optional(2), b: try ctx.input(1), bZero: ctx.optional(3))
    y.dtype = .i32
    return [y]
}

let qLinearMatMulReference: RefKernel = { ctx in
    let a = try ctx.input(0), b = try ctx.input(3)
    let c = try integerProduct(ctx, a: a, aZero: ctx.optional(2), b: b, bZero: ctx.optional(5))
    let (m, _) = matrixShape(a, isA: true), (_, n) = matrixShape(b, isA: false)
    let sa = try ctx.input(1), sb = try ctx.input(4), sy = try ctx.input(6)
    let precision = sa.dtype
    let scaleA = perIndex(sa, count: m), scaleB = perIndex(sb, count: n), scaleY = sy.f[0]
    let zero = try ctx.input(7).i[0], t = ctx.outType()
    let y = c.i.indices.map { p -> Int64 in
        let multiplier = rounded(rounded(scaleA[(p / n) % m] * scaleB[p % n], to: precision) / scaleY, to: precision)
        return quantized(Double(c.i[p]) * multiplier, zero: zero, t)
    }
    return [HostTensor(dtype: t, shape: c.shape, i: y)]
}

/// Conv(x − x_zero_point, w − w_zero_point) + bias summed exactly (w's zero point per tensor or
/// per output channel), in Double.
private func integerConvolution(_ ctx: RefContext, x: HostTensor, xZero: HostTensor?, w: HostTensor, wZero: HostTensor?,
                                bias: HostTensor?) throws -> HostTensor {
    let m = w.shape[0], perChannel = w.count / max(m, 1)
    let zx = zeroPoints(xZero, count: 1)[0], zw = zeroPoints(wZero, count: m)
    let x2 = HostTensor(dtype: .f64, shape: x.shape, f: x.i.map { Double($0 - zx) })
    let w2 = HostTensor(dtype: .f64, shape: w.shape, f: w.i.indices.map { Double(w.i[$0] - zw[$0 / perChannel]) })
    let b2 = bias.map { HostTensor(dtype: .f64, shape: $0.shape, f: $0.i.map(Double.init)) }
    var attributes = ctx.node.attributes
    attributes["group"] = .int(max(ctx.int("group"), 1))
    return try runPart(ctx, "Conv", [x2, w2, b2], attributes: attributes)
}

let convIntegerReference: RefKernel = { ctx in
    let y = try integerConvolution(ctx, x: try ctx.input(0), xZero: ctx.optional(2), w: try ctx.input(1), wZero: ctx.optional(3), bias: nil)
    return [HostTensor(dtype: .i32, shape: y.shape, i: y.f.map { Int64($0) })]
}

let qLinearConvReference: RefKernel = { ctx in
    let w = try ctx.input(3)
    let acc = try integerConvolution(ctx, x: try ctx.input(0), xZero: ctx.optional(2), w: w, wZero: ctx.optional(5), bias: ctx.optional(8))
    let sx = try ctx.input(1), sw = try ctx.input(4), sy = try ctx.input(6)
    let m = w.shape[0], plane = acc.count / max(acc.shape[0] * m, 1)
    let precision = sx.dtype
    let scaleW = perIndex(sw, count: m)
    let multipliers = scaleW.map { rounded(rounded(sx.f[0] * $0, to: precision) / sy.f[0], to: precision) }
    let zero = try ctx.input(7).i[0], t = ctx.outType()
    let y = acc.f.indices.map { p in quantized(acc.f[p] * multipliers[(p / plane) % m], zero: zero, t) }
    return [HostTensor(dtype: t, shape: acc.shape, i: y)]
}
