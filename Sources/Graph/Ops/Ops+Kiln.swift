// Kiln's own ops (domain "kiln"): fused groups the compiler forms. They never reach an
// exported model; their `chain` attribute names the ONNX ops they stand for, and the text IR
// prints them as `kiln.FusedConv[Conv→Add→Relu]`.

/// Activations a fused epilogue can apply, with their parameters as attributes.
public let fusableActivations: Set<String> = ["Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSwish"]

private let epilogueAttributes: [AttributeSpec] = [
    .required("chain", .strings), .string("activation", ""), .float("alpha", 0.01),
    .float("min", -Float.infinity), .float("max", Float.infinity), .string("algorithm", ""),
]

/// Checks the residual input (index `r`) against the main output's type.
private func checkResidual(_ ctx: InferenceContext, _ r: Int, _ out: TensorType) throws {
    guard let res = ctx.optionalInput(r) else { return }
    guard res == out else { throw ctx.error("residual \(res) must equal the output \(out)") }
}

private func checkActivation(_ ctx: InferenceContext) throws {
    let a = ctx.string("activation")
    guard a.isEmpty || fusableActivations.contains(a) else { throw ctx.error("activation '\(a)' cannot be fused") }
}

/// Runs another schema's inference on this node seen as that op (with its own attributes).
private func inferAs(_ op: String, _ ctx: InferenceContext, inputs: Int, attributes: [String]) throws -> TensorType {
    let schema = OpCatalogue.schema(domain: "", op: op)!
    var node = ctx.node
    node.op = op
    node.domain = ""
    node.inputs = Array(node.inputs.prefix(inputs))
    while node.inputs.last == "" { node.inputs.removeLast() }
    node.attributes = node.attributes.filter { attributes.contains($0.key) }
    var inner = InferenceContext(node: node, schema: schema, inputTypes: Array(ctx.inputTypes.prefix(node.inputs.count)),
                                 knownValues: Array(ctx.knownValues.prefix(node.inputs.count)))
    try schema.infer(&inner)
    return inner.outputTypes[0]!
}

let kilnOps: [OpSchema] = [
    // X, W, B?, residual? → act(Conv(X, W, B) + residual)
    OpSchema("FusedConv", domain: "kiln", inputs: 2...4,
             attributes: [.string("auto_pad", "NOTSET"), .optional("kernel_shape", .ints), .optional("pads", .ints),
                          .optional("strides", .ints), .optional("dilations", .ints), .int("group", 1)] + epilogueAttributes) { ctx in
        try checkActivation(ctx)
        let t = try inferAs("Conv", ctx, inputs: 3, attributes: ["auto_pad", "kernel_shape", "pads", "strides", "dilations", "group"])
        try checkResidual(ctx, 3, t)
        ctx.setOutput(0, t)
    },
    // A, B, C?, residual? → act(Gemm(A, B, C) + residual); Gemm's alpha is `alpha_gemm`
    // (`alpha` is LeakyRelu's).
    OpSchema("FusedGemm", domain: "kiln", inputs: 2...4,
             attributes: [.float("alpha_gemm", 1), .float("beta", 1), .int("transA", 0), .int("transB", 0)] + epilogueAttributes) { ctx in
        try checkActivation(ctx)
        let t = try inferAs("Gemm", ctx, inputs: 3, attributes: ["beta", "transA", "transB"])
        try checkResidual(ctx, 3, t)
        ctx.setOutput(0, t)
    },
]

/// Elementwise ops a fused chain may hold.
public let chainableElementwise: Set<String> = ["Relu", "LeakyRelu", "Sigmoid", "HardSwish", "Clip", "Add", "Sub", "Mul", "Div"]

let kilnElementwiseOps: [OpSchema] = [
    // x, operands… → one pass applying `chain` in order. `operand` holds, per op, the input
    // index of its second operand (−1 for activations); `swap` marks operand-first Sub/Div;
    // `alphas`, `mins`, `maxs` hold activation parameters.
    OpSchema("FusedElementwise", domain: "kiln", inputs: 1...variadic,
             attributes: [.required("chain", .strings), .required("operand", .ints), .required("swap", .ints),
                          .required("alphas", .floats), .required("mins", .floats), .required("maxs", .floats)]) { ctx in
        let x = try ctx.input(0)
        try ctx.requireFloat(x, "input")
        guard case .strings(let chain)? = ctx.attribute("chain"), let operand = ctx.ints("operand"), operand.count == chain.count else {
            throw ctx.error("chain and operand lists must have the same length")
        }
        for (op, k) in zip(chain, operand) {
            guard chainableElementwise.contains(op) else { throw ctx.error("'\(op)' cannot be part of an elementwise chain") }
            if k >= 0 {
                let t = try ctx.input(k)
                guard broadcastShapes(x.shape, t.shape) == x.shape else { throw ctx.error("operand \(k) \(t.shape.text) does not broadcast to \(x.shape.text)") }
            }
        }
        ctx.setOutput(0, x)
    },
]
