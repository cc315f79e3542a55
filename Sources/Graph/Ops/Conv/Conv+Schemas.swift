// Schemas (arity, attributes, type and shape rules) of the conv family (see Conv.swift).

let windowAttributes: [AttributeSpec] = [
    .string("auto_pad", "NOTSET"), .optional("kernel_shape", .ints), .optional("pads", .ints), .optional("strides", .ints),
]

let convAttributes: [AttributeSpec] = [
    .string("auto_pad", "NOTSET"), .optional("kernel_shape", .ints), .optional("pads", .ints),
    .optional("strides", .ints), .optional("dilations", .ints), .int("group", 1),
]

// Conv-11: X [N, C, D…], W [M, C/group, k…], B [M] → Y [N, M, D'…]
let convSchema = OpSchema("Conv", inputs: 2...3,
                          attributes: windowAttributes + [.optional("dilations", .ints), .int("group", 1)]) { ctx in
    let x = try ctx.input(0)
    let shape = try convOutputShape(ctx, x: 0, w: 1, integers: false)
    try ctx.requireSameType(x, try ctx.input(1), "X and W")
    if let b = ctx.optionalInput(2) {
        try ctx.requireSameType(x, b, "X and B")
        guard b.shape == [shape[1]] else { throw ctx.error("B must be [\(shape[1])], got \(b.shape.text)") }
    }
    ctx.setOutput(0, TensorType(x.dtype, shape))
}

/// The output shape [N, M, D'…] of a convolution of input `x` by weight `w` (input indices)
/// under the node's window attributes and group: Conv's rule, and ConvInteger's and
/// QLinearConv's (`integers`: 8-bit inputs, whose types the caller checks).
func convOutputShape(_ ctx: InferenceContext, x xi: Int, w wi: Int, integers: Bool) throws -> Shape {
    let (x, spatial) = try ctx.spatialInput(xi, integers: integers)
    let w = try ctx.input(wi)
    guard w.rank == x.rank else { throw ctx.error("W has rank \(w.rank), expected \(x.rank) like X \(x.shape.text)") }
    guard let ws = w.shape.staticSizes else { throw ctx.error("W needs a static shape, got \(w.shape.text)") }
    let group = ctx.int("group")
    guard group >= 1, group <= ONNXLimits.maxDimension, !ws[1].multipliedReportingOverflow(by: group).overflow else {
        throw ctx.error("group must be from 1 to \(ONNXLimits.maxDimension) with W's channels × group in range, got \(group)")
    }
    if let c = x.shape[1].value, c != ws[1] * group {
        throw ctx.error("X has \(c) channels but W \(w.shape.text) with group \(group) expects \(ws[1] * group)")
    }
    guard ws[0] % group == 0 else { throw ctx.error("W's \(ws[0]) output channels are not divisible by group \(group)") }
    let kernel = Array(ws[2...])
    if let k = ctx.ints("kernel_shape"), k != kernel {
        throw ctx.error("kernel_shape \(k) does not match W's spatial dims \(kernel)")
    }
    let g = try ctx.window(input: spatial, kernel: kernel)
    return [x.shape[0], Dim(ws[0])] + g.output.map { Dim($0) }
}

// X, W, B?, residual? → act(Conv(X, W, B) + residual)
let fusedConvSchema = OpSchema("FusedConv", domain: "kiln", inputs: 2...4,
                               attributes: [.string("auto_pad", "NOTSET"), .optional("kernel_shape", .ints), .optional("pads", .ints),
                                            .optional("strides", .ints), .optional("dilations", .ints), .int("group", 1)] + epilogueAttributes) { ctx in
    try checkActivation(ctx)
    let t = try inferAs("Conv", ctx, inputs: 3, attributes: ["auto_pad", "kernel_shape", "pads", "strides", "dilations", "group"])
    try checkResidual(ctx, 3, t)
    ctx.setOutput(0, t)
}

// dy, w, x (for its shape) → dx
let convGradDataSchema = shapedLike("ConvGradData", inputs: 3...3, like: 2, attributes: convAttributes)

// x, dy, w (for its shape) → dw
let convGradWeightSchema = OpSchema("ConvGradWeight", domain: "kiln", inputs: 3...3, attributes: convAttributes) { ctx in
    ctx.setOutput(0, try ctx.input(2))
}

// dy [N, M, …] → db [M]: the sum over every axis but 1.
let convGradBiasSchema = OpSchema("ConvGradBias", domain: "kiln", inputs: 1...1) { ctx in
    let d = try ctx.input(0)
    guard d.rank >= 2 else { throw ctx.error("dy must be [N, M, …], got \(d.shape.text)") }
    ctx.setOutput(0, TensorType(d.dtype, [d.shape[1]]))
}
