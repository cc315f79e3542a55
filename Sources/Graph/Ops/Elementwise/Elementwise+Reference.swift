import Foundation

// Reference kernels (Double precision, written for clarity) of the elementwise family (see Elementwise.swift).

/// The reference kernel applying `f` to every element of a floating-point input.
func unaryFloat(_ f: @escaping @Sendable (Double, RefContext) -> Double) -> RefKernel {
    { ctx in
        var x = try ctx.input(0)
        guard x.isFloat else { throw ctx.fail("expects a floating-point input") }
        for k in 0..<x.f.count { x.f[k] = f(x.f[k], ctx) }
        return [x]
    }
}

func binary(_ ff: @escaping @Sendable (Double, Double) -> Double, _ fi: @escaping @Sendable (Int64, Int64) -> Int64) -> RefKernel {
    { ctx in
        let (xs, shape, idx) = try broadcastOperands(ctx, [0, 1])
        let (a, b, ia, ib) = (xs[0], xs[1], idx[0], idx[1])
        if a.isFloat {
            return [HostTensor(dtype: a.dtype, shape: shape, f: (0..<ia.count).map { ff(a.f[ia[$0]], b.f[ib[$0]]) })]
        }
        return [HostTensor(dtype: a.dtype, shape: shape, i: (0..<ia.count).map { fi(a.i[ia[$0]], b.i[ib[$0]]) })]
    }
}

/// Max and Min over broadcasting inputs; NaN propagates (as numpy's maximum does).
func extremum(max isMax: Bool) -> RefKernel {
    { ctx in
        let xs = try (0..<ctx.inputs.count).map { try ctx.input($0) }
        let shape = broadcastShape(xs.map(\.shape))
        var out = HostTensor.zeros(xs[0].dtype, shape)
        for (n, x) in xs.enumerated() {
            let idx = broadcastIndices(from: x.shape, to: shape)
            if x.isFloat {
                for k in 0..<idx.count {
                    let a = out.f[k], b = x.f[idx[k]]
                    out.f[k] = n == 0 || b.isNaN ? b : a.isNaN ? a : isMax ? Swift.max(a, b) : Swift.min(a, b)
                }
            } else {
                for k in 0..<idx.count { out.i[k] = n == 0 ? x.i[idx[k]] : isMax ? Swift.max(out.i[k], x.i[idx[k]]) : Swift.min(out.i[k], x.i[idx[k]]) }
            }
        }
        return [out]
    }
}

/// Integer results wrap to the element type, as numpy's fixed-width arithmetic does.
func wrap(_ v: Int64, _ t: DType) -> Int64 {
    switch t {
    case .i8: return Int64(Int8(truncatingIfNeeded: v))
    case .u8: return Int64(UInt8(truncatingIfNeeded: v))
    case .i32: return Int64(Int32(truncatingIfNeeded: v))
    default: return v
    }
}

let leakyReluReference = unaryFloat { x, c in x >= 0 ? x : c.float("alpha") * x }
let sigmoidReference = unaryFloat { x, _ in 1 / (1 + exp(-x)) }
let sqrtReference = unaryFloat { x, _ in x.squareRoot() }
let tanhReference = unaryFloat { x, _ in tanh(x) }
let hardSwishReference = unaryFloat { x, _ in x * max(0, min(1, x / 6 + 0.5)) }
let reluReference: RefKernel = { ctx in
    var x = try ctx.input(0)
    if x.isFloat { x.f = x.f.map { max($0, 0) } } else { x.i = x.i.map { max($0, 0) } }
    return [x]
}

let hardSigmoidReference: RefKernel = unaryFloat { x, c in x.isNaN ? x : max(0, min(1, c.float("alpha") * x + c.float("beta"))) }

let sumReference: RefKernel = { ctx in
    let xs = try (0..<ctx.inputs.count).map { try ctx.input($0) }
    let shape = broadcastShape(xs.map(\.shape))
    var out = HostTensor.zeros(xs[0].dtype, shape)
    for x in xs {
        let idx = broadcastIndices(from: x.shape, to: shape)
        if x.isFloat { for k in 0..<idx.count { out.f[k] += x.f[idx[k]] } }
        else { for k in 0..<idx.count { out.i[k] = out.i[k] &+ x.i[idx[k]] } }
    }
    return [out]
}

let clipReference: RefKernel = { ctx in
    var x = try ctx.input(0)
    let lo = ctx.optional(1), hi = ctx.optional(2)
    if x.isFloat {
        // Without a bound, ONNX clamps to the type's lowest / largest finite value.
        let largest = x.dtype == .f64 ? Double.greatestFiniteMagnitude : x.dtype == .f16 ? 65504 : Double(Float.greatestFiniteMagnitude)
        let l = lo?.f.first ?? -largest, h = hi?.f.first ?? largest
        x.f = x.f.map { $0.isNaN ? $0 : min(max($0, l), h) }
    } else {
        let l = lo?.i.first ?? .min, h = hi?.i.first ?? .max
        x.i = x.i.map { min(max($0, l), h) }
    }
    return [x]
}

// Dropout: identity with an all-true mask at inference; in training mode a seeded mask
// keeps each element with probability 1 − ratio and scales kept ones by 1/(1 − ratio).
let dropoutReference: RefKernel = { ctx in
    var x = try ctx.input(0)
    let ratio = ctx.optional(1)?.f.first ?? 0.5
    let training = (ctx.optional(2)?.i.first ?? 0) != 0
    var mask = HostTensor(dtype: .bool, shape: x.shape, i: Array(repeating: 1, count: x.count))
    if training && ratio > 0 {
        var rng = KilnRandom(seed: UInt64(bitPattern: Int64(ctx.int("seed"))))
        let scale = ratio < 1 ? 1 / (1 - ratio) : 0
        for k in 0..<x.count {
            let keep = rng.unit() >= ratio
            mask.i[k] = keep ? 1 : 0
            x.f[k] = keep ? x.f[k] * scale : 0
        }
    }
    return [x, mask]
}

let reluGradReference: RefKernel = { ctx in
    let dy = try ctx.input(0), y = try ctx.input(1)
    var dx = dy
    if let dy2 = ctx.optional(2) {
        guard dy2.shape == dy.shape else { throw ctx.fail("the two gradients differ in shape: \(dy.shape) and \(dy2.shape)") }
        for k in 0..<dx.count { dx.f[k] += dy2.f[k] }
    }
    for k in 0..<dx.count where !(y.f[k] > 0) { dx.f[k] = 0 }
    return [dx]
}

let leakyReluGradReference: RefKernel = { ctx in
    let dy = try ctx.input(0), x = try ctx.input(1), alpha = ctx.float("alpha")
    var dx = dy
    for k in 0..<dx.count where !(x.f[k] > 0) { dx.f[k] *= alpha }
    return [dx]
}

let dropoutGradReference: RefKernel = { ctx in
    let dy = try ctx.input(0), mask = try ctx.input(1), ratio = ctx.float("ratio")
    var dx = dy
    for k in 0..<dx.count { dx.f[k] = mask.value(k) != 0 ? dy.f[k] / (1 - ratio) : 0 }
    return [dx]
}

/// kiln.FusedElementwise by its parts' own reference kernels, applied in order.
let fusedElementwiseReference: RefKernel = { ctx in
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
        } else if op == "QuantizeDequantize" {
            v = try runPart(ctx, op, domain: "kiln", [v], attributes: ["scale": .float(alphas[k]), "zero_point": .int(0),
                                                                      "qmin": .int(Int(mins[k])), "qmax": .int(Int(maxs[k]))])
        } else {
            var attributes: [String: Attribute] = [:]
            if parameterisedActivations.contains(op) { attributes["alpha"] = .float(alphas[k]) }
            if op == "HardSigmoid" { attributes["beta"] = .float(mins[k]) }  // beta travels in mins
            v = try runPart(ctx, op, [v], attributes: attributes)
        }
    }
    return [v]
}

/// Op `op`'s reference kernel on `inputs`, as part of a fused node.
func runPart(_ ctx: RefContext, _ op: String, domain: String = "", _ inputs: [HostTensor?], attributes: [String: Attribute] = [:]) throws -> HostTensor {
    guard let kernel = OpRegistry.definition(OpKey(op, domain: domain))?.reference else { throw ctx.fail("no reference kernel for the fused part \(op)") }
    let node = Node(name: ctx.node.name, op: op, domain: domain, inputs: inputs.indices.map { "in\($0)" }, outputs: [ctx.node.outputs[0]],
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
    case "LeakyRelu", "Elu", "Swish": return try runPart(ctx, act, [v], attributes: ["alpha": .float(Float(ctx.float("alpha")))])
    case "HardSigmoid":
        return try runPart(ctx, act, [v], attributes: ["alpha": .float(Float(ctx.float("alpha"))), "beta": .float(Float(ctx.float("beta")))])
    case "QuantizeDequantize":
        return try runPart(ctx, act, domain: "kiln", [v], attributes: ["scale": .float(Float(ctx.float("scale"))), "zero_point": .int(ctx.int("zero_point")),
                                                                      "qmin": .int(ctx.int("qmin")), "qmax": .int(ctx.int("qmax"))])
    default: return try runPart(ctx, act, [v])
    }
}
