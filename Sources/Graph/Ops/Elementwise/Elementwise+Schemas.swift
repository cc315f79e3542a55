// Schemas (arity, attributes, type and shape rules) of the elementwise family (see Elementwise.swift).

/// The schema of a unary op whose output has its input's type.
func unary(_ name: String, attributes: [AttributeSpec] = [], floatOnly: Bool = true) -> OpSchema {
    OpSchema(name, inputs: 1...1, attributes: attributes) { ctx in
        let x = try ctx.input(0)
        if floatOnly { try ctx.requireFloat(x, "input") }
        ctx.setOutput(0, x)
    }
}

func variadicBroadcast(_ name: String, floatOnly: Bool = false) -> OpSchema {
    OpSchema(name, inputs: 1...variadic) { ctx in
        var t = try ctx.input(0)
        if floatOnly { try ctx.requireFloat(t, "input 0") }
        guard t.dtype != .bool else { throw ctx.error("\(name) is not defined on bool tensors") }
        for i in 1..<ctx.inputCount {
            let u = try ctx.input(i)
            try ctx.requireSameType(t, u, "inputs 0 and \(i)")
            guard let s = broadcastShapes(t.shape, u.shape) else {
                throw ctx.error("shapes \(t.shape.text) and \(u.shape.text) (input \(i)) do not broadcast")
            }
            t.shape = s
        }
        ctx.setOutput(0, t)
    }
}

func binary(_ name: String) -> OpSchema {
    OpSchema(name, inputs: 2...2) { ctx in
        let a = try ctx.input(0), b = try ctx.input(1)
        try ctx.requireSameType(a, b, "inputs")
        guard a.dtype != .bool else { throw ctx.error("\(name) is not defined on bool tensors") }
        guard let shape = broadcastShapes(a.shape, b.shape) else {
            throw ctx.error("shapes \(a.shape.text) and \(b.shape.text) do not broadcast")
        }
        ctx.setOutput(0, TensorType(a.dtype, shape))
    }
}

/// Elementwise ops a fused chain may hold.
public let chainableElementwise: Set<String> = [
    "Relu", "LeakyRelu", "Sigmoid", "HardSwish", "Clip", "Add", "Sub", "Mul", "Div", "Gelu", "Erf", "HardSigmoid", "Sqrt", "Tanh",
    "Exp", "Log", "Abs", "Neg", "Reciprocal", "Elu", "Softplus", "Mish", "Swish",
    // kiln.QuantizeDequantize, its scale as the part's alpha and its quantized range less the
    // zero point as the part's min and max.
    "QuantizeDequantize",
]

let hardSigmoidSchema = unary("HardSigmoid", attributes: [.float("alpha", 0.2), .float("beta", 0.5)])

// Clip-13: min and max are optional scalar inputs of the input's type.
let clipSchema = OpSchema("Clip", inputs: 1...3) { ctx in
    let x = try ctx.input(0)
    for i in 1...2 {
        guard let b = ctx.optionalInput(i) else { continue }
        try ctx.requireSameType(x, b, i == 1 ? "min" : "max")
        guard b.shape.elementCount.value == 1 else {
            throw ctx.error("\(i == 1 ? "min" : "max") must be a scalar, got \(b.shape.text)")
        }
    }
    ctx.setOutput(0, x)
}

let identitySchema = OpSchema("Identity", inputs: 1...1) { ctx in
    ctx.setOutput(0, try ctx.input(0), known: ctx.known(0))
}

// Dropout-13: ratio and training_mode are optional scalar inputs; mask is bool.
let dropoutSchema = OpSchema("Dropout", inputs: 1...3, outputs: 1...2, attributes: [.optional("seed", .int)]) { ctx in
    let x = try ctx.input(0)
    try ctx.requireFloat(x, "data")
    if let r = ctx.optionalInput(1) { try ctx.requireFloat(r, "ratio") }
    if let m = ctx.optionalInput(2), m.dtype != .bool {
        throw ctx.error("training_mode must be bool, got \(m.dtype)")
    }
    ctx.setOutput(0, x)
    ctx.setOutput(1, TensorType(.bool, x.shape))
}

// x, operands… → one pass applying `chain` in order. `operand` holds, per op, the input
// index of its second operand (−1 for activations); `swap` marks operand-first Sub/Div;
// `alphas`, `mins`, `maxs` hold activation parameters.
let fusedElementwiseSchema = OpSchema("FusedElementwise", domain: "kiln", inputs: 1...variadic,
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
}

// dy, x → dy where x > 0, else α·dy
let leakyReluGradSchema = shapedLike("LeakyReluGrad", inputs: 2...2, like: 1, attributes: [.float("alpha", 0.01)])

// dy, mask (bool, Dropout's second output) → dy·mask / (1 − ratio)
let dropoutGradSchema = shapedLike("DropoutGrad", inputs: 2...2, like: 0, attributes: [.float("ratio", 0.5)])
