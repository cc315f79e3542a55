// Schemas (arity, attributes, type and shape rules) of the quantization family (see Quantize.swift).

/// The 8-bit integer types Kiln quantizes to and from.
let quantizedTypes: Set<DType> = [.u8, .i8]

/// Checks that a scale (input `scale`) and its zero point (input `zero`, optional) of a
/// QuantizeLinear or DequantizeLinear on `x` describe one of ONNX's granularities: per tensor
/// (one element), per axis (1-D, x's size along `axis`) or blocked (x's rank, `block_size`
/// elements along `axis` sharing a scale).
private func checkQuantizationParameters(_ ctx: InferenceContext, x: TensorType, scale si: Int, zero zi: Int) throws {
    let s = try ctx.input(si)
    try ctx.requireFloat(s, "the scale")
    // Per tensor, a [1] scale with a [] zero point (or the reverse) is one value each:
    // onnxruntime's quantizer writes such pairs for biases, and onnxruntime runs them.
    if let z = ctx.optionalInput(zi), z.shape != s.shape, !(z.shape.elementCount == Dim(1) && s.shape.elementCount == Dim(1)) {
        throw ctx.error("the zero point's shape \(z.shape.text) differs from the scale's \(s.shape.text)")
    }
    let blockSize = ctx.int("block_size")
    guard blockSize >= 0 else { throw ctx.error("block_size must be ≥ 0, got \(blockSize)") }
    if s.shape.elementCount == Dim(1) && blockSize == 0 { return }
    let axis = try ctx.axis(ctx.int("axis"), rank: x.rank)
    if blockSize == 0 {
        guard s.rank == 1, s.shape[0] == x.shape[axis] else {
            throw ctx.error("a per-axis scale must be 1-D of x's size along axis \(axis) (\(x.shape[axis])), got \(s.shape.text)")
        }
        return
    }
    guard s.rank == x.rank else { throw ctx.error("a blocked scale must have x's rank \(x.rank), got \(s.shape.text)") }
    for d in 0..<x.rank {
        guard let size = x.shape[d].value, let ss = s.shape[d].value else { throw ctx.error("blocked quantization needs static shapes") }
        let want = d == axis ? (size + blockSize - 1) / blockSize : size
        guard ss == want else {
            throw ctx.error("a blocked scale along axis \(axis) with block_size \(blockSize) must be [\(x.shape.enumerated().map { $0.offset == axis ? "\(want)" : "\($0.element)" }.joined(separator: ", "))], got \(s.shape.text)")
        }
    }
}

/// The 8-bit type an output takes: its zero point's (input `zero`) when given, else the
/// `output_dtype` attribute's, else uint8.
private func quantizedOutputType(_ ctx: InferenceContext, zero zi: Int) throws -> DType {
    let code = ctx.int("output_dtype")
    var t = DType.u8
    if code != 0 {
        guard let d = DType(onnxCode: Int32(clamping: code)), quantizedTypes.contains(d) else {
            throw ctx.error("quantizing to \(DType.onnxName(Int32(clamping: code))) is not supported (Kiln quantizes to uint8 and int8)")
        }
        t = d
    }
    if let z = ctx.optionalInput(zi) {
        guard quantizedTypes.contains(z.dtype) else {
            throw ctx.error("quantizing to \(z.dtype) is not supported (Kiln quantizes to uint8 and int8)")
        }
        if code != 0 && z.dtype != t { throw ctx.error("output_dtype \(t) differs from the zero point's type \(z.dtype)") }
        t = z.dtype
    }
    return t
}

// QuantizeLinear-10…25: y = saturate(round(x / y_scale) + y_zero_point), rounding half to even.
let quantizeLinearSchema = OpSchema("QuantizeLinear", inputs: 2...3,
                                    attributes: [.int("axis", 1), .int("block_size", 0), .int("output_dtype", 0), .int("saturate", 1),
                                                 .int("precision", 0)]) { ctx in
    let x = try ctx.input(0)
    try ctx.requireFloat(x, "x")
    try checkQuantizationParameters(ctx, x: x, scale: 1, zero: 2)
    ctx.setOutput(0, TensorType(try quantizedOutputType(ctx, zero: 2), x.shape))
}

// DequantizeLinear-10…25: y = (x − x_zero_point) · x_scale, of the scale's type (or output_dtype).
let dequantizeLinearSchema = OpSchema("DequantizeLinear", inputs: 2...3,
                                      attributes: [.int("axis", 1), .int("block_size", 0), .int("output_dtype", 0)]) { ctx in
    let x = try ctx.input(0)
    guard quantizedTypes.contains(x.dtype) || x.dtype == .i32 else {
        throw ctx.error("dequantizing \(x.dtype) is not supported (Kiln dequantizes uint8, int8 and int32)")
    }
    if let z = ctx.optionalInput(2), z.dtype != x.dtype { throw ctx.error("the zero point's type \(z.dtype) differs from x's \(x.dtype)") }
    try checkQuantizationParameters(ctx, x: x, scale: 1, zero: 2)
    var t = try ctx.input(1).dtype
    let code = ctx.int("output_dtype")
    if code != 0 {
        guard let d = DType(onnxCode: Int32(clamping: code)), d.isFloatingPoint else {
            throw ctx.error("output_dtype must be a floating-point type, got \(DType.onnxName(Int32(clamping: code)))")
        }
        t = d
    }
    ctx.setOutput(0, TensorType(t, x.shape))
}

// DynamicQuantizeLinear-11: x (f32) → y (uint8), y_scale and y_zero_point (scalars) from x's range and 0.
let dynamicQuantizeLinearSchema = OpSchema("DynamicQuantizeLinear", inputs: 1...1, outputs: 3...3) { ctx in
    let x = try ctx.input(0)
    guard x.dtype == .f32 else { throw ctx.error("x must be float32, got \(x.dtype)") }
    ctx.setOutput(0, TensorType(.u8, x.shape))
    ctx.setOutput(1, TensorType(.f32, []))
    ctx.setOutput(2, TensorType(.u8, []))
}

/// Checks that input `i` is an 8-bit integer tensor.
private func requireQuantized(_ ctx: InferenceContext, _ i: Int, _ what: String) throws -> TensorType {
    let t = try ctx.input(i)
    guard quantizedTypes.contains(t.dtype) else { throw ctx.error("\(what) must be uint8 or int8, got \(t.dtype)") }
    return t
}

/// Checks an optional zero point (input `i`) of `value`'s type whose element count is 1 or one of `sizes`.
private func checkZeroPoint(_ ctx: InferenceContext, _ i: Int, of value: TensorType, _ what: String, sizes: [Dim] = []) throws {
    guard let z = ctx.optionalInput(i) else { return }
    guard z.dtype == value.dtype else { throw ctx.error("\(what)'s type \(z.dtype) differs from its tensor's \(value.dtype)") }
    guard z.shape.elementCount == Dim(1) || (z.rank == 1 && sizes.contains(z.shape[0])) else {
        throw ctx.error("\(what) must be a scalar\(sizes.isEmpty ? "" : " or 1-D of \(sizes.map(\.description).joined(separator: " or ")) elements"), got \(z.shape.text)")
    }
}

/// Checks a scale (input `i`): floating point, one element or 1-D of one of `sizes`.
private func checkScale(_ ctx: InferenceContext, _ i: Int, _ what: String, sizes: [Dim] = []) throws {
    let s = try ctx.input(i)
    try ctx.requireFloat(s, what)
    guard s.shape.elementCount == Dim(1) || (s.rank == 1 && sizes.contains(s.shape[0])) else {
        throw ctx.error("\(what) must be a scalar\(sizes.isEmpty ? "" : " or 1-D of \(sizes.map(\.description).joined(separator: " or ")) elements"), got \(s.shape.text)")
    }
}

/// The rows of a matrix operand (second to last dimension; 1 for a vector).
private func rows(_ t: TensorType) -> Dim { t.rank >= 2 ? t.shape[t.rank - 2] : Dim(1) }
/// The columns of a matrix operand (last dimension).
private func columns(_ t: TensorType) -> Dim { t.shape[t.rank - 1] }

// MatMulInteger-10: (A − a_zero_point)·(B − b_zero_point) in int32; A's zero point per tensor
// or per row, B's per tensor or per column.
let matMulIntegerSchema = OpSchema("MatMulInteger", inputs: 2...4) { ctx in
    let a = try requireQuantized(ctx, 0, "A"), b = try requireQuantized(ctx, 1, "B")
    let shape = try matMulShape(ctx, a, b)
    try checkZeroPoint(ctx, 2, of: a, "a_zero_point", sizes: [rows(a)])
    try checkZeroPoint(ctx, 3, of: b, "b_zero_point", sizes: [columns(b)])
    ctx.setOutput(0, TensorType(.i32, shape))
}

// ConvInteger-10: Conv(x − x_zero_point, w − w_zero_point) in int32; w's zero point per tensor
// or per output channel.
let convIntegerSchema = OpSchema("ConvInteger", inputs: 2...4,
                                 attributes: windowAttributes + [.optional("dilations", .ints), .int("group", 1)]) { ctx in
    let x = try requireQuantized(ctx, 0, "x"), w = try requireQuantized(ctx, 1, "w")
    let shape = try convOutputShape(ctx, x: 0, w: 1, integers: true)
    try checkZeroPoint(ctx, 2, of: x, "x_zero_point")
    try checkZeroPoint(ctx, 3, of: w, "w_zero_point", sizes: [w.shape[0]])
    ctx.setOutput(0, TensorType(.i32, shape))
}

// QLinearMatMul-10/21: a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point →
// y = saturate(round((a − a_zp)·(b − b_zp) · a_scale·b_scale / y_scale) + y_zp).
let qLinearMatMulSchema = OpSchema("QLinearMatMul", inputs: 8...8) { ctx in
    let a = try requireQuantized(ctx, 0, "a"), b = try requireQuantized(ctx, 3, "b"), z = try requireQuantized(ctx, 7, "y_zero_point")
    let shape = try matMulShape(ctx, a, b)
    try checkScale(ctx, 1, "a_scale", sizes: [rows(a)])
    try checkZeroPoint(ctx, 2, of: a, "a_zero_point", sizes: [rows(a)])
    try checkScale(ctx, 4, "b_scale", sizes: [columns(b)])
    try checkZeroPoint(ctx, 5, of: b, "b_zero_point", sizes: [columns(b)])
    try checkScale(ctx, 6, "y_scale")
    try checkZeroPoint(ctx, 7, of: z, "y_zero_point")
    ctx.setOutput(0, TensorType(z.dtype, shape))
}

// QLinearConv-10: x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B? →
// y = saturate(round((Conv(x − x_zp, w − w_zp) + B) · x_scale·w_scale / y_scale) + y_zp);
// w's scale and zero point per tensor or per output channel, B int32 [M].
let qLinearConvSchema = OpSchema("QLinearConv", inputs: 8...9,
                                 attributes: windowAttributes + [.optional("dilations", .ints), .int("group", 1)]) { ctx in
    let x = try requireQuantized(ctx, 0, "x"), w = try requireQuantized(ctx, 3, "w"), z = try requireQuantized(ctx, 7, "y_zero_point")
    let shape = try convOutputShape(ctx, x: 0, w: 3, integers: true)
    try checkScale(ctx, 1, "x_scale")
    try checkZeroPoint(ctx, 2, of: x, "x_zero_point")
    try checkScale(ctx, 4, "w_scale", sizes: [w.shape[0]])
    try checkZeroPoint(ctx, 5, of: w, "w_zero_point", sizes: [w.shape[0]])
    try checkScale(ctx, 6, "y_scale")
    try checkZeroPoint(ctx, 7, of: z, "y_zero_point")
    if let bias = ctx.optionalInput(8) {
        guard bias.dtype == .i32, bias.shape == [w.shape[0]] else { throw ctx.error("B must be int32 [\(w.shape[0])], got \(bias)") }
    }
    ctx.setOutput(0, TensorType(z.dtype, shape))
}

// kiln.QuantizeDequantize: a QuantizeLinear → DequantizeLinear pair of one per-tensor scale and
// zero point (fuse-quantization forms it), the quantized values' range [qmin, qmax].
let quantizeDequantizeSchema = OpSchema("QuantizeDequantize", domain: "kiln", inputs: 1...1,
                                        attributes: [.required("scale", .float), .int("zero_point", 0), .int("qmin", 0), .int("qmax", 255)]) { ctx in
    let x = try ctx.input(0)
    try ctx.requireFloat(x, "x")
    let scale = ctx.float("scale")
    guard scale.isFinite, scale > 0 else { throw ctx.error("scale must be positive and finite, got \(scale)") }
    guard ctx.int("qmin") <= ctx.int("zero_point"), ctx.int("zero_point") <= ctx.int("qmax") else {
        throw ctx.error("zero_point \(ctx.int("zero_point")) is outside [qmin, qmax] = [\(ctx.int("qmin")), \(ctx.int("qmax"))]")
    }
    ctx.setOutput(0, x)
}
