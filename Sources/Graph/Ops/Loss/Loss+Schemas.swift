// Schemas (arity, attributes, type and shape rules) of the loss family (see Loss.swift).

/// The loss attributes: Focal's γ; LDAM's class counts, largest margin and scale; the logit
/// adjustment's τ; VS's Δ exponent γ and τ; the cross-entropy losses' label smoothing ε.
let lossAttributes: [String: [AttributeSpec]] = [
    "SoftmaxCrossEntropy": [.float("label_smoothing", 0)],
    "FocalLoss": [.float("gamma", 1)],
    "LDAMLoss": [.required("class_counts", .ints), .float("max_m", 0.5), .float("scale", 30), .float("label_smoothing", 0)],
    "LogitAdjustedLoss": [.required("class_counts", .ints), .float("tau", 1), .float("label_smoothing", 0)],
    "VSLoss": [.required("class_counts", .ints), .float("gamma", 0.2), .float("tau", 1), .float("label_smoothing", 0)],
]

/// logits [N, C] (f32), labels [N] (i64), class weights [C] (f32); optionally (mixup, CutMix)
/// the second labels [N] (i64) and the mixing weight λ (f32 scalar): λ·loss(labels) +
/// (1 − λ)·loss(second labels).
func checkLossInputs(_ ctx: InferenceContext, first: Int) throws -> TensorType {
    let z = try ctx.input(first), y = try ctx.input(first + 1), w = try ctx.input(first + 2)
    if ctx.inputCount > first + 3 {
        guard ctx.inputCount == first + 5 else { throw ctx.error("mixing needs both the second labels and λ") }
        let y2 = try ctx.input(first + 3), lambda = try ctx.input(first + 4)
        guard y2 == y else { throw ctx.error("the second labels must be like the labels (\(y)), got \(y2)") }
        guard lambda.rank == 0, lambda.dtype == z.dtype else { throw ctx.error("λ must be a \(z.dtype) scalar, got \(lambda)") }
    }
    try ctx.requireFloat(z, "logits")
    guard z.rank == 2 else { throw ctx.error("logits must be [N, C], got \(z.shape.text)") }
    guard y.dtype == .i64, y.rank == 1 else { throw ctx.error("labels must be i64 [N], got \(y)") }
    guard y.shape[0] == z.shape[0] else { throw ctx.error("labels \(y.shape.text) and logits \(z.shape.text) differ in N") }
    guard w.dtype == z.dtype, w.rank == 1, w.shape[0] == z.shape[1] else {
        throw ctx.error("class weights must be \(z.dtype)[\(z.shape[1])], got \(w)")
    }
    let smoothing = ctx.float("label_smoothing")
    guard smoothing >= 0 && smoothing < 1 else { throw ctx.error("label_smoothing must be in [0, 1), got \(smoothing)") }
    if lossAttributes[ctx.node.op.replacingOccurrences(of: "Grad", with: "")]?.contains(where: { $0.name == "class_counts" }) == true {
        guard let counts = ctx.ints("class_counts"), let c = z.shape[1].value, counts.count == c, counts.allSatisfy({ $0 > 0 }) else {
            throw ctx.error("class_counts must hold one positive count per class (\(z.shape[1]))")
        }
    }
    return z
}

// logits, labels, weights[, second labels, λ] → scalar loss
func lossSchema(_ name: String) -> OpSchema {
    OpSchema(name, domain: "kiln", inputs: 3...5, attributes: lossAttributes[name]!) { ctx in
        let z = try checkLossInputs(ctx, first: 0)
        ctx.setOutput(0, TensorType(z.dtype, []))
    }
}

// dloss (scalar), logits, labels, weights[, second labels, λ] → dlogits
func lossGradSchema(_ name: String) -> OpSchema {
    OpSchema(name + "Grad", domain: "kiln", inputs: 4...6, attributes: lossAttributes[name]!) { ctx in
        let z = try checkLossInputs(ctx, first: 1)
        let d = try ctx.input(0)
        guard d.rank == 0, d.dtype == z.dtype else { throw ctx.error("the loss gradient must be a \(z.dtype) scalar, got \(d)") }
        ctx.setOutput(0, z)
    }
}

// param, grad, velocity, lr (scalar) → param', velocity': PyTorch's SGD
// (g = grad + wd·param; v = momentum·v + g; param −= lr·(nesterov ? g + momentum·v : v)).
let sgdSchema = OpSchema("SGD", domain: "kiln", inputs: 4...4, outputs: 2...2,
                         attributes: [.float("momentum", 0.9), .float("weight_decay", 0), .int("nesterov", 0)]) { ctx in
    let p = try ctx.input(0), g = try ctx.input(1), v = try ctx.input(2), lr = try ctx.input(3)
    try ctx.requireFloat(p, "param")
    guard g == p, v == p else { throw ctx.error("grad \(g) and velocity \(v) must equal the parameter \(p)") }
    guard lr.rank == 0, lr.dtype == p.dtype else { throw ctx.error("lr must be a \(p.dtype) scalar, got \(lr)") }
    ctx.setOutput(0, p)
    ctx.setOutput(1, p)
}
