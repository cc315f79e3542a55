// Elementwise ops: activations, broadcasting arithmetic, Max/Min/Sum, Clip, Identity, Dropout,
// Sqrt, the fused chain kiln.FusedElementwise, and the training step's ReluGrad, LeakyReluGrad
// and DropoutGrad.
// Schemas: Elementwise+Schemas.swift; reference kernels: Elementwise+Reference.swift.

/// k operations per output element for every input past the first (Add, Sum of n inputs).
private let perOperand = FlopRule.custom { n, _, out in sat(out, max(1, n.inputs.count - 1)) }

/// The gradient passes to every input, reduced where it was broadcast (Add, Sum).
private let passThrough = GradientRule.rule { ctx, n, dy, wants in
    for (k, v) in n.inputs.enumerated() where wants[k] { try ctx.add(v, ctx.reduced(dy, to: v)) }
}

let elementwiseDefinitions: [OpDefinition] = [
    define(unary("Relu"), reluReference, types: .floats, flops: .perOutput(1), gradient: .rule { ctx, n, dy, _ in
        let x = n.inputs[0]
        try ctx.add(x, ctx.emit("ReluGrad", [dy, n.outputs[0].name], [ctx.part(x)], name: "\(n.name).grad")[0])
    }, lowering: .kernel(.activation)),
    define(unary("LeakyRelu", attributes: [.float("alpha", 0.01)]), leakyReluReference,
           types: .floats, flops: .perOutput(1), gradient: .rule { ctx, n, dy, _ in
        let x = n.inputs[0]
        try ctx.add(x, ctx.emit("LeakyReluGrad", [dy, x], [ctx.part(x)], attributes: n.attributes.filter { $0.key == "alpha" },
                            name: "\(n.name).grad")[0])
    }, lowering: .kernel(.activation)),
    define(unary("Sigmoid"), sigmoidReference,
           types: .floats, flops: .perOutput(1), gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.activation)),
    // Sqrt: NaN below zero (as IEEE sqrt); the gradient dy / (2·sqrt(x)) comes from the output.
    define(unary("Sqrt"), sqrtReference, types: .floats, flops: .perOutput(1), gradient: .rule { ctx, n, dy, _ in
        let x = n.inputs[0], y = n.outputs[0].name
        let half = ctx.constant("\(n.name).half", TensorData(floats: [0.5], shape: []))
        let q = try ctx.emit("Div", domain: "", [dy, y], [ctx.part(x)], name: "\(n.name).grad.div")[0]
        try ctx.add(x, ctx.emit("Mul", domain: "", [q, half], [ctx.part(x)], name: "\(n.name).grad")[0])
    }, lowering: .kernel(.activation)),
    define(unary("Tanh"), tanhReference,
           types: .floats, flops: .perOutput(1), gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.activation)),
    define(hardSigmoidSchema, hardSigmoidReference,
           types: .floats, flops: .perOutput(1), gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.activation)),
    define(unary("HardSwish"), hardSwishReference,
           types: .floats, flops: .perOutput(1), gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.activation)),
    define(binary("Add"), binary(+, { $0 &+ $1 }), types: .numbers, flops: perOperand, gradient: passThrough, lowering: .kernel(.binary)),
    define(binary("Sub"), binary(-, { $0 &- $1 }), types: .numbers, flops: perOperand, gradient: .rule { ctx, n, dy, wants in
        let (a, b) = (n.inputs[0], n.inputs[1])
        if wants[0] { try ctx.add(a, ctx.reduced(dy, to: a)) }
        if wants[1] {
            let minus = ctx.constant("minus_one", TensorData(floats: [-1], shape: []))
            let neg = try ctx.emit("Mul", domain: "", [dy, minus], [ctx.part(b)], name: "\(n.name).grad.neg")[0]
            try ctx.add(b, ctx.reduced(neg, to: b))
        }
    }, lowering: .kernel(.binary)),
    define(binary("Mul"), binary(*, { $0 &* $1 }), types: .numbers, flops: perOperand, gradient: .rule { ctx, n, dy, wants in
        for k in 0..<2 where wants[k] {
            let other = n.inputs[1 - k], v = n.inputs[k]
            let product = try ctx.emit("Mul", domain: "", [dy, other], [ctx.part(v)], name: "\(n.name).grad.\(k)")[0]
            try ctx.add(v, ctx.reduced(product, to: v))
        }
    }, lowering: .kernel(.binary)),
    define(binary("Div"), binary(/, { b, d in d == 0 ? 0 : b / d }),
           types: .numbers, flops: perOperand, gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.binary)),
    // Max-13 and Min-13: elementwise over any number of broadcasting inputs.
    define(variadicBroadcast("Max"), extremum(max: true),
           types: .numbers, flops: .none, gradient: .none("Kiln has no backward rule for it yet"), lowering: .reference),
    define(variadicBroadcast("Min"), extremum(max: false),
           types: .numbers, flops: .none, gradient: .none("Kiln has no backward rule for it yet"), lowering: .reference),
    define(variadicBroadcast("Sum", floatOnly: true), sumReference,
           types: .floats, flops: perOperand, gradient: passThrough, lowering: .kernel(.sum)),
    define(clipSchema, clipReference,
           types: .numbers, flops: .perOutput(1), gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.clip)),
    define(identitySchema, { ctx in [try ctx.input(0)] },
           types: .all, flops: .none, gradient: .rule { ctx, n, dy, _ in try ctx.add(n.inputs[0], dy) }, lowering: .view),
    define(dropoutSchema, dropoutReference, types: .floats, flops: .none, gradient: .rule { ctx, n, dy, _ in
        let x = n.inputs[0]
        var ratio: Float = 0.5
        if n.inputs.count > 1, !n.inputs[1].isEmpty {
            guard let r = ctx.graph.parameter(named: n.inputs[1])?.initializer.tensor else { throw ctx.unsupported(n, "Dropout with a ratio computed at run time") }
            ratio = Float(r.double(at: 0))
        }
        try ctx.add(x, ctx.emit("DropoutGrad", [dy, n.outputs[1].name], [ctx.part(x)], attributes: ["ratio": .float(ratio)],
                            name: "\(n.name).grad")[0])
    }, lowering: .reference),
    define(fusedElementwiseSchema, fusedElementwiseReference, types: .floats, flops: .perOutput(1),
           gradient: .none("the compiler forms it after differentiation"), lowering: .kernel(.elementwiseChain)),
    // dy, y (Relu's output)[, dy2] → dy (+ dy2) where y > 0, else 0
    define(shapedLike("ReluGrad", inputs: 2...3, like: 1), reluGradReference,
           types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .kernel(.reluGrad)),
    define(leakyReluGradSchema, leakyReluGradReference, types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .reference),
    define(dropoutGradSchema, dropoutGradReference, types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .reference),
]
