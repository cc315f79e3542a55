// Elementwise ops: activations, broadcasting arithmetic, Sum, Clip, Identity, Dropout, the
// fused chain, and their gradients. Schemas: Ops/Ops+Elementwise.swift; reference kernels:
// Reference/Kernels+Elementwise.swift.

/// k operations per output element for every input past the first (Add, Sum of n inputs).
private let perOperand = FlopRule.custom { n, _, out in sat(out, max(1, n.inputs.count - 1)) }

/// The gradient passes to every input, reduced where it was broadcast (Add, Sum).
private let passThrough = GradientRule.rule { ctx, n, dy, wants in
    for (k, v) in n.inputs.enumerated() where wants[k] { ctx.add(v, ctx.reduced(dy, to: v)) }
}

let elementwiseDefinitions: [OpDefinition] = [
    define("Relu", types: .floats, flops: .perOutput(1), gradient: .rule { ctx, n, dy, _ in
        let x = n.inputs[0]
        ctx.add(x, ctx.emit("ReluGrad", [dy, n.outputs[0].name], [(ctx.part(x), ctx.type(x))], name: "\(n.name).grad")[0])
    }, lowering: .kernel(.activation)),
    define("LeakyRelu", types: .floats, flops: .perOutput(1), gradient: .rule { ctx, n, dy, _ in
        let x = n.inputs[0]
        ctx.add(x, ctx.emit("LeakyReluGrad", [dy, x], [(ctx.part(x), ctx.type(x))], attributes: n.attributes.filter { $0.key == "alpha" },
                            name: "\(n.name).grad")[0])
    }, lowering: .kernel(.activation)),
    define("Sigmoid", types: .floats, flops: .perOutput(1), gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.activation)),
    // Sqrt: the whole op in one entry — schema, reference kernel (NaN below zero, as IEEE
    // sqrt), FLOPs, gradient dy / (2·sqrt(x)) from the output, and the reference lowering.
    OpDefinition(unary("Sqrt"), types: .floats, opsets: onnxOpsets, flops: .perOutput(1),
                 reference: unaryFloat { x, _ in x.squareRoot() },
                 gradient: .rule { ctx, n, dy, _ in
                     let x = n.inputs[0], y = n.outputs[0].name
                     let half = ctx.constant("\(n.name).half", TensorData(floats: [0.5], shape: []))
                     let q = ctx.emit("Div", domain: "", [dy, y], [(ctx.part(x), ctx.type(x))], name: "\(n.name).grad.div")[0]
                     ctx.add(x, ctx.emit("Mul", domain: "", [q, half], [(ctx.part(x), ctx.type(x))], name: "\(n.name).grad")[0])
                 }, lowering: .reference),
    define("Tanh", types: .floats, flops: .perOutput(1), gradient: .none("Kiln has no backward rule for it yet"), lowering: .reference),
    define("HardSigmoid", types: .floats, flops: .perOutput(1), gradient: .none("Kiln has no backward rule for it yet"), lowering: .reference),
    define("HardSwish", types: .floats, flops: .perOutput(1), gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.activation)),
    define("Add", types: .numbers, flops: perOperand, gradient: passThrough, lowering: .kernel(.binary)),
    define("Sub", types: .numbers, flops: perOperand, gradient: .rule { ctx, n, dy, wants in
        let (a, b) = (n.inputs[0], n.inputs[1])
        if wants[0] { ctx.add(a, ctx.reduced(dy, to: a)) }
        if wants[1] {
            let minus = ctx.constant("minus_one", TensorData(floats: [-1], shape: []))
            let neg = ctx.emit("Mul", domain: "", [dy, minus], [(ctx.part(b), ctx.type(dy))], name: "\(n.name).grad.neg")[0]
            ctx.add(b, ctx.reduced(neg, to: b))
        }
    }, lowering: .kernel(.binary)),
    define("Mul", types: .numbers, flops: perOperand, gradient: .rule { ctx, n, dy, wants in
        for k in 0..<2 where wants[k] {
            let other = n.inputs[1 - k], v = n.inputs[k]
            let product = ctx.emit("Mul", domain: "", [dy, other], [(ctx.part(v), ctx.type(dy))], name: "\(n.name).grad.\(k)")[0]
            ctx.add(v, ctx.reduced(product, to: v))
        }
    }, lowering: .kernel(.binary)),
    define("Div", types: .numbers, flops: perOperand, gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.binary)),
    define("Max", types: .numbers, flops: .none, gradient: .none("Kiln has no backward rule for it yet"), lowering: .reference),
    define("Min", types: .numbers, flops: .none, gradient: .none("Kiln has no backward rule for it yet"), lowering: .reference),
    define("Sum", types: .floats, flops: perOperand, gradient: passThrough, lowering: .kernel(.sum)),
    define("Clip", types: .numbers, flops: .perOutput(1), gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.clip)),
    define("Identity", types: .all, flops: .none, gradient: .rule { ctx, n, dy, _ in ctx.add(n.inputs[0], dy) }, lowering: .view),
    define("Dropout", types: .floats, flops: .none, gradient: .rule { ctx, n, dy, _ in
        let x = n.inputs[0]
        var ratio: Float = 0.5
        if n.inputs.count > 1, !n.inputs[1].isEmpty {
            guard let r = ctx.graph.parameter(named: n.inputs[1])?.initializer.tensor else { throw ctx.unsupported(n, "Dropout with a ratio computed at run time") }
            ratio = Float(r.double(at: 0))
        }
        ctx.add(x, ctx.emit("DropoutGrad", [dy, n.outputs[1].name], [(ctx.part(x), ctx.type(x))], attributes: ["ratio": .float(ratio)],
                            name: "\(n.name).grad")[0])
    }, lowering: .reference),
    define("FusedElementwise", domain: "kiln", types: .floats, flops: .perOutput(1),
           gradient: .none("the compiler forms it after differentiation"), lowering: .kernel(.elementwiseChain),
           reference: fusedElementwiseReference),
    define("ReluGrad", domain: "kiln", types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .kernel(.reluGrad)),
    define("LeakyReluGrad", domain: "kiln", types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .reference),
    define("DropoutGrad", domain: "kiln", types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .reference),
]

/// kiln.FusedElementwise by its parts' own reference kernels, applied in order.
private let fusedElementwiseReference: RefKernel = { ctx in
    guard case .strings(let chain)? = ctx.attribute("chain"), let operand = ctx.ints("operand"), let swap = ctx.ints("swap"),
          case .floats(let alphas)? = ctx.attribute("alphas"), case .floats(let mins)? = ctx.attribute("mins"),
          case .floats(let maxs)? = ctx.attribute("maxs") else { throw ctx.fail("chain attributes are missing") }
    var v = try ctx.input(0)
    for (k, op) in chain.enumerated() {
        if operand[k] >= 0 {
            let other = try ctx.input(operand[k])
            v = try runPart(ctx, op, swap[k] != 0 ? [other, v] : [v, other])
        } else if op == "Clip" {
            v = try runPart(ctx, op, [v, HostTensor(dtype: v.dtype, shape: [], f: [Double(mins[k])]),
                                      HostTensor(dtype: v.dtype, shape: [], f: [Double(maxs[k])])])
        } else {
            v = try runPart(ctx, op, [v], attributes: op == "LeakyRelu" ? ["alpha": .float(alphas[k])] : [:])
        }
    }
    return [v]
}

/// Op `op`'s reference kernel on `inputs`, as part of a fused node.
func runPart(_ ctx: RefContext, _ op: String, _ inputs: [HostTensor?], attributes: [String: Attribute] = [:]) throws -> HostTensor {
    guard let kernel = referenceKernels[op] else { throw ctx.fail("no reference kernel for the fused part \(op)") }
    let node = Node(name: ctx.node.name, op: op, inputs: inputs.indices.map { "in\($0)" }, outputs: [ctx.node.outputs[0]],
                    attributes: attributes)
    return try kernel(RefContext(node: node, inputs: inputs, outputTypes: [ctx.outputTypes[0]]))[0]
}

/// A fused epilogue (kiln.FusedConv, kiln.FusedGemm): residual (input 3) added, then the
/// `activation` attribute's op with its parameters (Clip's bounds only where given: ONNX's
/// defaults are the largest finite values).
func fusedEpilogue(_ ctx: RefContext, _ y: HostTensor) throws -> HostTensor {
    var v = y
    if let r = ctx.optional(3) { v = try runPart(ctx, "Add", [v, r]) }
    let act = ctx.string("activation")
    switch act {
    case "": return v
    case "Clip":
        let lo = ctx.has("min") ? HostTensor(dtype: v.dtype, shape: [], f: [ctx.float("min")]) : nil
        let hi = ctx.has("max") ? HostTensor(dtype: v.dtype, shape: [], f: [ctx.float("max")]) : nil
        return try runPart(ctx, act, [v, lo, hi])
    case "LeakyRelu": return try runPart(ctx, act, [v], attributes: ["alpha": .float(Float(ctx.float("alpha")))])
    default: return try runPart(ctx, act, [v])
    }
}
