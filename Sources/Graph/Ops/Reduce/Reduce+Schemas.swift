// Schemas (arity, attributes, type and shape rules) of the reduce family (see Reduce.swift).

/// A reduction over the `axes` attribute (every axis when absent; opset-18 forms, with axes as
/// an input, are rewritten into this one on import). `floatOnly` for the means and norms;
/// `bools` for ReduceMax and ReduceMin (opset 20 takes bool tensors).
func reduction(_ name: String, floatOnly: Bool = true, bools: Bool = false) -> OpSchema {
    OpSchema(name, inputs: 1...1, attributes: [.optional("axes", .ints), .int("keepdims", 1)]) { ctx in
        let x = try ctx.input(0)
        if floatOnly { try ctx.requireFloat(x, "input") } else if x.dtype == .bool && !bools { throw ctx.error("\(name) is not defined on bool tensors") }
        let axes = try (ctx.ints("axes") ?? Array(0..<x.rank)).map { try ctx.axis($0, rank: x.rank, what: "axes value") }
        let keep = ctx.int("keepdims") != 0
        var shape: Shape = []
        for (i, d) in x.shape.enumerated() {
            if axes.contains(i) { if keep { shape.append(Dim(1)) } } else { shape.append(d) }
        }
        ctx.setOutput(0, TensorType(x.dtype, shape))
    }
}
