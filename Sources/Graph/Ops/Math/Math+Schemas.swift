// Schemas (arity, attributes, type and shape rules) of the math family (see Math.swift).

/// A unary op on any number type (not bool); the output has the input's type.
func unaryNumber(_ name: String) -> OpSchema {
    OpSchema(name, inputs: 1...1) { ctx in
        let x = try ctx.input(0)
        guard x.dtype != .bool else { throw ctx.error("\(name) is not defined on bool tensors") }
        ctx.setOutput(0, x)
    }
}

/// The broadcast shape of inputs `indices`, or an error naming the two that do not broadcast.
func broadcastInputs(_ ctx: InferenceContext, _ indices: [Int]) throws -> Shape {
    var shape = try ctx.input(indices[0]).shape
    for i in indices.dropFirst() {
        let t = try ctx.input(i)
        guard let s = broadcastShapes(shape, t.shape) else {
            throw ctx.error("shapes \(shape.text) and \(t.shape.text) (input \(i)) do not broadcast")
        }
        shape = s
    }
    return shape
}

/// Equal, Less, Greater, LessOrEqual, GreaterOrEqual: two inputs of one type → bool.
func comparison(_ name: String) -> OpSchema {
    OpSchema(name, inputs: 2...2) { ctx in
        let a = try ctx.input(0), b = try ctx.input(1)
        try ctx.requireSameType(a, b, "inputs")
        if name != "Equal" && a.dtype == .bool { throw ctx.error("\(name) is not defined on bool tensors") }
        ctx.setOutput(0, TensorType(.bool, try broadcastInputs(ctx, [0, 1])))
    }
}

/// And, Or, Xor: two bool inputs → bool.
func logical(_ name: String) -> OpSchema {
    OpSchema(name, inputs: 2...2) { ctx in
        for i in 0...1 where try ctx.input(i).dtype != .bool { throw ctx.error("input \(i) must be bool, got \(try ctx.input(i).dtype)") }
        ctx.setOutput(0, TensorType(.bool, try broadcastInputs(ctx, [0, 1])))
    }
}

let notSchema = OpSchema("Not", inputs: 1...1) { ctx in
    let x = try ctx.input(0)
    guard x.dtype == .bool else { throw ctx.error("input must be bool, got \(x.dtype)") }
    ctx.setOutput(0, x)
}

// Where-16: condition (bool), X, Y of one type, all broadcast together.
let whereSchema = OpSchema("Where", inputs: 3...3) { ctx in
    let c = try ctx.input(0), x = try ctx.input(1), y = try ctx.input(2)
    guard c.dtype == .bool else { throw ctx.error("condition must be bool, got \(c.dtype)") }
    try ctx.requireSameType(x, y, "X and Y")
    ctx.setOutput(0, TensorType(x.dtype, try broadcastInputs(ctx, [0, 1, 2])))
}

// Pow-15: X (float or integer) to the power Y (any number type); the output has X's type.
let powSchema = OpSchema("Pow", inputs: 2...2) { ctx in
    let x = try ctx.input(0), y = try ctx.input(1)
    guard x.dtype != .bool, y.dtype != .bool else { throw ctx.error("Pow is not defined on bool tensors") }
    ctx.setOutput(0, TensorType(x.dtype, try broadcastInputs(ctx, [0, 1])))
}

// Mod-13: a mod b, broadcast; fmod = 0 takes the divisor's sign (floored, as Python and
// numpy), fmod = 1 the dividend's (truncated, as C's fmod).
let modSchema = OpSchema("Mod", inputs: 2...2, attributes: [.int("fmod", 0)]) { ctx in
    let a = try ctx.input(0), b = try ctx.input(1)
    try ctx.requireSameType(a, b, "A and B")
    guard a.dtype != .bool else { throw ctx.error("Mod is not defined on bool tensors") }
    let fmod = ctx.int("fmod")
    guard fmod == 0 || fmod == 1 else { throw ctx.error("fmod must be 0 or 1, got \(fmod)") }
    ctx.setOutput(0, TensorType(a.dtype, try broadcastInputs(ctx, [0, 1])))
}

// PRelu-16: slope broadcasts to X (unidirectionally).
let preluSchema = OpSchema("PRelu", inputs: 2...2) { ctx in
    let x = try ctx.input(0), slope = try ctx.input(1)
    try ctx.requireFloat(x, "X")
    try ctx.requireSameType(x, slope, "X and slope")
    guard broadcastShapes(x.shape, slope.shape) == x.shape else {
        throw ctx.error("slope \(slope.shape.text) does not broadcast to X \(x.shape.text)")
    }
    ctx.setOutput(0, x)
}

// Gelu-20: approximate "none" (the erf form) or "tanh".
let geluSchema = OpSchema("Gelu", inputs: 1...1, attributes: [.string("approximate", "none")]) { ctx in
    let x = try ctx.input(0)
    try ctx.requireFloat(x, "X")
    guard ["none", "tanh"].contains(ctx.string("approximate")) else { throw ctx.error("approximate must be \"none\" or \"tanh\"") }
    ctx.setOutput(0, x)
}

let seluSchema = unary("Selu", attributes: [.float("alpha", 1.67326319217681884765625), .float("gamma", 1.05070102214813232421875)])
