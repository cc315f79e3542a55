// Kiln's training ops (domain "kiln"): the cosine head and the losses of LDAM-DRW, the
// backward ops the autodiff pass emits, training-mode BatchNormalization and the SGD update.
// Their semantics are documented in docs/TRAINING.md; every one has a reference kernel.

private let convAttributes: [AttributeSpec] = [
    .string("auto_pad", "NOTSET"), .optional("kernel_shape", .ints), .optional("pads", .ints),
    .optional("strides", .ints), .optional("dilations", .ints), .int("group", 1),
]

private let poolAttributes: [AttributeSpec] = [
    .string("auto_pad", "NOTSET"), .required("kernel_shape", .ints), .optional("pads", .ints), .optional("strides", .ints),
    .optional("dilations", .ints), .int("ceil_mode", 0), .int("count_include_pad", 0),
]

/// The loss attributes: Focal's γ; LDAM's class counts, largest margin and scale.
private let lossAttributes: [String: [AttributeSpec]] = [
    "SoftmaxCrossEntropy": [],
    "FocalLoss": [.float("gamma", 1)],
    "LDAMLoss": [.required("class_counts", .ints), .float("max_m", 0.5), .float("scale", 30)],
]

/// logits [N, C] (f32), labels [N] (i64), class weights [C] (f32).
private func checkLossInputs(_ ctx: InferenceContext, first: Int) throws -> TensorType {
    let z = try ctx.input(first), y = try ctx.input(first + 1), w = try ctx.input(first + 2)
    try ctx.requireFloat(z, "logits")
    guard z.rank == 2 else { throw ctx.error("logits must be [N, C], got \(z.shape.text)") }
    guard y.dtype == .i64, y.rank == 1 else { throw ctx.error("labels must be i64 [N], got \(y)") }
    guard y.shape[0] == z.shape[0] else { throw ctx.error("labels \(y.shape.text) and logits \(z.shape.text) differ in N") }
    guard w.dtype == z.dtype, w.rank == 1, w.shape[0] == z.shape[1] else {
        throw ctx.error("class weights must be \(z.dtype)[\(z.shape[1])], got \(w)")
    }
    if ctx.node.op == "LDAMLoss" || ctx.node.op == "LDAMLossGrad" {
        guard let counts = ctx.ints("class_counts"), let c = z.shape[1].value, counts.count == c, counts.allSatisfy({ $0 > 0 }) else {
            throw ctx.error("class_counts must hold one positive count per class (\(z.shape[1]))")
        }
    }
    return z
}

private func lossOps() -> [OpSchema] {
    lossAttributes.keys.sorted().flatMap { name -> [OpSchema] in
        [
            // logits, labels, weights → scalar loss
            OpSchema(name, domain: "kiln", inputs: 3...3, attributes: lossAttributes[name]!) { ctx in
                let z = try checkLossInputs(ctx, first: 0)
                ctx.setOutput(0, TensorType(z.dtype, []))
            },
            // dloss (scalar), logits, labels, weights → dlogits
            OpSchema(name + "Grad", domain: "kiln", inputs: 4...4, attributes: lossAttributes[name]!) { ctx in
                let z = try checkLossInputs(ctx, first: 1)
                let d = try ctx.input(0)
                guard d.rank == 0, d.dtype == z.dtype else { throw ctx.error("the loss gradient must be a \(z.dtype) scalar, got \(d)") }
                ctx.setOutput(0, z)
            },
        ]
    }
}

/// `grad` takes the type of input `like`.
private func shapedLike(_ name: String, inputs: ClosedRange<Int>, like: Int, attributes: [AttributeSpec] = []) -> OpSchema {
    OpSchema(name, domain: "kiln", inputs: inputs, attributes: attributes) { ctx in
        let t = try ctx.input(like)
        try ctx.requireFloat(try ctx.input(0), "gradient")
        ctx.setOutput(0, t)
    }
}

let trainOps: [OpSchema] = lossOps() + [
    // x [N, F], w [F, C] → cos [N, C]: L2-normalised rows of x times L2-normalised columns of w.
    OpSchema("NormedLinear", domain: "kiln", inputs: 2...2) { ctx in
        let x = try ctx.input(0), w = try ctx.input(1)
        try ctx.requireFloat(x, "x")
        try ctx.requireSameType(x, w, "x and w")
        guard x.rank == 2, w.rank == 2 else { throw ctx.error("x must be [N, F] and w [F, C], got \(x.shape.text) and \(w.shape.text)") }
        guard x.shape[1] == w.shape[0] else { throw ctx.error("x has \(x.shape[1]) features, w expects \(w.shape[0])") }
        ctx.setOutput(0, TensorType(x.dtype, [x.shape[0], w.shape[1]]))
    },
    // dz [N, C], x, w → dx, dw
    OpSchema("NormedLinearGrad", domain: "kiln", inputs: 3...3, outputs: 2...2) { ctx in
        let x = try ctx.input(1), w = try ctx.input(2)
        ctx.setOutput(0, x)
        ctx.setOutput(1, w)
    },
    // Training-mode BatchNormalization: x, scale, B, running mean, running var → y, batch
    // mean, batch 1/√(var + ε), new running mean, new running var (PyTorch's update:
    // running = momentum·running + (1 − momentum)·batch, the variance unbiased).
    // With activation="Relu" (the fuse-training pass), y is ReLU of the normalised value.
    OpSchema("BatchNormTraining", domain: "kiln", inputs: 5...5, outputs: 5...5,
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
    },
    // dy, x, scale, batch mean, batch 1/√(var + ε), [y] → dx, dscale, dB; with y (a ReLU's
    // output, fused by fuse-training) dy counts only where y > 0.
    OpSchema("BatchNormGrad", domain: "kiln", inputs: 5...6, outputs: 3...3) { ctx in
        let x = try ctx.input(1), s = try ctx.input(2)
        ctx.setOutput(0, x)
        ctx.setOutput(1, s)
        ctx.setOutput(2, s)
    },
    // dy, w, x (for its shape) → dx
    shapedLike("ConvGradData", inputs: 3...3, like: 2, attributes: convAttributes),
    // x, dy, w (for its shape) → dw
    OpSchema("ConvGradWeight", domain: "kiln", inputs: 3...3, attributes: convAttributes) { ctx in
        ctx.setOutput(0, try ctx.input(2))
    },
    // dy [N, M, …] → db [M]: the sum over every axis but 1.
    OpSchema("ConvGradBias", domain: "kiln", inputs: 1...1) { ctx in
        let d = try ctx.input(0)
        guard d.rank >= 2 else { throw ctx.error("dy must be [N, M, …], got \(d.shape.text)") }
        ctx.setOutput(0, TensorType(d.dtype, [d.shape[1]]))
    },
    // dy, y (Relu's output)[, dy2] → dy (+ dy2) where y > 0, else 0
    shapedLike("ReluGrad", inputs: 2...3, like: 1),
    // dy, x → dy where x > 0, else α·dy
    shapedLike("LeakyReluGrad", inputs: 2...2, like: 1, attributes: [.float("alpha", 0.01)]),
    // dy, x → dx: each window's gradient to its (first) maximum
    shapedLike("MaxPoolGrad", inputs: 2...2, like: 1, attributes: poolAttributes),
    // dy, x (for its shape) → dx: each window's gradient spread over its counted positions
    shapedLike("AveragePoolGrad", inputs: 2...2, like: 1, attributes: poolAttributes),
    // dy [N, C, 1, …], x → dx = dy / (spatial size) everywhere
    shapedLike("GlobalAveragePoolGrad", inputs: 2...2, like: 1),
    // dy, like → dy summed over the axes where `like` broadcast (numpy rules) to dy's shape
    shapedLike("ReduceToShape", inputs: 2...2, like: 1),
    // dy, x → dy with x's shape (the gradient of Reshape, Flatten, Squeeze, Unsqueeze)
    shapedLike("ReshapeLike", inputs: 2...2, like: 1),
    // dy, x, starts, ends, axes?, steps? → dx: dy scattered back to where Slice read it, 0 elsewhere
    shapedLike("SliceGrad", inputs: 4...6, like: 1),
    // dy, x, pads → dx: the part of dy that was not padding (constant-mode Pad)
    shapedLike("PadGrad", inputs: 3...3, like: 1),
    // dy, mask (bool, Dropout's second output) → dy·mask / (1 − ratio)
    shapedLike("DropoutGrad", inputs: 2...2, like: 0, attributes: [.float("ratio", 0.5)]),
    // param, grad, velocity, lr (scalar) → param', velocity': PyTorch's SGD
    // (g = grad + wd·param; v = momentum·v + g; param −= lr·(nesterov ? g + momentum·v : v)).
    OpSchema("SGD", domain: "kiln", inputs: 4...4, outputs: 2...2,
             attributes: [.float("momentum", 0.9), .float("weight_decay", 0), .int("nesterov", 0)]) { ctx in
        let p = try ctx.input(0), g = try ctx.input(1), v = try ctx.input(2), lr = try ctx.input(3)
        try ctx.requireFloat(p, "param")
        guard g == p, v == p else { throw ctx.error("grad \(g) and velocity \(v) must equal the parameter \(p)") }
        guard lr.rank == 0, lr.dtype == p.dtype else { throw ctx.error("lr must be a \(p.dtype) scalar, got \(lr)") }
        ctx.setOutput(0, p)
        ctx.setOutput(1, p)
    },
]
