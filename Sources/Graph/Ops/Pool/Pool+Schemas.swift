// Schemas (arity, attributes, type and shape rules) of the pool family (see Pool.swift).

func pool(_ name: String, extra: [AttributeSpec], dilations: Bool) -> OpSchema {
    let outputs = name == "MaxPool" ? 1...2 : 1...1
    return OpSchema(name, inputs: 1...1, outputs: outputs, attributes: windowAttributes + extra) { ctx in
        let (x, spatial) = try ctx.spatialInput(0, integers: name == "MaxPool")
        guard let kernel = ctx.ints("kernel_shape") else { throw ctx.error("missing required attribute 'kernel_shape'") }
        let g = try ctx.window(input: spatial, kernel: kernel, ceilMode: ctx.int("ceil_mode") != 0, dilations: dilations)
        if name == "MaxPool", ctx.int("storage_order") != 0 && ctx.int("storage_order") != 1 {
            throw ctx.error("storage_order must be 0 or 1")
        }
        let shape = [x.shape[0], x.shape[1]] + g.output.map { Dim($0) }
        ctx.setOutput(0, TensorType(x.dtype, shape))
        ctx.setOutput(1, TensorType(.i64, shape))
    }
}

func globalPool(_ name: String) -> OpSchema {
    OpSchema(name, inputs: 1...1) { ctx in
        let x = try ctx.input(0)
        try ctx.requireFloat(x, "input")
        guard x.rank >= 3 else { throw ctx.error("input must be [N, C, D1, …] (rank ≥ 3), got \(x.shape.text)") }
        ctx.setOutput(0, TensorType(x.dtype, [x.shape[0], x.shape[1]] + Array(repeating: Dim(1), count: x.rank - 2)))
    }
}

let poolAttributes: [AttributeSpec] = [
    .string("auto_pad", "NOTSET"), .required("kernel_shape", .ints), .optional("pads", .ints), .optional("strides", .ints),
    .optional("dilations", .ints), .int("ceil_mode", 0), .int("count_include_pad", 0),
]

let maxPoolSchema = pool("MaxPool", extra: [.int("ceil_mode", 0), .optional("dilations", .ints), .int("storage_order", 0)], dilations: true)

let averagePoolSchema = pool("AveragePool", extra: [.int("ceil_mode", 0), .int("count_include_pad", 0), .optional("dilations", .ints)], dilations: true)

// dy, x → dx: each window's gradient to its (first) maximum
let maxPoolGradSchema = shapedLike("MaxPoolGrad", inputs: 2...2, like: 1, attributes: poolAttributes)

// dy, x (for its shape) → dx: each window's gradient spread over its counted positions
let averagePoolGradSchema = shapedLike("AveragePoolGrad", inputs: 2...2, like: 1, attributes: poolAttributes)
