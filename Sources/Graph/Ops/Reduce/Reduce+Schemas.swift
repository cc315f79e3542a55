// Schemas (arity, attributes, type and shape rules) of the reduce family (see Reduce.swift).

func reduction(_ name: String) -> OpSchema {
    OpSchema(name, inputs: 1...1, attributes: [.optional("axes", .ints), .int("keepdims", 1)]) { ctx in
        let x = try ctx.input(0)
        try ctx.requireFloat(x, "input")
        let axes = try (ctx.ints("axes") ?? Array(0..<x.rank)).map { try ctx.axis($0, rank: x.rank, what: "axes value") }
        let keep = ctx.int("keepdims") != 0
        var shape: Shape = []
        for (i, d) in x.shape.enumerated() {
            if axes.contains(i) { if keep { shape.append(Dim(1)) } } else { shape.append(d) }
        }
        ctx.setOutput(0, TensorType(x.dtype, shape))
    }
}
