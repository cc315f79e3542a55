// Schemas (arity, attributes, type and shape rules) of the normalization family (see Normalization.swift).

func softmaxLike(_ name: String) -> OpSchema {
    OpSchema(name, inputs: 1...1, attributes: [.int("axis", -1)]) { ctx in
        let x = try ctx.input(0)
        try ctx.requireFloat(x, "input")
        _ = try ctx.axis(ctx.int("axis"), rank: x.rank)
        ctx.setOutput(0, x)
    }
}

// BatchNormalization-15: X [N, C, …]; scale, B, mean, var [C]. Training mode adds the
// updated running mean and variance as outputs.
let batchNormalizationSchema = OpSchema("BatchNormalization", inputs: 5...5, outputs: 1...3,
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
}

// Training-mode BatchNormalization: x, scale, B, running mean, running var → y, batch
// mean, batch 1/√(var + ε), new running mean, new running var (PyTorch's update:
// running = momentum·running + (1 − momentum)·batch, the variance unbiased).
// With activation="Relu" (the fuse-training pass), y is ReLU of the normalised value.
let batchNormTrainingSchema = OpSchema("BatchNormTraining", domain: "kiln", inputs: 5...5, outputs: 5...5,
                                       attributes: [.float("epsilon", 1e-5), .float("momentum", 0.9), .string("activation", "")]) { ctx in
    let x = try ctx.input(0)
    guard ["", "Relu"].contains(ctx.string("activation")) else { throw ctx.error("activation must be \"\" or \"Relu\"") }
    try ctx.requireFloat(x, "x")
    guard x.rank >= 2 else { throw ctx.error("x must be [N, C, …], got \(x.shape.text)") }
    let c = TensorType(x.dtype, [x.shape[1]])
    for i in 1...4 {
        let t = try ctx.input(i)
        guard t.rank == 1, t.shape[0] == x.shape[1] else { throw ctx.error("input \(i) must be [\(x.shape[1])], got \(t.shape.text)") }
    }
    ctx.setOutput(0, x)
    for i in 1...4 { ctx.setOutput(i, c) }
}

// dy, x, scale, batch mean, batch 1/√(var + ε), [y] → dx, dscale, dB; with y (a ReLU's
// output, fused by fuse-training) dy counts only where y > 0.
let batchNormGradSchema = OpSchema("BatchNormGrad", domain: "kiln", inputs: 5...6, outputs: 3...3) { ctx in
    let x = try ctx.input(1), s = try ctx.input(2)
    ctx.setOutput(0, x)
    ctx.setOutput(1, s)
    ctx.setOutput(2, s)
}

// LRN-13: across channels, window `size`.
let lrnSchema = OpSchema("LRN", inputs: 1...1,
                         attributes: [.float("alpha", 1e-4), .float("beta", 0.75), .float("bias", 1), .required("size", .int)]) { ctx in
    let x = try ctx.input(0)
    try ctx.requireFloat(x, "X")
    guard x.rank >= 3 else { throw ctx.error("X must be [N, C, D1, …], got \(x.shape.text)") }
    guard ctx.int("size") >= 1 else { throw ctx.error("size must be ≥ 1") }
    ctx.setOutput(0, x)
}

// LayerNormalization-17: X normalised over the axes from `axis` on, then × Scale (+ B), both
// broadcast to X's shape from `axis` on; Mean and InvStdDev (optional) keep the leading axes.
let layerNormalizationSchema = OpSchema("LayerNormalization", inputs: 2...3, outputs: 1...3,
                                        attributes: [.int("axis", -1), .float("epsilon", 1e-5), .int("stash_type", 1)]) { ctx in
    let x = try ctx.input(0)
    try ctx.requireFloat(x, "X")
    let axis = try ctx.axis(ctx.int("axis"), rank: x.rank)
    let normalized = Array(x.shape[axis...])
    for i in 1..<ctx.inputCount where ctx.hasInput(i) {
        let t = try ctx.input(i)
        try ctx.requireSameType(x, t, i == 1 ? "X and Scale" : "X and B")
        guard broadcastShapes(normalized, t.shape) == normalized else {
            throw ctx.error("\(i == 1 ? "Scale" : "B") \(t.shape.text) does not broadcast to the normalised shape \(normalized.text)")
        }
    }
    guard [0, 1].contains(ctx.int("stash_type")) || ctx.int("stash_type") == 11 else { throw ctx.error("stash_type \(ctx.int("stash_type")) is not a float type") }
    ctx.setOutput(0, x)
    let stats = TensorType(.f32, Array(x.shape[..<axis]) + Array(repeating: Dim(1), count: x.rank - axis))
    ctx.setOutput(1, stats)
    ctx.setOutput(2, stats)
}

// InstanceNormalization-6: each (n, c) plane of X [N, C, D…] normalised, × scale[c] + B[c].
let instanceNormalizationSchema = OpSchema("InstanceNormalization", inputs: 3...3, attributes: [.float("epsilon", 1e-5)]) { ctx in
    let x = try ctx.input(0)
    try ctx.requireFloat(x, "input")
    guard x.rank >= 3 else { throw ctx.error("input must be [N, C, D1, …] (rank ≥ 3), got \(x.shape.text)") }
    for (i, what) in [(1, "scale"), (2, "B")] {
        let t = try ctx.input(i)
        try ctx.requireSameType(x, t, "input and \(what)")
        guard t.shape == [x.shape[1]] else { throw ctx.error("\(what) must be [\(x.shape[1])], got \(t.shape.text)") }
    }
    ctx.setOutput(0, x)
}

// GroupNormalization-21 (and -18): the channels of X [N, C, D…] split into num_groups groups,
// each (n, group) normalised, × scale + bias. Opset 21 gives scale and bias per channel [C];
// opset 18 per group [num_groups] (when the two agree the forms coincide).
let groupNormalizationSchema = OpSchema("GroupNormalization", inputs: 3...3,
                                        attributes: [.required("num_groups", .int), .float("epsilon", 1e-5), .int("stash_type", 1)]) { ctx in
    let x = try ctx.input(0)
    try ctx.requireFloat(x, "input")
    guard x.rank >= 2 else { throw ctx.error("input must be [N, C, D1, …] (rank ≥ 2), got \(x.shape.text)") }
    let g = ctx.int("num_groups")
    guard g >= 1 else { throw ctx.error("num_groups must be ≥ 1, got \(g)") }
    if let c = x.shape[1].value, c % g != 0 { throw ctx.error("\(c) channels do not split into \(g) groups") }
    for (i, what) in [(1, "scale"), (2, "bias")] {
        let t = try ctx.input(i)
        try ctx.requireSameType(x, t, "input and \(what)")
        guard t.shape == [x.shape[1]] || t.shape == [Dim(g)] else {
            throw ctx.error("\(what) must be [\(x.shape[1])] (one per channel) or [\(g)] (one per group), got \(t.shape.text)")
        }
    }
    ctx.setOutput(0, x)
}
