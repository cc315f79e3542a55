// Schemas (arity, attributes, type and shape rules) of the movement family (see Movement.swift).

/// ONNX Slice semantics for one axis: the first index and the element count.
public func sliceRange(start: Int, end: Int, step: Int, dim: Int) -> (start: Int, count: Int) {
    var s = start < 0 ? start &+ dim : start
    var e = end < 0 ? end &+ dim : end
    if step > 0 {
        s = min(max(s, 0), dim)
        e = min(max(e, 0), dim)
        return (s, e > s ? (e - s - 1) / step + 1 : 0)
    } else {
        s = min(max(s, 0), dim - 1)
        e = min(max(e, -1), dim - 1)
        // −Int.min does not exist: a step that large takes one element.
        return (s, s > e ? (step == .min ? 1 : (s - e - 1) / (-step) + 1) : 0)
    }
}

/// A tensor small and integral enough to track its values through shape computations.
func knownInts(of data: TensorData) -> KnownInts? {
    guard data.dtype.isInteger || data.dtype == .bool, data.count <= ONNXLimits.knownValues else { return nil }
    return data.int64s.map { Dim(Int($0)) }
}

/// The type and known values of a Constant node's value attribute.
func constantValue(_ ctx: InferenceContext) throws -> (TensorType, KnownInts?) {
    let present = ["value", "value_float", "value_floats", "value_int", "value_ints", "value_string", "value_strings", "sparse_value"]
        .filter { ctx.node.attributes[$0] != nil }
    guard present.count == 1 else {
        throw ctx.error(present.isEmpty ? "needs one of the attributes value, value_float(s), value_int(s)"
                                        : "has \(present.count) value attributes (\(present.joined(separator: ", "))), expected exactly one")
    }
    switch (present[0], ctx.node.attributes[present[0]]!) {
    case ("value", .tensor(let t)): return (t.type, knownInts(of: t))
    case ("value_float", .float): return (TensorType(.f32, []), nil)
    case ("value_floats", .floats(let v)): return (TensorType(.f32, [Dim(v.count)]), nil)
    case ("value_int", .int(let v)): return (TensorType(.i64, []), [Dim(v)])
    case ("value_ints", .ints(let v)): return (TensorType(.i64, [Dim(v.count)]), v.count <= ONNXLimits.knownValues ? v.map { Dim($0) } : nil)
    case (let name, _) where name.hasPrefix("value_string") || name == "sparse_value":
        throw ctx.error("attribute '\(name)' is not supported (Kiln has no string or sparse tensors)")
    case (let name, let a):
        throw ctx.error("attribute '\(name)' has kind \(a.kind)")
    }
}

func product(_ dims: ArraySlice<Dim>) -> Dim { dims.reduce(Dim(1), *) }

let constantSchema = OpSchema("Constant", inputs: 0...0,
                              attributes: [.optional("value", .tensor), .optional("value_float", .float), .optional("value_floats", .floats),
                                           .optional("value_int", .int), .optional("value_ints", .ints), .optional("value_string", .string),
                                           .optional("value_strings", .strings), .optional("sparse_value", .tensor)]) { ctx in
    let (t, known) = try constantValue(ctx)
    ctx.setOutput(0, t, known: known)
}

// ConstantOfShape-9: a tensor of the shape given by the input, filled with `value`.
let constantOfShapeSchema = OpSchema("ConstantOfShape", inputs: 1...1, attributes: [.optional("value", .tensor)]) { ctx in
    let s = try ctx.input(0)
    guard s.dtype == .i64, s.rank == 1 else { throw ctx.error("input must be a 1-D int64 shape, got \(s)") }
    guard let dims = ctx.known(0) else { throw ctx.error("the shape input must be a constant for Kiln to infer shapes") }
    guard dims.allSatisfy({ ($0.value ?? 1) >= 0 }) else { throw ctx.error("shape \(dims.text) has a negative dimension") }
    var dtype = DType.f32
    if case .tensor(let v)? = ctx.node.attributes["value"] {
        guard v.count == 1 else { throw ctx.error("value must hold one element, holds \(v.count)") }
        dtype = v.dtype
    }
    ctx.setOutput(0, TensorType(dtype, dims))
}

// Shape-15: the input's shape as int64, optionally sliced by start/end.
let shapeSchema = OpSchema("Shape", inputs: 1...1, attributes: [.int("start", 0), .optional("end", .int)]) { ctx in
    let x = try ctx.input(0)
    let r = x.rank
    func clampAxis(_ a: Int) -> Int { min(max(a < 0 ? a + r : a, 0), r) }
    let start = clampAxis(ctx.int("start"))
    let end = ctx.has("end") ? clampAxis(ctx.int("end")) : r
    let dims = start < end ? Array(x.shape[start..<end]) : []
    ctx.setOutput(0, TensorType(.i64, [Dim(dims.count)]), known: dims)
}

let castSchema = OpSchema("Cast", inputs: 1...1, attributes: [.required("to", .int), .int("saturate", 1)]) { ctx in
    let x = try ctx.input(0)
    let code = ctx.int("to")
    guard let t = DType(onnxCode: Int32(clamping: code)) else {
        throw ctx.error("cast to \(DType.onnxName(Int32(clamping: code))) is not supported")
    }
    ctx.setOutput(0, TensorType(t, x.shape), known: t.isInteger && x.dtype.isInteger ? ctx.known(0) : nil)
}

// Reshape-14: `0` copies the input dimension (unless allowzero), one `-1` is inferred.
let reshapeSchema = OpSchema("Reshape", inputs: 2...2, attributes: [.int("allowzero", 0)]) { ctx in
    let x = try ctx.input(0), s = try ctx.input(1)
    guard s.dtype == .i64, s.rank == 1 else { throw ctx.error("shape must be a 1-D int64 tensor, got \(s)") }
    guard let target = ctx.known(1) else { throw ctx.error("shape (input 1, '\(ctx.node.inputs[1])') must be a constant for Kiln to infer shapes") }
    let allowZero = ctx.int("allowzero") != 0
    var out: Shape = []
    var inferred: Int? = nil
    for (i, d) in target.enumerated() {
        if d.value == -1 {
            guard inferred == nil else { throw ctx.error("shape \(target.text) has more than one -1") }
            inferred = i
            out.append(Dim(1))
        } else if d.value == 0 && !allowZero {
            guard i < x.rank else { throw ctx.error("shape \(target.text) copies dimension \(i) that the input \(x.shape.text) lacks") }
            out.append(x.shape[i])
        } else {
            if let v = d.value, v < 0 { throw ctx.error("shape \(target.text) has a negative dimension \(v)") }
            out.append(d)
        }
    }
    let total = x.shape.elementCount
    if let i = inferred {
        let rest = out.elementCount
        guard let q = Dim.divide(total, by: rest) else {
            throw ctx.error("cannot reshape \(x.shape.text) (\(total) elements) to \(target.text)")
        }
        out[i] = q
    } else if out.elementCount != total {
        throw ctx.error("cannot reshape \(x.shape.text) (\(total) elements) to \(out.text) (\(out.elementCount) elements)")
    }
    ctx.setOutput(0, TensorType(x.dtype, out), known: x.rank <= 1 && out.count <= 1 ? ctx.known(0) : nil)
}

let flattenSchema = OpSchema("Flatten", inputs: 1...1, attributes: [.int("axis", 1)]) { ctx in
    let x = try ctx.input(0)
    var a = ctx.int("axis")
    guard a >= -x.rank && a <= x.rank else { throw ctx.error("axis \(a) is out of range for rank \(x.rank)") }
    if a < 0 { a += x.rank }
    ctx.setOutput(0, TensorType(x.dtype, [product(x.shape[0..<a]), product(x.shape[a...])]))
}

// Squeeze-13: axes is an optional input; without it every size-1 dimension goes.
let squeezeSchema = OpSchema("Squeeze", inputs: 1...2) { ctx in
    let x = try ctx.input(0)
    var drop = Set<Int>()
    if ctx.hasInput(1) {
        for a in try ctx.constantInts(1, what: "axes") {
            let n = try ctx.axis(a, rank: x.rank)
            guard x.shape[n].value == 1 else { throw ctx.error("cannot squeeze axis \(a) of size \(x.shape[n]) in \(x.shape.text)") }
            drop.insert(n)
        }
    } else {
        for (i, d) in x.shape.enumerated() where d.value == 1 { drop.insert(i) }
    }
    let shape = x.shape.enumerated().filter { !drop.contains($0.offset) }.map(\.element)
    ctx.setOutput(0, TensorType(x.dtype, shape), known: ctx.known(0))
}

// Unsqueeze-13: axes (an input) index the output.
let unsqueezeSchema = OpSchema("Unsqueeze", inputs: 2...2) { ctx in
    let x = try ctx.input(0)
    let axes = try ctx.constantInts(1, what: "axes")
    let r = x.rank + axes.count
    var positions = Set<Int>()
    for a in axes {
        let n = try ctx.axis(a, rank: r, what: "axes value")
        guard positions.insert(n).inserted else { throw ctx.error("axes \(axes) repeat an axis") }
    }
    var shape: Shape = []
    var it = x.shape.makeIterator()
    for i in 0..<r { shape.append(positions.contains(i) ? Dim(1) : it.next()!) }
    ctx.setOutput(0, TensorType(x.dtype, shape), known: ctx.known(0))
}

let transposeSchema = OpSchema("Transpose", inputs: 1...1, attributes: [.optional("perm", .ints)]) { ctx in
    let x = try ctx.input(0)
    let perm = ctx.ints("perm") ?? Array((0..<x.rank).reversed())
    guard perm.count == x.rank, perm.sorted() == Array(0..<x.rank) else {
        throw ctx.error("perm \(perm) is not a permutation of 0..<\(x.rank)")
    }
    ctx.setOutput(0, TensorType(x.dtype, perm.map { x.shape[$0] }))
}

// Slice-13: starts, ends, axes and steps are inputs; negative values count from the end.
let sliceSchema = OpSchema("Slice", inputs: 3...5) { ctx in
    let x = try ctx.input(0)
    let starts = try ctx.constantInts(1, what: "starts")
    let ends = try ctx.constantInts(2, what: "ends")
    guard starts.count == ends.count else { throw ctx.error("starts has \(starts.count) values, ends \(ends.count)") }
    let axes = ctx.hasInput(3) ? try ctx.constantInts(3, what: "axes") : Array(0..<starts.count)
    let steps = ctx.hasInput(4) ? try ctx.constantInts(4, what: "steps") : Array(repeating: 1, count: starts.count)
    guard axes.count == starts.count, steps.count == starts.count else {
        throw ctx.error("starts, ends, axes and steps must have the same length")
    }
    var shape = x.shape
    var seen = Set<Int>()
    for i in 0..<axes.count {
        let a = try ctx.axis(axes[i], rank: x.rank, what: "axes value")
        guard seen.insert(a).inserted else { throw ctx.error("axes \(axes) repeat an axis") }
        guard steps[i] != 0 else { throw ctx.error("steps must not be 0") }
        if let dim = x.shape[a].value {
            shape[a] = Dim(sliceRange(start: starts[i], end: ends[i], step: steps[i], dim: dim).count)
        } else if !(starts[i] == 0 && ends[i] >= Int(Int32.max) && steps[i] == 1) {
            throw ctx.error("cannot slice the symbolic dimension \(x.shape[a]) (axis \(a)) except whole")
        }
    }
    var known: KnownInts? = nil
    if let k = ctx.known(0), x.rank == 1, let dim = x.shape[0].value, k.count == dim, starts.count == 1 {
        let r = sliceRange(start: starts[0], end: ends[0], step: steps[0], dim: dim)
        known = (0..<r.count).map { k[r.start + $0 * steps[0]] }
    }
    ctx.setOutput(0, TensorType(x.dtype, shape), known: known)
}

// Pad-13 (axes input of Pad-18 accepted): pads [begin…, end…], negative pads crop.
let padSchema = OpSchema("Pad", inputs: 2...4, attributes: [.string("mode", "constant")]) { ctx in
    let x = try ctx.input(0)
    let mode = ctx.string("mode")
    guard ["constant", "reflect", "edge", "wrap"].contains(mode) else {
        throw ctx.error("mode '\(mode)' is not one of constant, reflect, edge, wrap")
    }
    let pads = try ctx.constantInts(1, what: "pads")
    let axes = ctx.hasInput(3) ? try ctx.constantInts(3, what: "axes").map { try ctx.axis($0, rank: x.rank) } : Array(0..<x.rank)
    guard pads.count == 2 * axes.count else { throw ctx.error("pads has \(pads.count) values, expected \(2 * axes.count)") }
    if let v = ctx.optionalInput(2) {
        try ctx.requireSameType(x, v, "data and constant_value")
        guard v.shape.elementCount.value == 1 else { throw ctx.error("constant_value must be a scalar, got \(v.shape.text)") }
    }
    var shape = x.shape
    guard pads.allSatisfy({ $0 >= -ONNXLimits.maxDimension && $0 <= ONNXLimits.maxDimension }) else { throw ctx.error("pads \(pads) are larger than \(ONNXLimits.maxDimension)") }
    for (i, a) in axes.enumerated() {
        let add = pads[i] + pads[i + axes.count]
        if add == 0 { continue }
        guard let d = x.shape[a].value else { throw ctx.error("cannot pad the symbolic dimension \(x.shape[a]) (axis \(a))") }
        guard d + add >= 0 else { throw ctx.error("pads \(pads) crop axis \(a) of size \(d) below zero") }
        if mode != "constant" && d == 0 { throw ctx.error("\(mode) padding of an empty axis \(a)") }
        shape[a] = Dim(d + add)
    }
    ctx.setOutput(0, TensorType(x.dtype, shape))
}

let concatSchema = OpSchema("Concat", inputs: 1...variadic, attributes: [.required("axis", .int)]) { ctx in
    let first = try ctx.input(0)
    let a = try ctx.axis(ctx.int("axis"), rank: first.rank)
    var total = 0
    var allKnown: KnownInts? = []
    for i in 0..<ctx.inputCount {
        let t = try ctx.input(i)
        try ctx.requireSameType(first, t, "inputs 0 and \(i)")
        guard t.rank == first.rank else { throw ctx.error("input \(i) has rank \(t.rank), input 0 rank \(first.rank)") }
        for j in 0..<t.rank where j != a && t.shape[j] != first.shape[j] {
            throw ctx.error("input \(i) \(t.shape.text) differs from input 0 \(first.shape.text) on axis \(j)")
        }
        guard let d = t.shape[a].value else { throw ctx.error("cannot concatenate along the symbolic dimension \(t.shape[a])") }
        total += d
        if let k = ctx.known(i), allKnown != nil { allKnown! += k } else { allKnown = nil }
    }
    var shape = first.shape
    shape[a] = Dim(total)
    ctx.setOutput(0, TensorType(first.dtype, shape), known: first.rank == 1 ? allKnown : nil)
}

// Gather-13: out = data[:axis] + indices.shape + data[axis+1:].
let gatherSchema = OpSchema("Gather", inputs: 2...2, attributes: [.int("axis", 0)]) { ctx in
    let x = try ctx.input(0), idx = try ctx.input(1)
    guard idx.dtype == .i64 || idx.dtype == .i32 else { throw ctx.error("indices must be int32 or int64, got \(idx.dtype)") }
    guard x.rank >= 1 else { throw ctx.error("data must have rank ≥ 1") }
    let a = try ctx.axis(ctx.int("axis"), rank: x.rank)
    let shape = Array(x.shape[..<a]) + idx.shape + Array(x.shape[(a + 1)...])
    var known: KnownInts? = nil
    if x.rank == 1, let k = ctx.known(0), let ii = ctx.known(1), idx.rank <= 1 {
        known = []
        for i in ii {
            guard var v = i.value else { known = nil; break }
            if v < 0 { v += k.count }
            guard v >= 0 && v < k.count else { throw ctx.error("index \(i) is out of range for \(k.count) elements") }
            known!.append(k[v])
        }
    }
    ctx.setOutput(0, TensorType(x.dtype, shape), known: known)
}

// Expand-13: the input broadcast (both ways) with `shape`, a 1-D int64 input known at
// compile time.
let expandSchema = OpSchema("Expand", inputs: 2...2) { ctx in
    let x = try ctx.input(0), s = try ctx.input(1)
    guard s.dtype == .i64, s.rank == 1 else { throw ctx.error("shape must be a 1-D int64 tensor, got \(s)") }
    guard let target = ctx.known(1) else { throw ctx.error("shape (input 1, '\(ctx.node.inputs[1])') must be a constant for Kiln to infer shapes") }
    guard let out = broadcastShapes(x.shape, target) else { throw ctx.error("shape \(target.text) does not broadcast with the input \(x.shape.text)") }
    ctx.setOutput(0, TensorType(x.dtype, out))
}

// Tile-13: each dimension times its `repeats` entry (1-D int64, one per input dimension).
let tileSchema = OpSchema("Tile", inputs: 2...2) { ctx in
    let x = try ctx.input(0)
    let repeats = try ctx.constantInts(1, what: "repeats")
    guard repeats.count == x.rank else { throw ctx.error("repeats has \(repeats.count) values for an input of rank \(x.rank)") }
    guard repeats.allSatisfy({ $0 >= 0 && $0 <= ONNXLimits.maxDimension }) else { throw ctx.error("repeats \(repeats) must be from 0 to \(ONNXLimits.maxDimension)") }
    ctx.setOutput(0, TensorType(x.dtype, zip(x.shape, repeats).map { $0 * Dim($1) }))
}

// Range-11: start, limit, delta (scalars of one type) → [max(⌈(limit − start) / delta⌉, 0)];
// the count must be known at compile time (integer bounds Kiln tracks).
let rangeSchema: OpSchema = {
    var s = OpSchema("Range", inputs: 3...3) { ctx in
        let t = try ctx.input(0)
        for i in 1...2 { try ctx.requireSameType(t, try ctx.input(i), "start and input \(i)") }
        for i in 0...2 where try ctx.input(i).shape.elementCount.value != 1 { throw ctx.error("input \(i) must be a scalar") }
        guard t.dtype != .bool else { throw ctx.error("Range is not defined on bool tensors") }
        let count: Int
        if t.dtype.isFloatingPoint {
            // max(⌈(limit − start) / delta⌉, 0), from constants.
            let v = try (0...2).map { i -> Double in
                guard let f = ctx.knownFloats(i) else {
                    throw ctx.error("\(["start", "limit", "delta"][i]) (input \(i), '\(ctx.node.inputs[i])') must be a constant for Kiln to infer shapes")
                }
                return f[0]
            }
            guard v[2] != 0, v.allSatisfy(\.isFinite) else { throw ctx.error("delta must not be 0 and the bounds finite, got \(v)") }
            let c = ((v[1] - v[0]) / v[2]).rounded(.up)
            guard c <= Double(ONNXLimits.maxDimension) else { throw ctx.error("Range of \(c) elements") }
            count = max(0, Int(c))
        } else {
            let start = try ctx.constantInts(0, what: "start"), limit = try ctx.constantInts(1, what: "limit"), delta = try ctx.constantInts(2, what: "delta")
            guard delta[0] != 0 else { throw ctx.error("delta must not be 0") }
            let span = limit[0] - start[0]
            count = max(0, span / delta[0] + (span % delta[0] != 0 && (span < 0) == (delta[0] < 0) ? 1 : 0))
            guard count <= ONNXLimits.maxDimension else { throw ctx.error("Range of \(count) elements") }
        }
        ctx.setOutput(0, TensorType(t.dtype, [Dim(count)]))
    }
    s.compileTimeInputs = [0, 1, 2]
    return s
}()

/// Split's part sizes along its axis of size `dim`: from `split` (an input, or the attribute of
/// older opsets the importer turns into one), else `num_outputs` parts of ⌈dim / n⌉ (the last
/// smaller), else equal parts, one per output.
func splitSizes(_ ctx: InferenceContext, dim: Int, outputs: Int) throws -> [Int] {
    if ctx.hasInput(1) {
        let sizes = try ctx.constantInts(1, what: "split")
        guard sizes.count == outputs, sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == dim else {
            throw ctx.error("split \(sizes) must give \(outputs) non-negative sizes summing to \(dim)")
        }
        return sizes
    }
    if ctx.has("num_outputs") {
        let n = ctx.int("num_outputs")
        guard n == outputs, n >= 1 else { throw ctx.error("num_outputs \(n) must equal the node's \(outputs) outputs") }
        let part = (dim + n - 1) / n
        guard part * (n - 1) <= dim else { throw ctx.error("\(dim) elements do not split into \(n) parts of \(part)") }
        return (0..<n).map { $0 < n - 1 ? part : dim - part * (n - 1) }
    }
    guard dim % outputs == 0 else { throw ctx.error("axis of size \(dim) does not split into \(outputs) equal parts") }
    return Array(repeating: dim / outputs, count: outputs)
}

// Split-18 (older forms upgraded on import): the input cut along `axis` into the outputs.
let splitSchema = OpSchema("Split", inputs: 1...2, outputs: 1...variadic, attributes: [.int("axis", 0), .optional("num_outputs", .int)]) { ctx in
    let x = try ctx.input(0)
    let axis = try ctx.axis(ctx.int("axis"), rank: x.rank)
    guard let dim = x.shape[axis].value else { throw ctx.error("cannot split the symbolic dimension \(x.shape[axis]) (axis \(axis))") }
    for (i, size) in try splitSizes(ctx, dim: dim, outputs: ctx.node.outputs.count).enumerated() {
        var shape = x.shape
        shape[axis] = Dim(size)
        ctx.setOutput(i, TensorType(x.dtype, shape))
    }
}
