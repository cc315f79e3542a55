// The fused epilogues of kiln.FusedConv and kiln.FusedGemm (an optional residual, then an
// activation): the attributes they share and their checks.

/// Activations a fused epilogue can apply, with their parameters as attributes.
public let fusableActivations: Set<String> = ["Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSwish", "Gelu", "HardSigmoid", "Tanh", "Elu", "Mish", "Swish",
                                              "QuantizeDequantize"]

/// Activation parameters an epilogue and a fused chain carry (alpha: LeakyRelu's, Elu's, Swish's,
/// HardSigmoid's; beta: HardSigmoid's), with ONNX's defaults.
public func activationParameters(_ op: String) -> (alpha: Float, beta: Float) {
    switch op {
    case "LeakyRelu": (0.01, 0)
    case "HardSigmoid": (0.2, 0.5)
    case "Elu", "Swish": (1, 0)
    default: (0, 0)
    }
}

/// Activations whose parameters travel as alpha (and HardSigmoid's beta) in fused nodes.
public let parameterisedActivations: Set<String> = ["LeakyRelu", "HardSigmoid", "Elu", "Swish"]

/// Whether `n` is not a Gelu in its tanh approximation (the fused chain and epilogues carry
/// only the erf form; the tanh form runs as its own activation step).
public func hasNoTanhApproximation(_ n: Node) -> Bool {
    n.attributes["approximate"] == nil || n.attributes["approximate"] == .string("none")
}

let epilogueAttributes: [AttributeSpec] = [
    .required("chain", .strings), .string("activation", ""), .float("alpha", 0.01), .float("beta", 0.5),
    .float("min", -Float.infinity), .float("max", Float.infinity), .string("algorithm", ""),
    // kiln.QuantizeDequantize's, when it is the activation.
    .float("scale", 1), .int("zero_point", 0), .int("qmin", 0), .int("qmax", 255),
]

/// Checks the residual input (index `r`) against the main output's type.
func checkResidual(_ ctx: InferenceContext, _ r: Int, _ out: TensorType) throws {
    guard let res = ctx.optionalInput(r) else { return }
    guard res == out else { throw ctx.error("residual \(res) must equal the output \(out)") }
}

func checkActivation(_ ctx: InferenceContext) throws {
    let a = ctx.string("activation")
    guard a.isEmpty || fusableActivations.contains(a) else { throw ctx.error("activation '\(a)' cannot be fused") }
}

/// Runs another schema's inference on this node seen as that op (with its own attributes).
func inferAs(_ op: String, _ ctx: InferenceContext, inputs: Int, attributes: [String]) throws -> TensorType {
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
