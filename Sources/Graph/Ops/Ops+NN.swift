// Neural-network ops: convolution, normalisation, pooling, dense layers, softmax.

private let windowAttributes: [AttributeSpec] = [
    .string("auto_pad", "NOTSET"), .optional("kernel_shape", .ints), .optional("pads", .ints), .optional("strides", .ints),
]

private func softmaxLike(_ name: String) -> OpSchema {
    OpSchema(name, inputs: 1...1, attributes: [.int("axis", -1)]) { ctx in
        let x = try ctx.input(0)
        try ctx.requireFloat(x, "input")
        _ = try ctx.axis(ctx.int("axis"), rank: x.rank)
        ctx.setOutput(0, x)
    }
}

private func pool(_ name: String, extra: [AttributeSpec], dilations: Bool) -> OpSchema {
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

private func globalPool(_ name: String) -> OpSchema {
    OpSchema(name, inputs: 1...1) { ctx in
        let x = try ctx.input(0)
        try ctx.requireFloat(x, "input")
        guard x.rank >= 3 else { throw ctx.error("input must be [N, C, D1, …] (rank ≥ 3), got \(x.shape.text)") }
        ctx.setOutput(0, TensorType(x.dtype, [x.shape[0], x.shape[1]] + Array(repeating: Dim(1), count: x.rank - 2)))
    }
}

let nnOps: [OpSchema] = [
    // Conv-11: X [N, C, D…], W [M, C/group, k…], B [M] → Y [N, M, D'…]
    OpSchema("Conv", inputs: 2...3,
             attributes: windowAttributes + [.optional("dilations", .ints), .int("group", 1)]) { ctx in
        let (x, spatial) = try ctx.spatialInput(0)
        let w = try ctx.input(1)
        try ctx.requireSameType(x, w, "X and W")
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
        if let b = ctx.optionalInput(2) {
            try ctx.requireSameType(x, b, "X and B")
            guard b.shape == [Dim(ws[0])] else { throw ctx.error("B must be [\(ws[0])], got \(b.shape.text)") }
        }
        let g = try ctx.window(input: spatial, kernel: kernel)
        ctx.setOutput(0, TensorType(x.dtype, [x.shape[0], Dim(ws[0])] + g.output.map { Dim($0) }))
    },

    // BatchNormalization-15: X [N, C, …]; scale, B, mean, var [C]. Training mode adds the
    // updated running mean and variance as outputs.
    OpSchema("BatchNormalization", inputs: 5...5, outputs: 1...3,
             attributes: [.float("epsilon", 1e-5), .float("momentum", 0.9), .int("training_mode", 0)]) { ctx in
        let x = try ctx.input(0)
        try ctx.requireFloat(x, "X")
        guard x.rank >= 2 else { throw ctx.error("X must be [N, C, …], got \(x.shape.text)") }
        let c = x.shape[1]
        for (i, what) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
            let t = try ctx.input(i)
            try ctx.requireFloat(t, what)
            guard t.shape == [c] else { throw ctx.error("\(what) must be [\(c)] for X \(x.shape.text), got \(t.shape.text)") }
        }
        let training = ctx.int("training_mode") != 0
        if !training && ctx.node.outputs.count > 1 {
            throw ctx.error("running_mean and running_var outputs need training_mode=1")
        }
        ctx.setOutput(0, x)
        let stats = TensorType(try ctx.input(3).dtype, [c])
        ctx.setOutput(1, stats)
        ctx.setOutput(2, stats)
    },

    pool("MaxPool", extra: [.int("ceil_mode", 0), .optional("dilations", .ints), .int("storage_order", 0)], dilations: true),
    pool("AveragePool", extra: [.int("ceil_mode", 0), .int("count_include_pad", 0), .optional("dilations", .ints)], dilations: true),
    globalPool("GlobalAveragePool"),
    globalPool("GlobalMaxPool"),

    // Gemm-13: Y = alpha·A'·B' + beta·C, A' [M, K], B' [K, N], C broadcast to [M, N].
    OpSchema("Gemm", inputs: 2...3,
             attributes: [.float("alpha", 1), .float("beta", 1), .int("transA", 0), .int("transB", 0)]) { ctx in
        let a = try ctx.input(0), b = try ctx.input(1)
        try ctx.requireSameType(a, b, "A and B")
        guard a.rank == 2, b.rank == 2 else { throw ctx.error("A and B must be matrices, got \(a.shape.text) and \(b.shape.text)") }
        let (m, ka) = ctx.int("transA") != 0 ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = ctx.int("transB") != 0 ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard ka == kb else { throw ctx.error("inner dimensions differ: A' is [\(m), \(ka)], B' is [\(kb), \(n)]") }
        if let c = ctx.optionalInput(2) {
            try ctx.requireSameType(a, c, "A and C")
            guard let s = broadcastShapes(c.shape, [m, n]), s == [m, n], c.rank <= 2 else {
                throw ctx.error("C \(c.shape.text) does not broadcast to [\(m), \(n)]")
            }
        }
        ctx.setOutput(0, TensorType(a.dtype, [m, n]))
    },

    // MatMul-13: numpy matmul, batch dimensions broadcast.
    OpSchema("MatMul", inputs: 2...2) { ctx in
        let a = try ctx.input(0), b = try ctx.input(1)
        try ctx.requireSameType(a, b, "A and B")
        guard a.rank >= 1, b.rank >= 1 else { throw ctx.error("MatMul needs inputs of rank ≥ 1") }
        let sa = a.rank == 1 ? [Dim(1)] + a.shape : a.shape
        let sb = b.rank == 1 ? b.shape + [Dim(1)] : b.shape
        let k1 = sa[sa.count - 1], k2 = sb[sb.count - 2]
        guard k1 == k2 else { throw ctx.error("inner dimensions differ: \(a.shape.text) × \(b.shape.text)") }
        guard let batch = broadcastShapes(Array(sa.dropLast(2)), Array(sb.dropLast(2))) else {
            throw ctx.error("batch dimensions of \(a.shape.text) and \(b.shape.text) do not broadcast")
        }
        var shape = batch
        if a.rank > 1 { shape.append(sa[sa.count - 2]) }
        if b.rank > 1 { shape.append(sb[sb.count - 1]) }
        ctx.setOutput(0, TensorType(a.dtype, shape))
    },

    softmaxLike("Softmax"),
    softmaxLike("LogSoftmax"),

    // LRN-13: across channels, window `size`.
    OpSchema("LRN", inputs: 1...1,
             attributes: [.float("alpha", 1e-4), .float("beta", 0.75), .float("bias", 1), .required("size", .int)]) { ctx in
        let x = try ctx.input(0)
        try ctx.requireFloat(x, "X")
        guard x.rank >= 3 else { throw ctx.error("X must be [N, C, D1, …], got \(x.shape.text)") }
        guard ctx.int("size") >= 1 else { throw ctx.error("size must be ≥ 1") }
        ctx.setOutput(0, x)
    },
]
